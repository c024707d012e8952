"""scores.json → weights.json: tasks, fixed weights, clipping and warnings, variants, missing inputs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from cotbal_plugin.probe.balance import compute_weights
from cotbal_plugin.probe.errors import ProbeError, ProbeWarning

SCORES = {
    "mini": {"a": 0.2, "b": 0.4, "sharegpt": 0.1},
    "a+mini": {"a": 0.6, "b": 0.5},
    "b+mini": {"a": 0.3, "b": 0.8},
}


def _softmax2(x0: float, x1: float) -> list[float]:
    e0, e1 = math.exp(x0), math.exp(x1)
    return [2 * e0 / (e0 + e1), 2 * e1 / (e0 + e1)]


def test_compute_weights_by_hand_with_fixed_task() -> None:
    result = compute_weights(SCORES, temperature=0.5, fixed={"sharegpt": 1.0})
    # C = [[1, .25], [.25, 1]] → C_out = C_in = [.25, .25] → λ_out = λ_in = [1, 1]
    # D = [1 - .2/.6, 1 - .4/.8] = [2/3, 1/2] → λ_D = 2 softmax(D / 0.5)
    lam_d = _softmax2((2 / 3) / 0.5, 0.5 / 0.5)
    expected = [(1 + w) / 2 for w in lam_d]
    assert result["tasks"] == ["a", "b"]
    assert result["weights"] == pytest.approx({"a": expected[0], "b": expected[1], "sharegpt": 1.0})
    assert result["method"] == "CoTBal" and result["temperature"] == 0.5
    np.testing.assert_allclose(result["C"], [[1.0, 0.25], [0.25, 1.0]])
    assert result["D"] == pytest.approx({"a": 2 / 3, "b": 0.5})
    assert result["lambda"]["D"] == pytest.approx(dict(zip("ab", lam_d)))
    assert result["scores"] == SCORES
    assert set(result) >= {"weights", "method", "temperature", "tasks", "C", "C_out", "C_in", "D", "lambda"}


@pytest.mark.parametrize(
    ("strategy", "key"), [("out", "out"), ("in", "in"), ("C", "C"), ("D", "D"), ("cotbal", "CoTBal")]
)
def test_strategy_selects_lambda(strategy: str, key: str) -> None:
    result = compute_weights(SCORES, strategy=strategy, fixed={"sharegpt": 1.0})
    assert result["method"] == key
    assert {t: result["weights"][t] for t in ("a", "b")} == result["lambda"][key]


def test_warns_outside_recommended_range_and_clips() -> None:
    # C_ab = 0.9, C_ba = 0.0 → C_out = [0.9, 0], at T = 0.1 λ_out ≈ [2, 0.0002]
    scores = {"mini": {"a": 0.0, "b": 0.0}, "a+mini": {"a": 1.0, "b": 0.9}, "b+mini": {"a": 0.0, "b": 1.0}}
    with pytest.warns(ProbeWarning, match=r"outside the recommended range \[0.5, 2.0\].*--clip"):
        raw = compute_weights(scores, temperature=0.1, strategy="out")
    assert raw["weights"]["b"] < 0.5 and raw["clipped"] is False
    with pytest.warns(ProbeWarning, match="clipped"):
        clipped = compute_weights(scores, temperature=0.1, strategy="out", clip=True)
    assert clipped["weights"]["b"] == 0.5
    assert all(0.5 <= w <= 2.0 for w in clipped["weights"].values())
    assert clipped["clipped"] is True


def test_no_warning_inside_range() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compute_weights(SCORES, fixed={"sharegpt": 1.0})


def test_tasks_default_to_mini_run_and_can_be_given() -> None:
    with pytest.raises(ProbeError, match=r"run 'sharegpt\+mini' is missing"):
        compute_weights(SCORES)  # sharegpt is scored by `mini` but has no probe of its own and is not fixed
    assert compute_weights(SCORES, tasks=["b", "a"])["tasks"] == ["b", "a"]


def test_precise_and_chat_variants() -> None:
    precise = {**SCORES, "a": {"a": 0.8}, "mini_a": {"a": 0.2}, "b": {"b": 0.5}, "mini_b": {"b": 0.4}}
    result = compute_weights(precise, variant="precise", tasks=["a", "b"])
    assert result["D"] == pytest.approx({"a": 0.75, "b": 0.2})
    np.testing.assert_allclose(result["C"], [[1.0, 0.25], [0.25, 1.0]])
    chat = {
        "base": {"a": 1.0, "b": 2.0},
        "a": {"a": 3.0, "b": 2.5},
        "b": {"a": 1.5, "b": 4.0},
        "mini_a": {"a": 1.5},
        "mini_b": {"b": 3.0},
    }
    result = compute_weights(chat, variant="chat")
    assert result["tasks"] == ["a", "b"]
    np.testing.assert_allclose(result["C"], [[1.0, 0.25], [0.25, 1.0]])
    assert result["D"] == pytest.approx({"a": 0.5, "b": 0.25})


def test_bad_inputs() -> None:
    with pytest.raises(ProbeError, match="no run 'mini'"):
        compute_weights({"a+mini": {"a": 1.0}})
    with pytest.raises(ProbeError, match="no run 'base'"):
        compute_weights(SCORES, variant="chat")
    with pytest.raises(ProbeError, match="unknown strategy"):
        compute_weights(SCORES, strategy="best")
    with pytest.raises(ProbeError, match="both balanced"):
        compute_weights(SCORES, tasks=["a", "b"], fixed={"a": 1.0})
    with pytest.raises(ProbeError, match="at least 2"):
        compute_weights(SCORES, tasks=["a"])
    with pytest.raises(ProbeError, match="fixed weight of task 'x'"):
        compute_weights(SCORES, tasks=["a", "b"], fixed={"x": float("nan")})
    with pytest.raises(ProbeError, match="not allowed"):
        compute_weights({**SCORES, "mini": {"x+y": 0.1}}, tasks=["x+y", "a"])
