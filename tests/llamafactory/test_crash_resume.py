"""Crash-safe training state: the process is killed at points of a checkpoint save and of a step; the next run of the
same config (LLaMA-Factory's auto-resume) ends with the uninterrupted run's parameters and weights, or — where HF
itself cannot resume — fails as stock does, with a message that says what is wrong.

Each run is LLaMA-Factory's own ``run_exp`` in a forked child of this test process (LLaMA-Factory is imported once),
and a kill is ``os._exit(137)`` at an exact point: no cleanup, no flush, as after SIGKILL / pre-emption.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cotbal_plugin.testing.workspace import load_params, max_abs_diff, sft_config

pytestmark = pytest.mark.integration

KILLED = 137
TASKS = ["short", "mid", "long"]
BASE = {
    "dataset": "short,mid,long",
    "mix_strategy": "interleave_under",
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 2,
    "max_steps": 8,
    "learning_rate": 0.3,
    "save_strategy": "steps",
    "save_steps": 2,
    "save_total_limit": 1,
    "overwrite_output_dir": False,  # LLaMA-Factory resumes from the last checkpoint by itself
    "logging_steps": 1,
}
HP = {"dwa": {"cotbal_dwa_window": 1}, "igb": {"cotbal_igb_window": 2}}


# ------------------------------------------------------------------------------------------------ kill hooks
def _kill_hooks(point: str, step: int) -> None:
    """Patch transformers (in the child only) so the process dies at ``point`` of checkpoint ``step``."""
    import transformers.trainer as hf
    from transformers.trainer_callback import TrainerState

    def die() -> None:
        sys.stdout.flush()
        os._exit(KILLED)

    if point == "save_begin":  # before anything of checkpoint-<step> is written
        original = hf.Trainer._save_checkpoint

        def save_checkpoint(self: Any, *a: Any, **k: Any) -> None:
            if self.state.global_step == step:
                die()
            original(self, *a, **k)

        hf.Trainer._save_checkpoint = save_checkpoint
    elif point == "after_model":  # model weights written, no optimizer / trainer_state.json yet
        original_save_model = hf.Trainer.save_model

        def save_model(self: Any, output_dir: Any = None, _internal_call: bool = False) -> None:
            original_save_model(self, output_dir, _internal_call)
            if _internal_call and self.state.global_step == step:
                die()

        hf.Trainer.save_model = save_model
    elif point in ("partial_state", "after_state"):  # half-written / complete trainer_state.json, before rotation
        original_json = TrainerState.save_to_json

        def save_to_json(self: Any, json_path: str) -> None:
            if f"checkpoint-{step}" not in str(json_path):
                return original_json(self, json_path)
            if point == "partial_state":
                text = json.dumps(self.__dict__, indent=2, sort_keys=True, default=str)
                Path(json_path).write_text(text[: len(text) // 2])
                die()
            original_json(self, json_path)
            die()

        TrainerState.save_to_json = save_to_json
    elif point == "after_rotate":  # the checkpoint is complete and the older one rotated away
        original = hf.Trainer._save_checkpoint

        def save_checkpoint_then_die(self: Any, *a: Any, **k: Any) -> None:
            original(self, *a, **k)
            if self.state.global_step == step:
                die()

        hf.Trainer._save_checkpoint = save_checkpoint_then_die
    elif point == "micro_batch":  # in the middle of an optimizer step: the step-th forward/backward of the run
        original_step = hf.Trainer.training_step
        calls = {"n": 0}

        def training_step(self: Any, *a: Any, **k: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == step:
                die()
            return original_step(self, *a, **k)

        hf.Trainer.training_step = training_step
    else:  # pragma: no cover
        raise ValueError(point)


def _forked(config: dict[str, Any], log: Path, before: Callable[[], None] | None = None) -> int:
    """Run LLaMA-Factory's ``run_exp(config)`` in a forked child; return its exit code (137 when killed)."""
    from llamafactory.train.tuner import run_exp

    from . import _inproc  # noqa: F401  (LLaMA-Factory imported and the plugin installed before forking)

    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdout = sys.stderr = open(fd, "w", buffering=1, closefd=False)  # noqa: SIM115 (pytest's capture)
            warnings.simplefilter("default")
            import logging

            logging.getLogger("cotbal_plugin").addHandler(logging.StreamHandler(sys.stderr))  # pytest owns root's
            warnings.showwarning = lambda msg, cat, fname, lineno, file=None, line=None: sys.stderr.write(
                warnings.formatwarning(msg, cat, fname, lineno, line)
            )  # pytest records warnings instead of printing them; the child prints, as llamafactory-cli does
            if before is not None:
                before()
            run_exp(dict(config))
            code = 0
        except BaseException:  # noqa: BLE001 - report anything, the child must never return into pytest
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _config(ws: Path, name: str, method: str | None, **kw: Any) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if method is not None:
        extra = {"loss": "cotbal", "cotbal_weighting": method, **HP.get(method, {})}
        if method == "static":
            extra["cotbal_weights"] = str(ws / "weights.json")
    return sft_config(ws / "model", ws / "data", ws / "runs" / name, **{**BASE, **extra, **kw})


