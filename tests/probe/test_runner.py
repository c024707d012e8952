"""``cotbal run`` library: runs jobs with a configurable launcher, resumes, stops at the first failure."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from cotbal_plugin.probe.errors import ProbeError, ProbeWarning
from cotbal_plugin.probe.plan import PlanConfig, make_plan
from cotbal_plugin.probe.runner import JobFailed, resolve_launcher, run_jobs, select_jobs, tail


def small_plan(base: Path) -> dict:
    cfg = PlanConfig(
        base_yaml=base,
        out_dir=base.parent / "plan",
        tasks=["vqa", "cap"],
        validation={"vqa": ["vqa_val"], "cap": ["cap_val"]},
        metrics={"vqa": ["em"], "cap": ["em"]},
        mini_fraction=1 / 8,
        progress=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProbeWarning)
        return make_plan(cfg)


def test_runs_all_then_resumes(workspace: Path, fake_launcher: str) -> None:
    m = small_plan(workspace)
    launcher = resolve_launcher(fake_launcher)
    first = run_jobs(m["jobs"], launcher, progress=False)
    assert first.ran == [j["name"] for j in m["jobs"]] and not first.skipped
    assert all(Path(j["done"]).is_file() for j in m["jobs"])
    assert "fake llamafactory-cli train" in Path(m["jobs"][0]["log"]).read_text()
    # remove one output: only that job runs again
    Path(m["jobs"][3]["done"]).unlink()
    second = run_jobs(m["jobs"], launcher, progress=False)
    assert second.ran == [m["jobs"][3]["name"]] and len(second.skipped) == len(m["jobs"]) - 1
    assert len(run_jobs(m["jobs"], launcher, force=True, progress=False).ran) == len(m["jobs"])


def test_stops_on_first_failure_with_log_tail(workspace: Path, fake_launcher: str, monkeypatch) -> None:
    m = small_plan(workspace)
    monkeypatch.setenv("FAKE_FAIL", "train_cap+mini")
    with pytest.raises(JobFailed, match=r"job 'train:cap\+mini' failed with exit code 3") as info:
        run_jobs(m["jobs"], resolve_launcher(fake_launcher), progress=False)
    assert "RuntimeError: fake failure for the test" in str(info.value)
    assert "train__cap+mini.log" in str(info.value)
    names = [j["name"] for j in m["jobs"]]
    failed = names.index("train:cap+mini")
    assert all(Path(j["done"]).is_file() for j in m["jobs"][:failed])
    assert not any(Path(j["done"]).exists() for j in m["jobs"][failed:])


def test_job_without_output_fails(workspace: Path) -> None:
    m = small_plan(workspace)
    with pytest.raises(JobFailed, match=r"job 'train:mini' exited 0 but did not write .*trainer_state\.json"):
        run_jobs(m["jobs"][:1], ["true"], progress=False)


def test_launcher_resolution(monkeypatch) -> None:
    monkeypatch.setenv("COTBAL_LAUNCHER", "echo from-env")
    assert resolve_launcher() == ["echo", "from-env"]
    assert resolve_launcher("true --x") == ["true", "--x"]
    with pytest.raises(ProbeError, match=r"launcher 'no-such-cli-xyz' not found on PATH"):
        resolve_launcher("no-such-cli-xyz train")
    monkeypatch.delenv("COTBAL_LAUNCHER")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ProbeError, match="'llamafactory-cli' not found"):
        resolve_launcher()


def test_select_jobs_and_tail(workspace: Path, tmp_path: Path) -> None:
    m = small_plan(workspace)
    assert {j["kind"] for j in select_jobs(m["jobs"], ["predict"])} == {"predict"}
    assert select_jobs(m["jobs"], []) == m["jobs"]
    with pytest.raises(ProbeError, match="unknown job kind"):
        select_jobs(m["jobs"], ["eval"])
    log = tmp_path / "x.log"
    log.write_text("\n".join(str(i) for i in range(100)))
    assert tail(log, 3) == "97\n98\n99"
