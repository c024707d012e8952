"""The baselines under VITW through llamafactory-cli: logged weights, direct recomputation, ranks, resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cotbal_plugin.testing.workspace import max_abs_diff

from ._runs import train, trainer_logs

pytestmark = pytest.mark.integration

TASKS = ["short", "mid", "long"]
BASE = {
    "dataset": "short,mid,long",
    "mix_strategy": "interleave_under",
    "per_device_train_batch_size": 3,
    "max_steps": 8,
    "learning_rate": 0.3,
    "loss": "cotbal",
    "save_strategy": "steps",
    "save_steps": 3,
}
HP = {"dwa": {"cotbal_dwa_window": 1}, "igb": {"cotbal_igb_window": 2}, "rlw": {}, "tla": {}, "ew": {}}


def _trace(ws: Path, name: str, rank: int = 0) -> list[dict]:
    path = ws / "trace" / name / f"rank{rank}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _run(ws: Path, name: str, method: str, nproc: int = 1, **kw):
    import os

    os.environ["COTBAL_TRACE_DIR"] = str(ws / "trace" / name)
    try:
        return train(ws, name, nproc=nproc, cotbal_weighting=method, **{**BASE, **HP[method], **kw})
    finally:
        del os.environ["COTBAL_TRACE_DIR"]


@pytest.fixture(scope="module")
def method_runs(three_task_workspace):
    ws = three_task_workspace
    return {m: _run(ws, m, m) for m in ("ew", "tla", "rlw", "dwa", "igb")}


def _steps(ws, name):
    return [r for r in _trace(ws, name) if r["event"] == "step"]


def _losses(ws, name):
    return [np.array(r["loss_sums"]) / np.array(r["counts"]) for r in _trace(ws, name) if r["event"] == "observe"]


def _softmax_n(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return len(x) * e / e.sum()


def test_every_method_logs_its_weights(three_task_workspace, method_runs):
    for method in method_runs:
        logs = trainer_logs(three_task_workspace, method)
        steps = _steps(three_task_workspace, method)
        assert len(logs) == len(steps) == 8
        for log, step in zip(logs, steps):
            assert [log[f"task_weight/{t}"] for t in TASKS] == pytest.approx(step["weights"])
            assert all(f"task_loss/{t}" in log for t in TASKS)


def test_ew_and_tla_weights(three_task_workspace, method_runs):
    for step in _steps(three_task_workspace, "ew"):
        assert step["weights"] == [1.0, 1.0, 1.0]
    for step in _steps(three_task_workspace, "tla"):
        n = np.array(step["counts"])
        assert min(n) > 0
        assert step["weights"] == pytest.approx(list(n.mean() / n))


def test_dwa_matches_direct_computation(three_task_workspace, method_runs):
    ws = three_task_workspace
    steps, losses, logs = _steps(ws, "dwa"), _losses(ws, "dwa"), trainer_logs(ws, "dwa")
    for k, log in enumerate(logs):  # logged task_loss is the step's per-token mean
        assert [log[f"task_loss/{t}"] for t in TASKS] == pytest.approx(list(losses[k]), rel=1e-6)
    assert steps[0]["weights"] == steps[1]["weights"] == [1.0, 1.0, 1.0]
    for k in range(2, 8):
        expected = _softmax_n((losses[k - 1] / losses[k - 2]) / 2.0)  # T = 2, window = 1
        assert steps[k]["weights"] == pytest.approx(list(expected), rel=1e-6)
    assert any(abs(w - 1.0) > 1e-3 for w in steps[-1]["weights"])


def test_igb_matches_direct_computation(three_task_workspace, method_runs):
    ws = three_task_workspace
    steps = _steps(ws, "igb")
    observed = [r for r in _trace(ws, "igb") if r["event"] == "observe"]
    sums = np.array([r["loss_sums"] for r in observed])
    counts = np.array([r["counts"] for r in observed])
    for k in range(4):
        assert steps[k]["weights"] == [1.0, 1.0, 1.0]
    base = (sums[2] + sums[3]) / (counts[2] + counts[3])  # observations window+1 .. 2*window (window = 2)
    for k in range(4, 8):
        latest = sums[k - 1] / counts[k - 1]
        assert steps[k]["weights"] == pytest.approx(list(_softmax_n(latest / base)), rel=1e-6)
    assert any(abs(w - 1.0) > 1e-3 for w in steps[-1]["weights"])


def test_rlw_reproducible_from_seed(three_task_workspace, method_runs):
    ws = three_task_workspace
    again = _run(ws, "rlw_again", "rlw")
    other = _run(ws, "rlw_seed1", "rlw", seed=1)
    w0 = [s["weights"] for s in _steps(ws, "rlw")]
    assert w0 == [s["weights"] for s in _steps(ws, "rlw_again")]
    assert w0 != [s["weights"] for s in _steps(ws, "rlw_seed1")]
    assert all(math.isclose(sum(w), 3.0, rel_tol=1e-9) for w in w0)
    assert len({tuple(w) for w in w0}) == len(w0), "redrawn every step"
    assert max_abs_diff(again, method_runs["rlw"]) == 0.0
    assert max_abs_diff(other, method_runs["rlw"]) > 0


@pytest.mark.parametrize("method", ["rlw", "dwa"])
def test_identical_weights_on_both_ranks(three_task_workspace, method):
    ws = three_task_workspace
    name = f"{method}_ddp"
    _run(ws, name, method, nproc=2, save_strategy="no")
    r0, r1 = _steps(ws, name), [r for r in _trace(ws, name, rank=1) if r["event"] == "step"]
    assert len(r0) == len(r1) == 8
    assert [r["weights"] for r in r0] == [r["weights"] for r in r1]
    if method == "dwa":
        assert any(abs(w - 1.0) > 1e-3 for w in r0[-1]["weights"])


@pytest.mark.parametrize("method", ["dwa", "igb", "rlw"])
def test_resume_gives_the_uninterrupted_parameters(three_task_workspace, method_runs, method):
    ws = three_task_workspace
    checkpoint = ws / "runs" / method / "checkpoint-3"
    saved = json.loads((checkpoint / "trainer_state.json").read_text())["stateful_callbacks"]["CotbalWeightingState"]
    assert saved["attributes"]["payload"]["tasks"] == TASKS
    assert saved["attributes"]["payload"]["weighting"] == method
    assert not (checkpoint / "cotbal_weighting.json").exists()  # one source of truth, inside HF's own state file
    resumed = _run(ws, f"{method}_resumed", method, resume_from_checkpoint=str(checkpoint))
    assert max_abs_diff(resumed, method_runs[method]) < 1e-6
    full = [w for s in _steps(ws, method)[3:] for w in s["weights"]]
    assert [w for s in _steps(ws, f"{method}_resumed") for w in s["weights"]] == pytest.approx(full)