def _run(ws: Path, name: str, method: str | None, kill: tuple[str, int] | None = None, **kw: Any) -> int:
    attempt = len(list((ws / "logs").glob(f"{name}.*.log"))) if (ws / "logs").is_dir() else 0

    def before() -> None:
        os.environ["COTBAL_TRACE_DIR"] = str(ws / "trace" / f"{name}.{attempt}")
        if kill:
            _kill_hooks(*kill)

    return _forked(_config(ws, name, method, **kw), ws / "logs" / f"{name}.{attempt}.log", before)


def _first_step(ws: Path, name: str, attempt: int) -> int:
    """Global step at which attempt ``attempt`` of run ``name`` took its first optimizer step (from the trace)."""
    lines = (ws / "trace" / f"{name}.{attempt}" / "rank0.jsonl").read_text().splitlines()
    return min(json.loads(line)["global_step"] for line in lines if json.loads(line)["event"] == "step")


def _weights(ws: Path, name: str) -> list[list[float]]:
    history = json.loads((ws / "runs" / name / "trainer_state.json").read_text())["log_history"]
    return [[h[f"task_weight/{t}"] for t in TASKS] for h in history if "loss" in h]


def _log(ws: Path, name: str) -> str:
    return "\n".join(p.read_text() for p in sorted((ws / "logs").glob(f"{name}.*.log")))


