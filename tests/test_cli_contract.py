"""The error contract of every ``cotbal`` sub-command, table-driven.

Each case runs one command line against a bad input and checks: exit code 2, exactly one line on stderr,
``cotbal <command>: error: …`` naming the culprit, no traceback, and nothing written. Then: ``--out -``, the
shared ``--quiet`` / ``--progress`` flags, and the distinction between user errors (2) and bugs (traceback, 1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cotbal_plugin import cli

REPO = Path(__file__).resolve().parents[1]
SCORES = {
    "mini": {"a": 0.2, "b": 0.4},
    "a+mini": {"a": 0.5, "b": 0.45},
    "b+mini": {"a": 0.25, "b": 0.6},
}


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, content: str | bytes | object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def scores_file(tmp: Path) -> Path:
    return write(tmp / "scores.json", SCORES)


def weights_file(tmp: Path, weights: object = None, **extra: object) -> Path:
    return write(tmp / "w.json", {"weights": {"a": 1.2, "b": 0.8} if weights is None else weights, **extra})


def table_file(tmp: Path, data: object = None) -> Path:
    default = {"STL": {"a": {"acc": 50.0}}, "EW": {"a": {"acc": 55.0}}}
    return write(tmp / "table.json", default if data is None else data)


def pred_file(tmp: Path, text: str = '{"predict": "x", "label": "x"}\n') -> Path:
    return write(tmp / "pred.jsonl", text)


def manifest_file(tmp: Path, data: object) -> Path:
    return write(tmp / "plan" / "manifest.json", data)


GOOD_JOB = {"name": "train:mini", "kind": "train", "yaml": "t.yaml", "done": "d", "log": "l"}

# id → (command line builder, substrings the one error line must contain)
Case = tuple[Callable[[Path], list[object]], list[str]]
CASES: dict[str, Case] = {
    # ------------------------------------------------------------------------------------------- weights
    "weights/missing scores": (
        lambda t: ["weights", "--scores", t / "nope.json", "--out", t / "w.json"],
        ["--scores", "nope.json", "does not exist", "cotbal eval"],
    ),
    "weights/scores is a directory": (
        lambda t: ["weights", "--scores", t, "--out", t / "w.json"],
        ["--scores", "is a directory"],
    ),
    "weights/empty scores": (
        lambda t: ["weights", "--scores", write(t / "s.json", ""), "--out", t / "w.json"],
        ["--scores", "s.json", "is empty"],
    ),
    "weights/invalid JSON": (
        lambda t: ["weights", "--scores", write(t / "s.json", '{"mini": {"a": 0.1,}}'), "--out", t / "w.json"],
        ["--scores", "not valid JSON", "line 1"],
    ),
    "weights/binary file": (
        lambda t: ["weights", "--scores", write(t / "s.json", b"\x89PNG\xff\xfe"), "--out", t / "w.json"],
        ["--scores", "not UTF-8"],
    ),
    "weights/NaN score": (
        lambda t: ["weights", "--scores", write(t / "s.json", '{"mini": {"a": NaN}}'), "--out", t / "w.json"],
        ["s.json", "NaN"],
    ),
    "weights/string score": (
        lambda t: ["weights", "--scores", write(t / "s.json", {"mini": {"a": "0.5"}}), "--out", t / "w.json"],
        ["run 'mini' on task 'a'", "not a number"],
    ),
    "weights/scores not an object": (
        lambda t: ["weights", "--scores", write(t / "s.json", [1, 2]), "--out", t / "w.json"],
        ["expected a JSON object", "got list"],
    ),
    "weights/no runs": (
        lambda t: ["weights", "--scores", write(t / "s.json", {}), "--out", t / "w.json"],
        ["has no runs", "cotbal eval"],
    ),
    "weights/unknown task": (
        lambda t: ["weights", "--scores", scores_file(t), "--tasks", "a,zz", "--out", t / "w.json"],
        ["'zz'"],
    ),
    "weights/non-numeric fixed weight": (
        lambda t: ["weights", "--scores", scores_file(t), "--fixed", "sg=high", "--out", t / "w.json"],
        ["--fixed sg", "'high' is not a number"],
    ),
    "weights/negative fixed weight": (
        lambda t: ["weights", "--scores", scores_file(t), "--fixed", "sg=-1", "--out", t / "w.json"],
        ["--fixed sg", "must be > 0"],
    ),
    "weights/fixed without task": (
        lambda t: ["weights", "--scores", scores_file(t), "--fixed", "=1", "--out", t / "w.json"],
        ["--fixed expects TASK or TASK=WEIGHT"],
    ),
    "weights/zero temperature": (
        lambda t: ["weights", "--scores", scores_file(t), "--temperature", "0", "--out", t / "w.json"],
        ["argument --temperature", "> 0", "--help"],
    ),
    "weights/NaN temperature": (
        lambda t: ["weights", "--scores", scores_file(t), "--temperature", "nan", "--out", t / "w.json"],
        ["argument --temperature", "finite"],
    ),
    "weights/out is a directory": (
        lambda t: ["weights", "--scores", scores_file(t), "--out", t],
        ["--out", "is a directory"],
    ),
    "weights/out under a file": (
        lambda t: ["weights", "--scores", scores_file(t), "--out", write(t / "f.txt", "x") / "w.json"],
        ["--out", "f.txt", "not a directory"],
    ),
    "weights/unwritable output": (  # /proc refuses new files and writes even for root (CI runs as root)
        lambda t: ["weights", "--scores", scores_file(t), "--out", "/proc/cotbal-test/w.json"],
        ["--out", "cannot write '/proc/cotbal-test/w.json'"],
    ),
    "weights/missing option": (
        lambda t: ["weights", "--out", t / "w.json"],
        ["the following arguments are required: --scores"],
    ),
    # -------------------------------------------------------------------------------------------- report
    "report/missing weights": (
        lambda t: ["report", "--weights", t / "nope.json", "--out", t / "rep"],
        ["--weights", "nope.json", "does not exist", "cotbal weights"],
    ),
    "report/weights is a directory": (
        lambda t: ["report", "--weights", t, "--out", t / "rep"],
        ["--weights", "is a directory"],
    ),
    "report/non-numeric weight": (
        lambda t: ["report", "--weights", weights_file(t, {"a": "high", "b": 1}), "--out", t / "rep"],
        ["--weights", "task 'a'", "'high'", "not a number"],
    ),
    "report/negative weight": (
        lambda t: ["report", "--weights", weights_file(t, {"a": -0.5, "b": 1}), "--out", t / "rep"],
        ["task 'a'", "must be > 0"],
    ),
    "report/NaN weight": (
        lambda t: ["report", "--weights", write(t / "w.json", '{"weights": {"a": NaN}}'), "--out", t / "rep"],
        ["task 'a'", "nan"],
    ),
    "report/no weights object": (
        lambda t: ["report", "--weights", write(t / "w.json", {"lambda": {}}), "--out", t / "rep"],
        ['no "weights" object'],
    ),
    "report/empty weights": (
        lambda t: ["report", "--weights", weights_file(t, {}), "--out", t / "rep"],
        ['"weights" object', "is empty"],
    ),
    "report/C of the wrong shape": (
        lambda t: ["report", "--weights", weights_file(t, tasks=["a", "b"], C=[[1.0]]), "--out", t / "rep"],
        ['"C"', "2×2"],
    ),
    "report/non-numeric C": (
        lambda t: ["report", "--weights", weights_file(t, tasks=["a", "b"], C=[[1, "x"], [0.1, 1]]), "--out", t / "r"],
        ['"C"[0][1]', "a → b", "'x'"],
    ),
    "report/non-numeric D": (
        lambda t: ["report", "--weights", weights_file(t, D={"a": "x", "b": 0.1}), "--out", t / "rep"],
        ['"D"', "task 'a'", "not a finite number"],
    ),
    "report/D of an unknown task": (
        lambda t: ["report", "--weights", weights_file(t, D={"a": 0.1, "zz": 0.1}), "--out", t / "rep"],
        ['"D"', "task 'zz'"],
    ),
    "report/lambda not an object": (
        lambda t: ["report", "--weights", weights_file(t, **{"lambda": [1, 2]}), "--out", t / "rep"],
        ['"lambda"'],
    ),
    "report/task without weight": (
        lambda t: ["report", "--weights", weights_file(t, tasks=["a", "b", "c"]), "--out", t / "rep"],
        ["['c']", '"tasks"', '"weights"'],
    ),
    "report/out is a file": (
        lambda t: ["report", "--weights", weights_file(t), "--out", write(t / "f.txt", "x")],
        ["--out", "f.txt", "not a directory"],
    ),
    "report/unwritable output": (
        lambda t: ["report", "--weights", weights_file(t), "--out", "/proc/cotbal-report"],
        ["--out", "cannot create folder '/proc/cotbal-report'"],
    ),
    "report/out to stdout": (
        lambda t: ["report", "--weights", weights_file(t), "--out", "-"],
        ["argument --out", "standard output", "not supported"],
    ),
    # ------------------------------------------------------------------------------------------- summary
    "summary/missing table": (
        lambda t: ["summary", "--table", t / "nope.json"],
        ["--table", "nope.json", "does not exist"],
    ),
    "summary/invalid JSON": (
        lambda t: ["summary", "--table", write(t / "t.json", "{")],
        ["--table", "not valid JSON"],
    ),
    "summary/empty object": (
        lambda t: ["summary", "--table", table_file(t, {})],
        ["--table", "non-empty"],
    ),
    "summary/string value": (
        lambda t: ["summary", "--table", table_file(t, {"STL": {"a": {"acc": "high"}}})],
        ["'STL' / 'a' / 'acc'", "not a finite number"],
    ),
    "summary/NaN value": (
        lambda t: ["summary", "--table", write(t / "t.json", '{"STL": {"a": NaN}}')],
        ["--table", "NaN"],
    ),
    "summary/unknown baseline": (
        lambda t: ["summary", "--table", table_file(t), "--baseline", "XX"],
        ["baseline method 'XX'", "'EW', 'STL'"],
    ),
    "summary/unknown task in a method": (
        lambda t: ["summary", "--table", table_file(t, {"STL": {"a": 1.0, "b": 1.0}, "EW": {"a": 1.0}})],
        ["method 'EW' has no results for task 'b'"],
    ),
    "summary/missing zero-shot table": (
        lambda t: ["summary", "--table", table_file(t), "--zero-shot", t / "z.json"],
        ["--zero-shot", "z.json", "does not exist"],
    ),
    "summary/both outputs on stdout": (
        lambda t: ["summary", "--table", table_file(t), "--out", "-", "--json", "-"],
        ["--out and --json cannot both be -"],
    ),
    "summary/bad decimals": (
        lambda t: ["summary", "--table", table_file(t), "--decimals", "-1"],
        ["argument --decimals"],
    ),
    "summary/out is a directory": (
        lambda t: ["summary", "--table", table_file(t), "--out", t],
        ["--out", "is a directory"],
    ),
    # ---------------------------------------------------------------------------------------------- eval
    "eval/nothing to evaluate": (
        lambda t: ["eval", "--out", t / "s.json"],
        ["nothing to evaluate", "--manifest", "--pred"],
    ),
    "eval/missing prediction file": (
        lambda t: ["eval", "--pred", f"mini/a={t / 'p.jsonl'}", "--metric", "a=em", "--out", t / "s.json"],
        ["p.jsonl", "does not exist"],
    ),
    "eval/empty prediction file": (
        lambda t: ["eval", "--pred", f"mini/a={pred_file(t, '')}", "--metric", "a=em", "--out", t / "s.json"],
        ["pred.jsonl", "is empty"],
    ),
    "eval/prediction line not JSON": (
        lambda t: ["eval", "--pred", f"mini/a={pred_file(t, '{x')}", "--metric", "a=em", "--out", t / "s.json"],
        ["pred.jsonl", "line 1", "not valid JSON"],
    ),
    "eval/unknown metric": (
        lambda t: ["eval", "--pred", f"mini/a={pred_file(t)}", "--metric", "a=f1", "--out", t / "s.json"],
        ["unknown metric 'f1'", "em"],
    ),
    "eval/metric of an unknown task": (
        lambda t: [
            "eval",
            "--pred",
            f"mini/a={pred_file(t)}",
            "--metric",
            "a=em",
            "--metric",
            "zz=em",
            "--out",
            t / "s.json",
        ],  # fmt: skip
        ["--metric", "['zz']", "['a']"],
    ),
    "eval/bad pred key": (
        lambda t: ["eval", "--pred", f"mini={pred_file(t)}", "--metric", "a=em", "--out", t / "s.json"],
        ["--pred expects RUN/TASK=FILE"],
    ),
    "eval/missing manifest": (
        lambda t: ["eval", "--manifest", t / "nope.json", "--out", t / "s.json"],
        ["--manifest", "nope.json", "does not exist", "cotbal plan"],
    ),
    "eval/folder without manifest": (
        lambda t: ["eval", "--manifest", t, "--out", t / "s.json"],
        ["--manifest", "has no manifest.json"],
    ),
    "eval/manifest of another version": (
        lambda t: ["eval", "--manifest", manifest_file(t, {"version": 99, "jobs": []}), "--out", t / "s.json"],
        ["not a cotbal manifest", "version 99"],
    ),
    "eval/manifest prediction without file": (
        lambda t: [
            "eval",
            "--manifest",
            manifest_file(t, {"version": 1, "jobs": [], "predictions": [{"run": "mini", "task": "a"}]}),
            "--out",
            t / "s.json",
        ],  # fmt: skip
        ['"predictions"', "['file']"],
    ),
    "eval/out is a directory": (
        lambda t: ["eval", "--pred", f"mini/a={pred_file(t)}", "--metric", "a=em", "--out", t],
        ["--out", "is a directory"],
    ),
    "eval/both outputs on stdout": (
        lambda t: ["eval", "--pred", f"mini/a={pred_file(t)}", "--metric", "a=em", "--out", "-", "--details", "-"],
        ["--out and --details cannot both be -"],
    ),
    # ----------------------------------------------------------------------------------------------- run
    "run/missing manifest": (
        lambda t: ["run", "--manifest", t / "nope.json"],
        ["--manifest", "does not exist"],
    ),
    "run/empty manifest": (
        lambda t: ["run", "--manifest", manifest_file(t, "")],
        ["--manifest", "is empty"],
    ),
    "run/jobs not a list": (
        lambda t: ["run", "--manifest", manifest_file(t, {"version": 1, "jobs": {"a": 1}})],
        ['"jobs" must be a list'],
    ),
    "run/job without yaml": (
        lambda t: ["run", "--manifest", manifest_file(t, {"version": 1, "jobs": [{**GOOD_JOB, "yaml": None}]})],
        ["'train:mini'", "['yaml']"],
    ),
    "run/unknown job kind": (
        lambda t: ["run", "--manifest", manifest_file(t, {"version": 1, "jobs": [GOOD_JOB]}), "--only", "zz"],
        ["unknown job kind", "'zz'"],
    ),
    "run/launcher not found": (
        lambda t: [
            "run",
            "--manifest",
            manifest_file(t, {"version": 1, "jobs": [GOOD_JOB]}),
            "--launcher",
            "no-such-launcher-xyz",
        ],  # fmt: skip
        ["'no-such-launcher-xyz' not found"],
    ),
    "run/repeated gpu": (
        lambda t: ["run", "--manifest", manifest_file(t, {"version": 1, "jobs": [GOOD_JOB]}), "--gpus", "0,1,0"],
        ["--gpus", "['0'] more than once"],
    ),
    "run/empty gpu id": (
        lambda t: ["run", "--manifest", manifest_file(t, {"version": 1, "jobs": [GOOD_JOB]}), "--gpus", "0,,1"],
        ["--gpus '0,,1'", "separated by commas"],
    ),
    "run/gpus per job not a number": (
        lambda t: ["run", "--manifest", manifest_file(t, {"version": 1, "jobs": [GOOD_JOB]}), "--gpus-per-job", "x"],
        ["argument --gpus-per-job", "'x'"],
    ),
    "run/zero gpus per job": (
        lambda t: ["run", "--manifest", manifest_file(t, {"version": 1, "jobs": [GOOD_JOB]}), "--gpus-per-job", "0"],
        ["--gpus-per-job must be a whole number >= 1"],
    ),
    "run/more gpus per job than gpus": (
        lambda t: [
            "run",
            "--manifest",
            manifest_file(t, {"version": 1, "jobs": [GOOD_JOB]}),
            "--gpus",
            "0,1",
            "--gpus-per-job",
            "4",
        ],  # fmt: skip
        ["--gpus-per-job 4", "2 GPU(s)"],
    ),
    "run/parallel and gpus": (
        lambda t: [
            "run",
            "--manifest",
            manifest_file(t, {"version": 1, "jobs": [GOOD_JOB]}),
            "--gpus",
            "0,1",
            "--parallel",
            "2",
        ],  # fmt: skip
        ["--parallel and --gpus"],
    ),
    "run/slurm without dry-run": (
        lambda t: ["run", "--manifest", manifest_file(t, {"version": 1, "jobs": [GOOD_JOB]}), "--format", "slurm"],
        ["--format slurm", "add --dry-run"],
    ),
    "run/slurm with gpus": (
        lambda t: [
            "run",
            "--manifest",
            manifest_file(t, {"version": 1, "jobs": [GOOD_JOB]}),
            "--dry-run",
            "--format",
            "slurm",
            "--gpus",
            "0",
        ],  # fmt: skip
        ["Slurm places them", "--gpus-per-job"],
    ),
    "run/unknown format": (
        lambda t: ["run", "--manifest", manifest_file(t, {"version": 1, "jobs": [GOOD_JOB]}), "--format", "xml"],
        ["argument --format", "'xml'"],
    ),
    # ---------------------------------------------------------------------------------------------- plan
    "plan/missing base YAML": (
        lambda t: ["plan", "--base-yaml", t / "nope.yaml", "--out", t / "p"],
        ["nope.yaml", "does not exist"],
    ),
    "plan/invalid base YAML": (
        lambda t: ["plan", "--base-yaml", write(t / "b.yaml", "a: [1,"), "--out", t / "p"],
        ["b.yaml", "not valid YAML"],
    ),
    "plan/out to stdout": (
        lambda t: ["plan", "--base-yaml", t / "b.yaml", "--out", "-"],
        ["argument --out", "standard output"],
    ),
    "plan/out is a file": (
        lambda t: ["plan", "--base-yaml", t / "b.yaml", "--out", write(t / "f.txt", "x")],
        ["--out", "f.txt", "not a directory"],
    ),
    "plan/zero fixed weight": (
        lambda t: ["plan", "--base-yaml", t / "b.yaml", "--out", t / "p", "--fixed", "sharegpt=0"],
        ["--fixed sharegpt", "must be > 0"],
    ),
    "plan/bad fraction": (
        lambda t: ["plan", "--base-yaml", t / "b.yaml", "--out", t / "p", "--mini-fraction", "abc"],
        ["argument --mini-fraction", "not a number"],
    ),
    "plan/negative throughput": (
        lambda t: ["plan", "--base-yaml", t / "b.yaml", "--out", t / "p", "--throughput", "-1"],
        ["argument --throughput", "'-1'", "> 0"],
    ),
    "plan/NaN predict throughput": (
        lambda t: ["plan", "--base-yaml", t / "b.yaml", "--out", t / "p", "--predict-throughput", "nan"],
        ["argument --predict-throughput", "finite"],
    ),
    "plan/bad save steps": (
        lambda t: ["plan", "--base-yaml", t / "b.yaml", "--out", t / "p", "--save-steps", "often"],
        ["argument --save-steps", "'often' is not a number"],
    ),
    "plan/unknown infer backend": (
        lambda t: ["plan", "--base-yaml", t / "b.yaml", "--out", t / "p", "--infer-backend", "tgi"],
        ["argument --infer-backend", "'tgi'"],
    ),
    "plan/vllm config not JSON": (
        lambda t: ["plan", "--base-yaml", t / "b.yaml", "--out", t / "p", "--vllm-config", "{max_model_len: 1"],
        ["--vllm-config is not valid JSON"],
    ),
    "plan/vllm config not an object": (
        lambda t: ["plan", "--base-yaml", t / "b.yaml", "--out", t / "p", "--vllm-config", "[1]"],
        ["--vllm-config must be a JSON object"],
    ),
    "plan/saves dir to stdout": (
        lambda t: ["plan", "--base-yaml", t / "b.yaml", "--out", t / "p", "--saves-dir", "-"],
        ["argument --saves-dir", "standard output"],
    ),
    # ------------------------------------------------------------------------------------------- convert
    "convert/missing annotation file": (
        lambda t: ["convert", t / "nope_train.json", "--out", t / "o"],
        ["nope_train.json", "does not exist"],
    ),
    "convert/invalid JSON": (
        lambda t: ["convert", write(t / "x_train.json", "[{"), "--out", t / "o"],
        ["x_train.json", "not valid JSON"],
    ),
    "convert/out to stdout": (
        lambda t: ["convert", write(t / "x_train.json", "[]"), "--out", "-"],
        ["argument --out", "standard output"],
    ),
    "convert/bad task rule": (
        lambda t: ["convert", write(t / "x_train.json", "[]"), "--out", t / "o", "--task-rule", "x=img:a"],
        ["--task-rule 'x=img:a'", "TASK=KIND:REGEX"],
    ),
    "convert/bad metric": (
        lambda t: ["convert", write(t / "x_train.json", "[]"), "--out", t / "o", "--metric", "vqa"],
        ["--metric expects TASK=METRIC", "'vqa'"],
    ),
}


def assert_one_error_line(code: int, out: str, err: str, command: str, needles: list[str]) -> None:
    lines = err.splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert lines[0].startswith(f"cotbal {command}: error: "), lines[0]
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gives_one_error_line(case: str, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    build, needles = CASES[case]
    argv = build(tmp_path)
    before = {p for p in tmp_path.rglob("*")}
    code, out, err = run_cli(capsys, *argv)
    assert_one_error_line(code, out, err, case.split("/")[0], needles)
    created = {p for p in tmp_path.rglob("*")} - before
    assert not [p for p in created if p.is_file()], f"files written despite the error: {created}"
    assert not (tmp_path / "-").exists()


def test_every_command_is_in_the_table() -> None:
    commands = {m.NAME for m in cli.load_commands()}
    assert commands == {case.split("/")[0] for case in CASES}


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["nope"], "invalid choice: 'nope'"),
        (["weights", "--scores", "s.json", "--out", "w.json", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_are_one_line(capsys, argv: list[str], needle: str) -> None:
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and len(err.splitlines()) == 1 and needle in err and "usage:" not in err
    assert err.startswith("cotbal weights: error:" if argv else "cotbal: error:") or argv == ["nope"]


def test_real_process_exit_codes(tmp_path: Path) -> None:
    """Through the interpreter: a user error is exit 2 and one stderr line; a bug keeps its traceback (exit 1)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    bad = write(tmp_path / "w.json", {"weights": {"a": "high"}})
    proc = subprocess.run(
        [sys.executable, "-m", "cotbal_plugin", "report", "--weights", str(bad), "--out", str(tmp_path / "r")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("cotbal report: error: --weights") and proc.stdout == ""
    bug = (
        "import sys, cotbal_plugin.commands.summary as s; from cotbal_plugin.cli import main\n"
        "def boom(args): raise ZeroDivisionError('a bug')\n"
        "s.run = boom; sys.exit(main(['summary', '--table', 'x.json']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", bug], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "ZeroDivisionError: a bug" in proc.stderr


def test_os_errors_on_user_paths_are_user_errors(capsys, monkeypatch) -> None:
    import cotbal_plugin.commands.summary as summary

    def denied(args):
        raise PermissionError(13, "Permission denied", "/data/x.json")

    monkeypatch.setattr(summary, "run", denied)
    code, _, err = run_cli(capsys, "summary", "--table", "t.json")
    assert code == 2 and err == "cotbal summary: error: Permission denied: '/data/x.json'\n"


def test_multi_line_messages_become_one_line(capsys, monkeypatch) -> None:
    import cotbal_plugin.commands.summary as summary
    from cotbal_plugin.errors import CotbalUserError

    def problems(args):
        raise CotbalUserError("2 problems:\n  first\n  second")

    monkeypatch.setattr(summary, "run", problems)
    code, _, err = run_cli(capsys, "summary", "--table", "t.json")
    assert code == 2 and err == "cotbal summary: error: 2 problems: first second\n"


# ---------------------------------------------------------------------------------------------- --out -


def test_weights_out_dash_writes_json_to_stdout(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    scores = scores_file(tmp_path)
    code, out, err = run_cli(capsys, "weights", "--scores", scores, "--out", "-")
    assert code == 0, err
    data = json.loads(out)  # stdout holds the JSON document and nothing else
    code, _, _ = run_cli(capsys, "weights", "--scores", scores, "--out", tmp_path / "w.json")
    assert data == json.loads((tmp_path / "w.json").read_text())
    assert "wrote standard output" in err and "a  " in err  # status lines moved to stderr
    assert not (tmp_path / "-").exists()


def test_eval_out_dash(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    pred = pred_file(tmp_path, '{"predict": "x", "label": "x"}\n{"predict": "y", "label": "z"}\n')
    code, out, err = run_cli(capsys, "eval", "--pred", f"mini/a={pred}", "--metric", "a=em", "--out", "-")
    assert code == 0, err
    assert json.loads(out) == {"mini": {"a": 0.5}}
    assert "no details file" in err and not (tmp_path / "-").exists() and not list(tmp_path.glob("*.details.json"))
    code, out, err = run_cli(
        capsys, "eval", "--pred", f"mini/a={pred}", "--metric", "a=em", "--out", "-", "--details", "d.json"
    )
    assert json.loads(out) == {"mini": {"a": 0.5}} and json.loads((tmp_path / "d.json").read_text())["mini"]["a"]


def test_summary_json_dash_keeps_stdout_for_json(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    table = table_file(tmp_path)
    code, out, err = run_cli(capsys, "summary", "--table", table, "--json", "-")
    assert code == 0
    assert json.loads(out)["summary"]["EW"]["delta_i"] == pytest.approx(10.0)
    assert "| EW |" in err  # the table became a status message
    code, out, err = run_cli(capsys, "summary", "--table", table, "--out", "-")
    assert out.startswith("| Method |") and err == ""
    assert not (tmp_path / "-").exists()


# ----------------------------------------------------------------------------------- --quiet, --progress


def test_every_command_has_the_same_output_flags() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, child in sub.choices.items():
        flags = {s for action in child._actions for s in action.option_strings}
        assert {"-q", "--quiet", "--progress", "--no-progress"} <= flags, name
        assert "Examples:" in (child.epilog or ""), f"`cotbal {name} --help` has no examples"


def test_quiet_silences_status_lines_only(tmp_path: Path, capsys) -> None:
    scores = scores_file(tmp_path)
    code, out, err = run_cli(capsys, "weights", "--scores", scores, "--out", tmp_path / "w.json", "--quiet")
    assert code == 0 and out == "" and err == ""
    code, out, _ = run_cli(capsys, "summary", "--table", table_file(tmp_path), "--quiet")
    assert out.startswith("| Method |")  # the requested output is still printed
    code, _, err = run_cli(capsys, "weights", "--scores", tmp_path / "nope.json", "--out", tmp_path / "w.json", "-q")
    assert code == 2 and "error:" in err  # errors are never silenced


def test_progress_bars_follow_tqdm_convention(tmp_path: Path, capsys) -> None:
    pred = pred_file(tmp_path)
    argv = ["eval", "--pred", f"mini/a={pred}", "--metric", "a=em", "--out", tmp_path / "s.json"]
    code, _, err = run_cli(capsys, *argv)  # stderr is not a terminal here: no bar
    assert code == 0 and "cotbal eval" not in err and "it/s" not in err
    code, _, err = run_cli(capsys, *argv, "--progress")
    assert code == 0 and "cotbal eval: 100%" in err
    code, out, err = run_cli(capsys, *argv, "--quiet", "--progress")  # an explicit --progress wins over --quiet
    assert "cotbal eval: 100%" in err and out == ""
