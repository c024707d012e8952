"""The ``cotbal`` CLI: command registry, exit codes and messages, and the plan → run → eval → weights → report path.

The end-to-end test uses a fake ``llamafactory-cli`` (tests/probe/fake_launcher.py) through ``--launcher``: it checks
the plumbing (subsets, YAMLs, job execution and resume, prediction files, scores, weights, report), not real
LLaMA-Factory training or generation.
"""

from __future__ import annotations

import importlib
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from cotbal_plugin import cli
from tests.probe.conftest import FAKE_LAUNCHER, make_workspace


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------------------------- registry


def test_commands_registered(capsys) -> None:
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for name in ("plan", "run", "eval", "weights", "report", "summary"):
        assert f"    {name} " in out


def test_missing_optional_command_is_skipped(monkeypatch) -> None:
    real = importlib.import_module

    def fake(name: str, *a, **kw):
        if name == "cotbal_plugin.commands.convert":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, *a, **kw)

    monkeypatch.setattr(importlib, "import_module", fake)
    assert [m.NAME for m in cli.load_commands()] == ["plan", "run", "eval", "weights", "report", "summary"]


def test_broken_command_dependency_is_not_hidden(monkeypatch) -> None:
    real = importlib.import_module

    def fake(name: str, *a, **kw):
        if name == "cotbal_plugin.commands.convert":
            raise ModuleNotFoundError("No module named 'somedep'", name="somedep")
        return real(name, *a, **kw)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(ModuleNotFoundError, match="somedep"):
        cli.load_commands()