@pytest.fixture(scope="module")
def ws(three_task_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("crash")
    shutil.copytree(three_task_workspace / "model", root / "model")
    shutil.copytree(three_task_workspace / "data", root / "data")
    (root / "weights.json").write_text(json.dumps({"weights": {"short": 2.0, "mid": 1.0, "long": 0.5}}))
    return root


@pytest.fixture(scope="module")
def reference(ws: Path) -> dict[str, Any]:
    """Uninterrupted runs: final parameters and logged weights."""
    out = {}
    for method in ("static", "ew", "tla", "rlw", "dwa", "igb"):
        name = f"ref_{method or 'stock'}"
        assert _run(ws, name, method) == 0, _log(ws, name)
        out[method] = (load_params(ws / "runs" / name), _weights(ws, name))
    return out


def _assert_resumed_like(ws: Path, name: str, method: str | None, reference: dict[str, Any]) -> None:
    params, weights = reference[method]
    assert max_abs_diff(load_params(ws / "runs" / name), params) < 1e-6, _log(ws, name)[-3000:]
    if method is not None:  # the resumed run's log holds the steps after the checkpoint: the same weights
        resumed = _weights(ws, name)
        flat = [w for step in weights[-len(resumed) :] for w in step]
        assert [w for step in resumed for w in step] == pytest.approx(flat)


# ------------------------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("method", ["static", "ew", "tla", "rlw", "dwa", "igb"])
def test_killed_right_after_the_state_file_resumes_for_every_weighting(ws, reference, method):
    """The issue's scenario: dead right after checkpoint-6's trainer_state.json, the older checkpoint not yet
    rotated; the next run resumes from checkpoint-6 and ends like the uninterrupted run."""
    name = f"after_state_{method}"
    assert _run(ws, name, method, kill=("after_state", 6)) == KILLED
    assert (ws / "runs" / name / "checkpoint-6" / "trainer_state.json").is_file()
    assert _run(ws, name, method) == 0, _log(ws, name)[-3000:]
    assert _first_step(ws, name, 1) == 6, "resumed from checkpoint-6, not from scratch"
    _assert_resumed_like(ws, name, method, reference)


@pytest.mark.parametrize(
    "kill",
    [("save_begin", 6, "dwa"), ("after_rotate", 6, "dwa"), ("micro_batch", 9, "dwa"), ("micro_batch", 14, "rlw")],
    ids=["before-save", "after-rotation", "mid-step-5", "mid-step-7"],
)
def test_killed_anywhere_else_resumes_from_the_last_complete_checkpoint(ws, reference, kill):
    kill, method = kill[:2], kill[2]
    name = f"{kill[0]}{kill[1]}_{method}"
    assert _run(ws, name, method, kill=kill) == KILLED
    assert _run(ws, name, method) == 0, _log(ws, name)[-3000:]
    last_complete = {"save_begin": 4, "after_rotate": 6, "micro_batch": (kill[1] - 1) // 2 // 2 * 2}[kill[0]]
    assert _first_step(ws, name, 1) == last_complete
    _assert_resumed_like(ws, name, method, reference)


@pytest.mark.parametrize("point", ["after_model", "partial_state"])
def test_incomplete_checkpoint_fails_as_stock_does_and_says_why(ws, point):
    """Killed while checkpoint-6 was being written: HF picks it as the last checkpoint and cannot resume from it
    (stock fails too); the plugin names the folder and the fix instead of a bare FileNotFound/JSON error."""
    stock, ours = f"{point}_stock", f"{point}_dwa"
    assert _run(ws, stock, None, kill=(point, 6)) == KILLED
    assert _run(ws, ours, "dwa", kill=(point, 6)) == KILLED
    assert _run(ws, stock, None) != 0, "stock LLaMA-Factory cannot resume from an incomplete checkpoint either"
    assert _run(ws, ours, "dwa") != 0
    assert "checkpoint-6' is incomplete" in _log(ws, ours) and "Delete that folder" in _log(ws, ours)
    shutil.rmtree(ws / "runs" / ours / "checkpoint-6")  # the fix the message names
    if (ws / "runs" / ours / "checkpoint-4").is_dir():  # rotation had not happened yet: resume from checkpoint-4
        assert _run(ws, ours, "dwa") == 0, _log(ws, ours)[-3000:]
        assert _first_step(ws, ours, 2) == 4
        _assert_resumed_like(ws, ours, "dwa", {"dwa": (load_params(ws / "runs" / "ref_dwa"), _weights(ws, "ref_dwa"))})


def test_checkpoint_of_the_previous_format_still_resumes(ws, reference):
    """cotbal_plugin 0.1.0 wrote the weighting state to cotbal_weighting.json beside trainer_state.json."""
    name = "legacy_dwa"
    assert _run(ws, name, "dwa", kill=("after_rotate", 4)) == KILLED
    ckpt = ws / "runs" / name / "checkpoint-4"
    state = json.loads((ckpt / "trainer_state.json").read_text())
    payload = state["stateful_callbacks"].pop("CotbalWeightingState")["attributes"]["payload"]
    (ckpt / "trainer_state.json").write_text(json.dumps(state))
    legacy = {k: payload[k] for k in ("tasks", "weighting", "last_weights", "state")}
    (ckpt / "cotbal_weighting.json").write_text(json.dumps(legacy))
    assert _run(ws, name, "dwa") == 0, _log(ws, name)[-3000:]
    _assert_resumed_like(ws, name, "dwa", reference)


def test_messages_say_what_is_wrong(ws):
    # a checkpoint written without loss: cotbal, resumed by a stateful weighting: refused, naming the cause
    assert _run(ws, "from_stock", None, kill=("after_rotate", 4)) == KILLED
    assert _run(ws, "from_stock", "dwa") != 0
    assert "was written by a run without loss: cotbal" in _log(ws, "from_stock")
    assert "cotbal_weighting: dwa needs its history" in _log(ws, "from_stock")
    # ... by a stateless weighting: continues with a warning
    assert _run(ws, "from_stock2", None, kill=("after_rotate", 4)) == KILLED
    assert _run(ws, "from_stock2", "static") == 0, _log(ws, "from_stock2")[-3000:]
    assert "keeps no state; continuing" in _log(ws, "from_stock2")
    # a different task list
    assert _run(ws, "tasks_changed", "dwa", kill=("after_rotate", 4)) == KILLED
    assert _run(ws, "tasks_changed", "dwa", dataset="short,long") != 0
    assert "was written for tasks ['short', 'mid', 'long'], but this run trains tasks ['short', 'long']" in _log(
        ws, "tasks_changed"
    )
    # a different weighting
    assert _run(ws, "method_changed", "dwa", kill=("after_rotate", 4)) == KILLED
    assert _run(ws, "method_changed", "igb") != 0
    assert "written with cotbal_weighting: dwa, but this run uses cotbal_weighting: igb" in _log(ws, "method_changed")
