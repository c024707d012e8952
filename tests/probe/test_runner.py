"""``cotbal run``: launcher, resume, parallel slots and devices, dependencies, failures, summary, progress, stop.

The jobs run the fake ``llamafactory-cli`` of ``fake_launcher.py`` (``FAKE_SLEEP`` makes them last, ``FAKE_TRACE``
records when each ran and with which environment).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml

from cotbal_plugin.cli import main
from cotbal_plugin.probe.errors import ProbeError, ProbeWarning
from cotbal_plugin.probe.plan import PlanConfig, make_plan
from cotbal_plugin.probe.runner import JobFailed, resolve_launcher, run_jobs, select_jobs, tail
from cotbal_plugin.probe.scheduler import make_pool

ROOT = Path(__file__).resolve().parents[2]


def small_plan(base: Path, **kw) -> dict:
    cfg = PlanConfig(
        base_yaml=base,
        out_dir=base.parent / "plan",
        tasks=["vqa", "cap"],
        validation={"vqa": ["vqa_val"], "cap": ["cap_val"]},
        metrics={"vqa": ["em"], "cap": ["em"]},
        mini_fraction=1 / 8,
        progress=False,
        **kw,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProbeWarning)
        return make_plan(cfg)


def trace(path: Path) -> dict[str, dict]:
    """Job name (from the YAML file name) → trace row of the fake launcher."""
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return {Path(r["yaml"]).stem: r for r in rows}


def overlapping(rows: dict[str, dict]) -> list[tuple[str, str]]:
    names = sorted(rows)
    return [
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if rows[a]["start"] < rows[b]["end"] and rows[b]["start"] < rows[a]["end"]
    ]


def max_concurrency(rows: dict[str, dict]) -> int:
    events = sorted([(r["start"], 1) for r in rows.values()] + [(r["end"], -1) for r in rows.values()])
    now = best = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def test_runs_all_then_resumes(workspace: Path, fake_launcher: str) -> None:
    m = small_plan(workspace)
    launcher = resolve_launcher(fake_launcher)
    first = run_jobs(m["jobs"], launcher, progress=False)
    assert sorted(first.ran) == sorted(j["name"] for j in m["jobs"]) and not first.skipped
    assert all(Path(j["done"]).is_file() for j in m["jobs"])
    assert not any(Path(j["write_dir"]).exists() for j in m["jobs"] if j["kind"] == "predict")  # renamed
    assert "fake llamafactory-cli train" in Path(m["jobs"][0]["log"]).read_text()
    # remove one output: only that job runs again
    Path(m["jobs"][3]["done"]).unlink()
    second = run_jobs(m["jobs"], launcher, progress=False)
    assert second.ran == [m["jobs"][3]["name"]] and len(second.skipped) == len(m["jobs"]) - 1
    assert len(run_jobs(m["jobs"], launcher, force=True, progress=False).ran) == len(m["jobs"])


def test_parallel_slots_respect_dependencies_and_ports(workspace: Path, fake_launcher: str, monkeypatch) -> None:
    m = small_plan(workspace)
    monkeypatch.setenv("FAKE_SLEEP", "0.6")
    monkeypatch.setenv("FAKE_TRACE", str(workspace.parent / "trace.jsonl"))
    summary = run_jobs(m["jobs"], resolve_launcher(fake_launcher), progress=False, parallel=3)
    assert summary.ok and len(summary.ran) == len(m["jobs"]) == 9
    rows = trace(workspace.parent / "trace.jsonl")
    assert max_concurrency(rows) == 3  # 3 trainings start together; 6 predictions follow them
    for job in m["jobs"]:
        if job["kind"] == "predict":
            run = job["run"]
            assert rows[Path(job["yaml"]).stem]["start"] >= rows[f"train_{run}"]["end"], job["name"]
    for a, b in overlapping(rows):  # jobs side by side never share a MASTER_PORT
        assert rows[a]["env"]["MASTER_PORT"] != rows[b]["env"]["MASTER_PORT"], (a, b)
    assert all(r["env"]["CUDA_VISIBLE_DEVICES"] == os.environ.get("CUDA_VISIBLE_DEVICES") for r in rows.values())
    # sequential default: one at a time
    monkeypatch.setenv("FAKE_SLEEP", "0")
    (workspace.parent / "trace.jsonl").unlink()
    run_jobs(m["jobs"], resolve_launcher(fake_launcher), progress=False, force=True)
    assert max_concurrency(trace(workspace.parent / "trace.jsonl")) == 1


def test_gpus_are_split_between_jobs(workspace: Path, fake_launcher: str, monkeypatch) -> None:
    m = small_plan(workspace)
    monkeypatch.setenv("FAKE_SLEEP", "0.4")
    monkeypatch.setenv("FAKE_TRACE", str(workspace.parent / "trace.jsonl"))
    monkeypatch.delenv("FORCE_TORCHRUN", raising=False)
    run_jobs(m["jobs"], resolve_launcher(fake_launcher), progress=False, gpus=["0", "1", "2", "3", "GPU-x"],
             gpus_per_job=2, predict_gpus_per_job=1)  # fmt: skip
    rows = trace(workspace.parent / "trace.jsonl")
    for name, row in rows.items():
        devices = row["env"]["CUDA_VISIBLE_DEVICES"].split(",")
        if name.startswith("train_"):
            assert len(devices) == 2 and row["env"]["NPROC_PER_NODE"] == "2" and row["env"]["FORCE_TORCHRUN"] == "1"
        else:
            assert len(devices) == 1 and row["env"]["FORCE_TORCHRUN"] is None
    for a, b in overlapping(rows):
        devs_a = set(rows[a]["env"]["CUDA_VISIBLE_DEVICES"].split(","))
        assert not devs_a & set(rows[b]["env"]["CUDA_VISIBLE_DEVICES"].split(",")), (a, b)
    # 5 devices, 2 per training: two trainings side by side (the fifth device stays free for a prediction)
    trainings = {k: v for k, v in rows.items() if k.startswith("train_")}
    assert max_concurrency(trainings) == 2


def test_deepspeed_training_gets_torchrun_on_one_device(workspace: Path, fake_launcher: str, monkeypatch) -> None:
    base = yaml.safe_load(workspace.read_text())
    base["deepspeed"] = str(ROOT / "examples" / "deepspeed" / "ds_z2_config.json")
    workspace.write_text(yaml.safe_dump(base))
    m = small_plan(workspace)
    monkeypatch.setenv("FAKE_TRACE", str(workspace.parent / "trace.jsonl"))
    monkeypatch.delenv("FORCE_TORCHRUN", raising=False)
    run_jobs(m["jobs"], resolve_launcher(fake_launcher), progress=False, gpus=["0"])
    rows = trace(workspace.parent / "trace.jsonl")
    assert rows["train_mini"]["env"]["FORCE_TORCHRUN"] == "1" and rows["train_mini"]["env"]["NPROC_PER_NODE"] == "1"
    assert rows["predict_mini__vqa_val"]["env"]["FORCE_TORCHRUN"] is None  # predict YAMLs have no deepspeed


def test_failure_does_not_stop_the_others(workspace: Path, fake_launcher: str, monkeypatch) -> None:
    m = small_plan(workspace)
    monkeypatch.setenv("FAKE_FAIL", "train_cap+mini")
    stream = io.StringIO()
    with pytest.raises(JobFailed) as info:
        run_jobs(m["jobs"], resolve_launcher(fake_launcher), parallel=2, stream=stream)
    summary = info.value.summary
    assert [f.name for f in summary.failed] == ["train:cap+mini"] and summary.failed[0].code == 3
    assert {name for name, _ in summary.blocked} == {"predict:cap+mini:vqa_val", "predict:cap+mini:cap_val"}
    message = str(info.value)
    assert "FAILED  train:cap+mini: exit code 3; log: " in message and "train__cap+mini.log" in message
    assert "RuntimeError: fake failure for the test" in message  # last lines of the first failure
    assert "NOT RUN predict:cap+mini:cap_val: needs train:cap+mini" in message
    others = [j for j in m["jobs"] if "cap+mini" not in j["name"]]
    assert all(Path(j["done"]).is_file() for j in others)
    assert not any(Path(j["done"]).exists() for j in m["jobs"] if "cap+mini" in j["name"])
    # progress lines: no terminal, so no redraws; every event line carries the counters
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert any("FAILED train:cap+mini" in x for x in lines)
    assert all(" done, " in x and " running, " in x and "elapsed " in x and "ETA " in x for x in lines)
    assert "9/9 done" not in stream.getvalue() and "6/9 done, 0 running, 3 failed" in lines[-1]


def test_progress_setting_follows_the_shared_convention(workspace: Path, fake_launcher: str, monkeypatch) -> None:
    """--progress forces the live line (redraws) even off a terminal; --no-progress / -q report failures only."""
    m = small_plan(workspace)
    jobs = [j for j in m["jobs"] if j["kind"] == "train"]
    stream = io.StringIO()
    run_jobs(jobs, resolve_launcher(fake_launcher), progress=True, stream=stream, force=True)
    text = stream.getvalue()
    assert "\r" in text and f"cotbal run: {len(jobs)}/{len(jobs)} done" in text  # tqdm's line, drawn
    assert text.count("[cotbal run] finished ") == len(jobs)  # event lines above the bar
    monkeypatch.setenv("FAKE_FAIL", "train_mini")
    stream = io.StringIO()
    with pytest.raises(JobFailed):
        run_jobs(jobs, resolve_launcher(fake_launcher), progress=False, stream=stream, force=True)
    lines = stream.getvalue().splitlines()
    assert lines and all("FAILED train:mini" in x for x in lines)  # no 'started' / 'finished' lines
    monkeypatch.setenv("TQDM_DISABLE", "1")  # no flag: tqdm's variable turns the live line into event lines
    monkeypatch.delenv("FAKE_FAIL")
    stream = io.StringIO()
    stream.isatty = lambda: True  # type: ignore[method-assign]
    run_jobs(jobs, resolve_launcher(fake_launcher), stream=stream, force=True)
    assert "\r" not in stream.getvalue() and stream.getvalue().count("[cotbal run] finished ") == len(jobs)


def test_job_without_output_fails(workspace: Path) -> None:
    m = small_plan(workspace)
    with pytest.raises(JobFailed, match=r"FAILED  train:mini: exited 0 but did not write .*trainer_state\.json"):
        run_jobs(m["jobs"][:1], ["true"], progress=False)


def test_prediction_is_renamed_only_when_complete(workspace: Path, fake_launcher: str, monkeypatch) -> None:
    m = small_plan(workspace)
    launcher = resolve_launcher(fake_launcher)
    run_jobs([j for j in m["jobs"] if j["kind"] == "train"], launcher, progress=False)
    job = next(j for j in m["jobs"] if j["name"] == "predict:mini:vqa_val")
    # an interrupted attempt left a half-written file in the .partial folder: it is not "done" and is removed
    part = Path(job["write_dir"])
    part.mkdir(parents=True)
    (part / "generated_predictions.jsonl").write_text('{"predict": "half')
    monkeypatch.setenv("FAKE_FAIL", "predict_mini__vqa_val")
    with pytest.raises(JobFailed):
        run_jobs([job], launcher, progress=False)
    assert not (part / "generated_predictions.jsonl").exists() and not Path(job["output_dir"]).exists()
    monkeypatch.delenv("FAKE_FAIL")
    run_jobs([job], launcher, progress=False)
    assert not part.exists() and len(Path(job["done"]).read_text().splitlines()) == 20
    assert "left by an interrupted attempt" in Path(job["log"]).read_text()


def test_cut_off_checkpoint_is_removed_and_force_clears_output(workspace: Path, fake_launcher: str) -> None:
    m = small_plan(workspace)
    job = m["jobs"][0]
    out = Path(job["output_dir"])
    (out / "checkpoint-10").mkdir(parents=True)
    (out / "checkpoint-10" / "trainer_state.json").write_text("{}")
    (out / "checkpoint-20").mkdir()
    (out / "checkpoint-20" / "model.safetensors").write_text("cut off")
    launcher = resolve_launcher(fake_launcher)
    run_jobs([job], launcher, progress=False)
    assert (out / "checkpoint-10").is_dir() and not (out / "checkpoint-20").exists()
    assert "checkpoint-20: cut off while being saved" in Path(job["log"]).read_text()
    run_jobs([job], launcher, progress=False, force=True)
    assert not (out / "checkpoint-10").exists() and Path(job["done"]).is_file()


def test_prediction_waits_for_training_outside_the_selection(workspace: Path, fake_launcher: str) -> None:
    m = small_plan(workspace)
    predicts = select_jobs(m["jobs"], ["predict"])
    with pytest.raises(JobFailed, match=r"NOT RUN predict:mini:vqa_val: needs train:mini, which is not finished"):
        run_jobs(predicts, resolve_launcher(fake_launcher), progress=False, all_jobs=m["jobs"])
    run_jobs(select_jobs(m["jobs"], ["train"]), resolve_launcher(fake_launcher), progress=False)
    assert run_jobs(predicts, resolve_launcher(fake_launcher), progress=False, all_jobs=m["jobs"]).ok


def test_pool_options() -> None:
    assert make_pool().units == ("slot0",) and not make_pool().devices
    assert make_pool(parallel=3).units == ("slot0", "slot1", "slot2")
    pool = make_pool(gpus=["0", "1", "2", "3"], gpus_per_job=2)
    assert pool.devices and pool.train_k == 2 and pool.predict_k == 1
    for kwargs, message in [
        ({"parallel": 2, "gpus": ["0"]}, "--parallel and --gpus: give one"),
        ({"gpus": ["0", "0"]}, r"--gpus lists device\(s\) \['0'\] more than once"),
        ({"gpus": ["0", ""]}, "--gpus '0,': give device ids"),
        ({"gpus": ["0", "1"], "gpus_per_job": 4}, "--gpus-per-job 4 is more than the 2 GPU"),
        ({"parallel": 0}, "--parallel must be a whole number >= 1"),
    ]:
        with pytest.raises(ProbeError, match=message):
            make_pool(**kwargs)


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
    assert [j["name"] for j in select_jobs(m["jobs"], None, ["predict:mini:*"])] == [
        "predict:mini:vqa_val", "predict:mini:cap_val"]  # fmt: skip
    assert [j["name"] for j in select_jobs(m["jobs"], None, ["train:cap+mini"])] == ["train:cap+mini"]
    with pytest.raises(ProbeError, match="unknown job kind"):
        select_jobs(m["jobs"], ["eval"])
    with pytest.raises(ProbeError, match=r"--jobs 'train:nope' matches no job"):
        select_jobs(m["jobs"], None, ["train:nope"])
    log = tmp_path / "x.log"
    log.write_text("\n".join(str(i) for i in range(100)))
    assert tail(log, 3) == "97\n98\n99"


def test_cli_exit_codes_and_summary(workspace: Path, fake_launcher: str, monkeypatch, capsys) -> None:
    small_plan(workspace)
    manifest = str(workspace.parent / "plan" / "manifest.json")
    monkeypatch.setenv("FAKE_FAIL", "train_mini")
    assert main(["run", "--manifest", manifest, "--launcher", fake_launcher, "--parallel", "2"]) == 1
    err = capsys.readouterr().err
    assert "FAILED  train:mini: exit code 3" in err and "NOT RUN predict:mini:vqa_val" in err
    monkeypatch.delenv("FAKE_FAIL")
    assert main(["run", "--manifest", manifest, "--launcher", fake_launcher, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ran 3 job(s), skipped 6 finished job(s), 0 failed")
    quiet = ["run", "--manifest", manifest, "--launcher", fake_launcher, "--force", "--jobs", "train:*", "-q"]
    assert main(quiet) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""  # -q: no summary, no event lines
    assert main(["run", "--manifest", manifest, "--dry-run", "--jobs", "train:*"]) == 0
    assert capsys.readouterr().out.count("done   ") == 3
    assert main(["run", "--manifest", manifest, "--gpus", "0,0"]) == 2
    assert "error: --gpus lists device(s) ['0'] more than once" in capsys.readouterr().err
    assert main(["run", "--manifest", manifest, "--format", "slurm"]) == 2
    assert "add --dry-run" in capsys.readouterr().err


def test_sigterm_stops_running_jobs(workspace: Path, fake_launcher: str) -> None:
    """`scancel` / kill: cotbal run stops its jobs' process groups before it exits (no orphaned trainings)."""
    small_plan(workspace)
    trace_file = workspace.parent / "trace.jsonl"
    env = {**os.environ, "FAKE_SLEEP": "60", "PYTHONPATH": str(ROOT), "FAKE_TRACE": str(trace_file)}
    cmd = [sys.executable, "-m", "cotbal_plugin", "run", "--manifest", str(workspace.parent / "plan"),
           "--launcher", fake_launcher, "--parallel", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    logs = [workspace.parent / "plan" / "logs" / f"train__{run}.log" for run in ("mini", "vqa+mini")]
    deadline = time.monotonic() + 120
    while not all(log.is_file() and "fake llamafactory-cli train" in log.read_text() for log in logs):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    log = logs[0]
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    # the fake jobs were stopped (SIGTERM) before cotbal run returned: each wrote its trace row on the way out
    rows = trace(trace_file)
    assert {"train_mini", "train_vqa+mini"} <= set(rows)
    assert all(r["end"] - r["start"] < 30 for r in rows.values())
    assert "stopped (cotbal run was interrupted)" in log.read_text()


def test_run_all_script(workspace: Path, fake_launcher: str) -> None:
    """``run_all.sh`` (plain bash, no ``cotbal run``) runs every job, renames predictions, then scores and weights."""
    m = small_plan(workspace)
    plan_dir = workspace.parent / "plan"
    bin_dir = str(Path(sys.executable).parent)  # `cotbal` console script
    env = {**os.environ, "COTBAL_LAUNCHER": fake_launcher, "PATH": bin_dir + os.pathsep + os.environ["PATH"],
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    train = Path(m["jobs"][0]["output_dir"])
    (train / "checkpoint-3").mkdir(parents=True)  # cut off while being saved: removed before the training
    stale = next(j for j in m["jobs"] if j["kind"] == "predict")
    Path(stale["write_dir"]).mkdir(parents=True)
    (Path(stale["write_dir"]) / "generated_predictions.jsonl").write_text('{"predict": "half')
    proc = subprocess.run(["bash", str(plan_dir / "run_all.sh")], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert all(Path(j["done"]).is_file() for j in m["jobs"]) and not (train / "checkpoint-3").exists()
    assert not any(Path(j["write_dir"]).exists() for j in m["jobs"] if j["kind"] == "predict")
    assert len(Path(stale["done"]).read_text().splitlines()) == 20
    assert set(json.loads((plan_dir / "weights.json").read_text())["weights"]) == {"vqa", "cap"}
    again = subprocess.run(["bash", str(plan_dir / "run_all.sh")], env=env, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.count("(done)") == len(m["jobs"])