def test_python_dash_m() -> None:
    proc = subprocess.run([sys.executable, "-m", "cotbal_plugin", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and "cotbal_plugin" in proc.stdout


def test_usage_errors_exit_2(capsys) -> None:
    assert run_cli(capsys)[0] == 2
    code, _, err = run_cli(capsys, "plan", "--base-yaml", "x.yaml", "--out", "o", "--mini-fraction", "abc")
    assert code == 2 and "not a number" in err


# ------------------------------------------------------------------------------------------- user errors


def assert_user_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1
    for needle in needles:
        assert needle in err


def test_weights_errors(tmp_path: Path, capsys) -> None:
    out = tmp_path / "w.json"
    code, _, err = run_cli(capsys, "weights", "--scores", tmp_path / "s.json", "--out", out)
    assert_user_error(code, err, "cotbal weights: error:", "s.json", "cotbal eval")
    scores = tmp_path / "s.json"
    scores.write_text(json.dumps({"mini": {"a": 0.1, "b": 0.2}, "a+mini": {"a": 0.5, "b": 0.3}}))
    code, _, err = run_cli(capsys, "weights", "--scores", scores, "--out", out)
    assert_user_error(code, err, "run 'b+mini' is missing")
    scores.write_text('{"mini": {"a": NaN}}')
    code, _, err = run_cli(capsys, "weights", "--scores", scores, "--out", out)
    assert_user_error(code, err, "NaN")
    scores.write_text(
        json.dumps({"mini": {"a": 0.1, "b": 0.2}, "a+mini": {"a": 0.5, "b": 0.2}, "b+mini": {"a": 0.1, "b": 0.2}})
    )
    code, _, err = run_cli(capsys, "weights", "--scores", scores, "--out", out)
    assert_user_error(code, err, "task 'b'", "denominator of eq. 3 is zero")
    code, _, err = run_cli(capsys, "weights", "--scores", scores, "--out", out, "--fixed", "sharegpt=")
    assert_user_error(code, err, "--fixed expects TASK or TASK=WEIGHT")
    assert not out.exists()


def test_fixed_reads_alike_in_plan_and_weights(tmp_path: Path, capsys) -> None:
    """`--fixed TASK[=WEIGHT]` in both commands; the weight (default 1.0) travels from plan to run_all.sh."""
    import shlex

    base = make_workspace(tmp_path, sizes={"vqa": 64, "cap": 64, "sharegpt": 64})
    common = ["--base-yaml", base, "--tasks", "vqa,cap", "--val", "vqa=vqa_val", "--val", "cap=cap_val",
              "--metric", "vqa=em", "--metric", "cap=em", "--mini-fraction", "1/8", "-q"]  # fmt: skip
    for spelling, weight in (("sharegpt", 1.0), ("sharegpt=0.5", 0.5)):
        out = tmp_path / f"plan_{weight}"
        code, _, err = run_cli(capsys, "plan", *common, "--out", out, "--fixed", spelling)
        assert code == 0, err
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["fixed"]["sharegpt"]["weight"] == weight
        line = next(x for x in (out / "run_all.sh").read_text().splitlines() if x.startswith("cotbal weights"))
        argv = shlex.split(line)
        assert argv[argv.index("--fixed") + 1] == f"sharegpt={weight!r}"
    scores = tmp_path / "s.json"
    scores.write_text(json.dumps({"mini": {"a": 0.1, "b": 0.2}, "a+mini": {"a": 0.5, "b": 0.3},
                                  "b+mini": {"a": 0.2, "b": 0.6}}))  # fmt: skip
    for spelling, weight in (("sharegpt", 1.0), ("sharegpt=0.5", 0.5)):
        argv = ["weights", "--scores", scores, "--out", tmp_path / "w.json", "--fixed", spelling]
        code, _, err = run_cli(capsys, *argv)
        assert code == 0, err
        written = json.loads((tmp_path / "w.json").read_text())
        assert written["weights"]["sharegpt"] == weight and written["fixed"] == {"sharegpt": weight}
        assert written["tasks"] == ["a", "b"]


def test_eval_errors(tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(capsys, "eval", "--out", tmp_path / "s.json")
    assert_user_error(code, err, "nothing to evaluate")
    missing = tmp_path / "p.jsonl"
    code, _, err = run_cli(capsys, "eval", "--pred", f"mini/a={missing}", "--metric", "a=em", "--out", tmp_path / "s")
    assert_user_error(code, err, str(missing), "does not exist")
    missing.write_text(json.dumps({"predict": "x", "label": "x"}) + "\n")
    code, _, err = run_cli(capsys, "eval", "--pred", f"mini/a={missing}", "--metric", "a=f1", "--out", tmp_path / "s")
    assert_user_error(code, err, "unknown metric 'f1'", "em, vqa, cider")
    code, _, err = run_cli(capsys, "eval", "--pred", f"mini={missing}", "--metric", "a=em", "--out", tmp_path / "s")
    assert_user_error(code, err, "RUN/TASK=FILE")
    code, out, _ = run_cli(
        capsys, "eval", "--pred", f"mini/a={missing}", "--metric", "a=em", "--out", tmp_path / "s.json"
    )
    assert code == 0 and json.loads((tmp_path / "s.json").read_text()) == {"mini": {"a": 1.0}}


def test_plan_errors(tmp_path: Path, capsys) -> None:
    base = make_workspace(tmp_path)
    args = ["plan", "--base-yaml", base, "--out", tmp_path / "plan", "--val", "vqa=vqa_val", "--val", "cap=cap_val"]
    code, _, err = run_cli(capsys, *args, "--metric", "vqa=em", "--metric", "cap=em")
    assert_user_error(code, err, "task 'box' has no metric")  # its --val defaults to the box_val entry
    code, _, err = run_cli(capsys, *args, "--val", "box")
    assert_user_error(code, err, "--val expects KEY=VALUE")
    code, _, err = run_cli(capsys, *args, "--val", "box=box_val", "--metric", "vqa=em,cap=em")
    assert_user_error(code, err, "unknown metric 'cap=em'")


def test_run_failure_exit_1(tmp_path: Path, capsys, monkeypatch) -> None:
    base = make_workspace(tmp_path, sizes={"vqa": 64, "cap": 64})
    code, _, _ = run_cli(
        capsys, "plan", "--base-yaml", base, "--out", tmp_path / "plan", "--val", "vqa=vqa_val", "--val",
        "cap=cap_val", "--metric", "vqa=em", "--metric", "cap=em", "--mini-fraction", "1/8", "--no-progress",
    )  # fmt: skip
    assert code == 0
    monkeypatch.setenv("FAKE_FAIL", "predict_mini__cap_val")
    launcher = f"{sys.executable} {FAKE_LAUNCHER}"
    code, _, err = run_cli(capsys, "run", "--manifest", tmp_path / "plan", "--launcher", launcher, "--no-progress")
    assert code == 1
    assert "FAILED  predict:mini:cap_val: exit code 3" in err and "fake failure for the test" in err


def test_summary_command(tmp_path: Path, capsys) -> None:
    table = tmp_path / "t.json"
    table.write_text(json.dumps({"STL": {"a": {"acc": 50.0}}, "EW": {"a": {"acc": 55.0}}}))
    zero = tmp_path / "z.json"
    zero.write_text(json.dumps({"EW": {"z": 10.0}, "STL": {"z": 9.0}}))
    code, out, _ = run_cli(capsys, "summary", "--table", table, "--zero-shot", zero, "--out", tmp_path / "s.md")
    assert code == 0
    assert "| EW | 55.0 | 10.00 | 0.00 | 0.00 |" in out and "| STL | 50.0 | — | — | -10.00 |" in out
    assert (tmp_path / "s.md").read_text() == out


# ------------------------------------------------------------------------------------------- end to end


@pytest.mark.integration
def test_plan_run_eval_weights_report(tmp_path: Path, capsys) -> None:
    base = make_workspace(tmp_path)
    plan_dir = tmp_path / "plan"
    code, out, err = run_cli(
        capsys, "plan", "--base-yaml", base, "--out", plan_dir, "--val", "vqa=vqa_val", "--val", "cap=cap_val",
        "--val", "box=box_val", "--metric", "vqa=em", "--metric", "cap=em,rouge_l", "--metric", "box=em",
        "--mini-fraction", "1/8", "--large-fraction", "0.5", "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    assert "warning: the mini subset of task 'box' has 20 samples" in err
    launcher = f"{sys.executable} {FAKE_LAUNCHER}"
    code, out, err = run_cli(capsys, "run", "--manifest", plan_dir / "manifest.json", "--launcher", launcher)
    assert code == 0, err
    assert "ran 16 job(s), skipped 0" in out
    code, out, _ = run_cli(capsys, "run", "--manifest", plan_dir, "--launcher", launcher, "--no-progress")
    assert "ran 0 job(s), skipped 16" in out  # resume
    scores_path = tmp_path / "scores.json"
    code, out, err = run_cli(capsys, "eval", "--manifest", plan_dir / "manifest.json", "--out", scores_path)
    assert code == 0, err
    scores = json.loads(scores_path.read_text())
    # every score is the plain exact-match rate of its prediction file
    manifest = json.loads((plan_dir / "manifest.json").read_text())
    for p in manifest["predictions"]:
        rows = [json.loads(x) for x in Path(p["file"]).read_text().splitlines()]
        assert scores[p["run"]][p["task"]] == pytest.approx(sum(r["predict"] == r["label"] for r in rows) / len(rows))
    details = json.loads((tmp_path / "scores.details.json").read_text())
    assert set(details["mini"]["cap"]) >= {"em", "rouge_l", "n", "unparsable", "files"}

    weights_path = tmp_path / "weights.json"
    code, out, err = run_cli(capsys, "weights", "--scores", scores_path, "--temperature", "0.5", "--out", weights_path)
    assert code == 0, err
    w = json.loads(weights_path.read_text())
    tasks = ["vqa", "cap", "box"]
    assert w["tasks"] == tasks
    # recompute eqs. 3-11 with plain Python from scores.json
    v = scores
    c = {(i, j): (v[f"{i}+mini"][j] - v["mini"][j]) / (v[f"{j}+mini"][j] - v["mini"][j]) for i in tasks for j in tasks}
    c_out = [sum(c[i, j] for j in tasks if j != i) / 2 for i in tasks]
    c_in = [sum(c[j, i] for j in tasks if j != i) / 2 for i in tasks]
    d = [1 - v["mini"][i] / v[f"{i}+mini"][i] for i in tasks]

    def lam(x: list[float]) -> list[float]:
        e = [math.exp(a / 0.5) for a in x]
        return [3 * a / sum(e) for a in e]

    lam_c = [(a + b) / 2 for a, b in zip(lam(c_out), lam([-x for x in c_in]))]
    expected = [(a + b) / 2 for a, b in zip(lam_c, lam(d))]
    assert [w["weights"][t] for t in tasks] == pytest.approx(expected)
    assert w["D"] == pytest.approx(dict(zip(tasks, d)))

    code, out, err = run_cli(capsys, "report", "--weights", weights_path, "--out", tmp_path / "report")
    assert code == 0, err
    assert {p.name for p in (tmp_path / "report").iterdir()} == {
        "report.md", "contribution.png", "difficulty.png", "weights.png"
    }  # fmt: skip
