"""Weight math (eqs. 3-11, 15-17): the paper's Table 10, hand-checked cases, properties, degenerate inputs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cotbal_plugin import cotbal_weights as lazy_cotbal_weights
from cotbal_plugin.probe.errors import ProbeError
from cotbal_plugin.probe.weights import (
    contribution_in,
    contribution_matrix,
    contribution_out,
    cotbal_weights,
    difficulty,
    lambdas_from_summaries,
    scaled_softmax,
)

# ---------------------------------------------------------------------------------------------- Table 10
# C_out, C_in and V(mini)/V(i+mini) of the Academic Benchmark, as published in the authors' weighting script
# (github.com/YanqiDai/VisATB, weighting_visatb.py, first block, T = 0.5). The script's "difficulties" are the raw
# ratio V_i(mini) / V_i(i+mini), so D = 1 - ratio (eq. 9). Task order: ShareGPT4V, RefCOCO-caption, VQAv2, GQA,
# ChartQA, OCRVQA, RefCOCO-bbox.
ACADEMIC_C_OUT = [0.1637, 0.1903, 0.1952, 0.1433, 0.0768, 0.1316, 0.1582]
ACADEMIC_C_IN = [0.1634, 0.2179, 0.1326, 0.1775, 0.1674, 0.0783, 0.1219]
ACADEMIC_RATIO = [0.7597, 0.5313, 0.8852, 0.7979, 0.5511, 0.8680, 0.1904]
# Table 10 of the paper (Appendix D).
TABLE_10 = {
    "out": [1.0223, 1.0782, 1.0888, 0.9815, 0.8592, 0.9588, 1.0112],
    "in": [0.9727, 0.8722, 1.0345, 0.9456, 0.9649, 1.1532, 1.0569],
    "C": [0.9975, 0.9752, 1.0617, 0.9636, 0.9121, 1.0560, 1.0340],
    "D": [0.7195, 1.1361, 0.5598, 0.6666, 1.0920, 0.5794, 2.2466],
    "CoTBal": [0.8585, 1.0557, 0.8107, 0.8151, 1.0020, 0.8177, 1.6403],
}


@pytest.mark.parametrize("row", list(TABLE_10))
def test_table_10_rows(row: str) -> None:
    d = [1 - r for r in ACADEMIC_RATIO]
    lambdas = lambdas_from_summaries(ACADEMIC_C_OUT, ACADEMIC_C_IN, d, temperature=0.5)
    # Table 10 prints 4 decimals: the computed values must round to them.
    np.testing.assert_allclose(lambdas[row], TABLE_10[row], atol=1e-4)


def test_table_10_through_cotbal_weights() -> None:
    """A C matrix whose row/column means are the published C_out/C_in gives the same Table 10 weights."""
    n = len(ACADEMIC_C_OUT)
    # Build an off-diagonal matrix with prescribed row means (C_out) and column means ≈ C_in: the published sums
    # differ by 1e-4 (rounding), so only the rows are exact; C_in is matched through a rank-one correction.
    r = np.array(ACADEMIC_C_OUT) * (n - 1)
    c = np.array(ACADEMIC_C_IN) * (n - 1)
    c *= r.sum() / c.sum()
    m = np.zeros((n, n))
    off = ~np.eye(n, dtype=bool)
    m[off] = 1.0
    for _ in range(2000):  # iterative proportional fitting on the off-diagonal entries
        m *= (r / m.sum(axis=1))[:, None]
        m *= (c / m.sum(axis=0))[None, :]
    np.fill_diagonal(m, 123.0)  # the diagonal must be ignored
    lambdas = cotbal_weights(m, [1 - x for x in ACADEMIC_RATIO], temperature=0.5)
    for row, expected in TABLE_10.items():
        np.testing.assert_allclose(lambdas[row], expected, atol=2e-4)


def test_public_api_name() -> None:
    assert lazy_cotbal_weights is cotbal_weights


# ------------------------------------------------------------------------------------------ hand-checked

SCORES = {  # 2 tasks, hand-made
    "mini": {"a": 0.2, "b": 0.4},
    "a+mini": {"a": 0.6, "b": 0.5},
    "b+mini": {"a": 0.3, "b": 0.8},
}


def test_contribution_matrix_eq3() -> None:
    c = contribution_matrix(SCORES, ["a", "b"])
    # C_ab = (V_b(a+mini) - V_b(mini)) / (V_b(b+mini) - V_b(mini)) = (0.5 - 0.4) / (0.8 - 0.4) = 0.25
    # C_ba = (V_a(b+mini) - V_a(mini)) / (V_a(a+mini) - V_a(mini)) = (0.3 - 0.2) / (0.6 - 0.2) = 0.25
    np.testing.assert_allclose(c, [[1.0, 0.25], [0.25, 1.0]])


def test_contribution_matrix_chat_eq15() -> None:
    scores = {"base": {"a": 1.0, "b": 2.0}, "a": {"a": 3.0, "b": 2.5}, "b": {"a": 1.5, "b": 4.0}}
    c = contribution_matrix(scores, ["a", "b"], form="chat")
    # C_ab = (2.5 - 2) / (4 - 2) = 0.25 ; C_ba = (1.5 - 1) / (3 - 1) = 0.25
    np.testing.assert_allclose(c, [[1.0, 0.25], [0.25, 1.0]])


def test_c_out_c_in_eqs_4_6() -> None:
    c = np.array([[9.0, 1.0, 2.0], [3.0, 9.0, 4.0], [5.0, 6.0, 9.0]])
    np.testing.assert_allclose(contribution_out(c), [(1 + 2) / 2, (3 + 4) / 2, (5 + 6) / 2])
    np.testing.assert_allclose(contribution_in(c), [(3 + 5) / 2, (1 + 6) / 2, (2 + 4) / 2])


def test_difficulty_eq9_eq17() -> None:
    # eq. 9: D_a = 1 - 0.2/0.6, D_b = 1 - 0.4/0.8
    np.testing.assert_allclose(difficulty(SCORES, ["a", "b"]), [1 - 0.2 / 0.6, 0.5])
    precise = {"a": {"a": 0.8}, "mini_a": {"a": 0.2}, "b": {"b": 0.5}, "mini_b": {"b": 0.4}}
    np.testing.assert_allclose(difficulty(precise, ["a", "b"], "precise"), [0.75, 0.2])
    np.testing.assert_allclose(difficulty(precise, ["a", "b"], "chat"), [0.75, 0.2])


def test_lambdas_eqs_5_7_8_10_11_by_hand() -> None:
    c = [[0.0, 0.5], [0.1, 0.0]]  # C_out = [0.5, 0.1], C_in = [0.1, 0.5]
    d = [0.3, 0.7]
    t = 0.5
    lam = cotbal_weights(c, d, t)
    e = math.exp
    out = [2 * e(0.5 / t) / (e(0.5 / t) + e(0.1 / t)), 2 * e(0.1 / t) / (e(0.5 / t) + e(0.1 / t))]
    inw = [2 * e(-0.1 / t) / (e(-0.1 / t) + e(-0.5 / t)), 2 * e(-0.5 / t) / (e(-0.1 / t) + e(-0.5 / t))]
    dw = [2 * e(0.3 / t) / (e(0.3 / t) + e(0.7 / t)), 2 * e(0.7 / t) / (e(0.3 / t) + e(0.7 / t))]
    np.testing.assert_allclose(lam["out"], out)
    np.testing.assert_allclose(lam["in"], inw)
    np.testing.assert_allclose(lam["C"], [(o + i) / 2 for o, i in zip(out, inw)])
    np.testing.assert_allclose(lam["D"], dw)
    np.testing.assert_allclose(lam["CoTBal"], [((o + i) / 2 + w) / 2 for o, i, w in zip(out, inw, dw)])
    assert set(lam) == {"out", "in", "C", "D", "CoTBal"}


def test_scaled_softmax_is_stable_for_large_inputs() -> None:
    np.testing.assert_allclose(scaled_softmax([1000.0, 1000.0], 0.01), [1.0, 1.0])


# ------------------------------------------------------------------------------------------------ errors


def test_eq3_zero_denominator_names_task() -> None:
    scores = {**SCORES, "b+mini": {"a": 0.3, "b": 0.4}}  # V_b(b+mini) == V_b(mini)
    with pytest.raises(ProbeError, match=r"task 'b'.*denominator of eq\. 3 is zero"):
        contribution_matrix(scores, ["a", "b"])


def test_eq9_zero_denominator_names_task() -> None:
    scores = {**SCORES, "a+mini": {"a": 0.0, "b": 0.5}}
    with pytest.raises(ProbeError, match=r"task 'a'.*eq\. 9"):
        difficulty(scores, ["a", "b"])


def test_missing_run_and_task_are_named() -> None:
    with pytest.raises(ProbeError, match=r"run 'c\+mini' is missing.*cotbal run"):
        contribution_matrix(SCORES, ["a", "b", "c"])
    scores = {**SCORES, "a+mini": {"a": 0.6}}
    with pytest.raises(ProbeError, match=r"run 'a\+mini' has no score for task 'b'.*cotbal eval"):
        contribution_matrix(scores, ["a", "b"])


@pytest.mark.parametrize("t", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperature(t: float) -> None:
    with pytest.raises(ProbeError, match="temperature"):
        cotbal_weights([[0, 1], [1, 0]], [0.1, 0.2], t)


def test_bad_shapes_and_values() -> None:
    with pytest.raises(ProbeError, match="square"):
        cotbal_weights([[0, 1, 2], [1, 0, 2]], [0.1, 0.2])
    with pytest.raises(ProbeError, match="one entry per task"):
        cotbal_weights([[0, 1], [1, 0]], [0.1, 0.2, 0.3])
    with pytest.raises(ProbeError, match="non-finite"):
        cotbal_weights([[0, float("nan")], [1, 0]], [0.1, 0.2])
    with pytest.raises(ProbeError, match="at least 2"):
        cotbal_weights([[0.0]], [0.1])
    with pytest.raises(ProbeError, match="unknown difficulty"):
        difficulty(SCORES, ["a"], "exact")


# -------------------------------------------------------------------------------------------- properties

finite = st.floats(-3, 3, allow_nan=False)


@st.composite
def problems(draw):
    n = draw(st.integers(2, 6))
    c = np.array(draw(st.lists(st.lists(finite, min_size=n, max_size=n), min_size=n, max_size=n)))
    d = np.array(draw(st.lists(st.floats(-1, 1, allow_nan=False), min_size=n, max_size=n)))
    return c, d


@settings(max_examples=60, deadline=None)
@given(problems(), st.floats(0.05, 10))
def test_weights_positive_and_average_one(problem, t) -> None:
    c, d = problem
    for key, w in cotbal_weights(c, d, t).items():
        assert np.all(w > 0), key
        assert abs(w.mean() - 1) < 1e-9, key


@settings(max_examples=60, deadline=None)
@given(problems(), st.randoms(use_true_random=False))
def test_weights_invariant_to_task_order(problem, rnd) -> None:
    c, d = problem
    perm = list(range(len(d)))
    rnd.shuffle(perm)
    base = cotbal_weights(c, d, 0.5)
    permuted = cotbal_weights(c[np.ix_(perm, perm)], d[perm], 0.5)
    for key in base:
        np.testing.assert_allclose(permuted[key], base[key][perm], rtol=1e-10)


@settings(max_examples=40, deadline=None)
@given(problems())
def test_weights_tend_to_uniform_as_temperature_grows(problem) -> None:
    c, d = problem
    spread = [max(np.abs(w - 1).max() for w in cotbal_weights(c, d, t).values()) for t in (0.5, 50.0, 5e4)]
    assert spread[2] <= spread[1] + 1e-12 and spread[1] <= spread[0] + 1e-12
    assert spread[1] < 0.3  # |x / T| <= 0.12 at T = 50
    assert spread[2] < 1e-3


# ------------------------------------------------------------------------------------ fragile contributions


def weights_by_hand(v: dict, tasks: list[str], t: float = 0.5) -> list[float]:
    """eqs. 3-11 in plain Python, independent of the module."""
    n = len(tasks)
    c = {(i, j): (v[f"{i}+mini"][j] - v["mini"][j]) / (v[f"{j}+mini"][j] - v["mini"][j]) for i in tasks for j in tasks}
    c_out = [sum(c[i, j] for j in tasks if j != i) / (n - 1) for i in tasks]
    c_in = [sum(c[j, i] for j in tasks if j != i) / (n - 1) for i in tasks]
    d = [1 - v["mini"][i] / v[f"{i}+mini"][i] for i in tasks]

    def soft(x: list[float]) -> list[float]:
        e = [math.exp(a / t) for a in x]
        return [n * a / sum(e) for a in e]

    lam_c = [(a + b) / 2 for a, b in zip(soft(c_out), soft([-a for a in c_in]))]
    return [(a + b) / 2 for a, b in zip(lam_c, soft(d))]


@pytest.mark.parametrize(
    ("own_b", "pattern"),
    [
        (
            0.51,
            r"task 'b': V_b\(b\+mini\) - V_b\(mini\) = 0\.51 - 0\.5 = 0\.01 \(2% of the score\).*C\[:, 'b'\] = 5 … 5"
            r".*below 5% of its score",
        ),
        (
            0.45,
            r"task 'b': V_b\(b\+mini\) - V_b\(mini\) = 0\.45 - 0\.5 = -0\.05; .*C\[:, 'b'\] = -1 … -1.*"
            r"sign flipped.*D \(eq\. 9\) is negative",
        ),
    ],
    ids=["tiny-gain", "negative-gain"],
)
@pytest.mark.filterwarnings(r"ignore:weight\(s\).*outside the recommended range")
def test_fragile_column_warns_and_changes_nothing(own_b: float, pattern: str) -> None:
    from cotbal_plugin.probe.balance import compute_weights
    from cotbal_plugin.probe.errors import ProbeWarning

    scores = {"mini": {"a": 0.2, "b": 0.5}, "a+mini": {"a": 0.6, "b": 0.55}, "b+mini": {"a": 0.3, "b": own_b}}
    with pytest.warns(ProbeWarning, match=pattern) as record:
        warned = compute_weights(scores, temperature=0.5)
    fragile = [w for w in record if "column 'b'" in str(w.message)]
    assert len(fragile) == 1 and "column 'a'" not in "".join(str(w.message) for w in record)
    assert "--fixed b=1.0" in str(fragile[0].message)
    expected = weights_by_hand(scores, ["a", "b"])
    assert [warned["weights"][t] for t in ("a", "b")] == pytest.approx(expected, abs=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert compute_weights(scores, temperature=0.5)["weights"] == warned["weights"]


def test_healthy_gains_do_not_warn() -> None:
    # the hand-made SCORES: gains 0.4 of 0.6 and 0.4 of 0.8; the paper's smallest relative gain is VQAv2's 11.5 %
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        contribution_matrix(SCORES, ["a", "b"])
        contribution_matrix({"base": {"a": 1.0, "b": 2.0}, "a": {"a": 3.0, "b": 2.5}, "b": {"a": 1.5, "b": 4.0}},
                            ["a", "b"], form="chat")  # fmt: skip


def test_chat_form_fragile_column_names_eq15() -> None:
    from cotbal_plugin.probe.errors import ProbeWarning

    scores = {"base": {"a": 1.0, "b": 2.0}, "a": {"a": 3.0, "b": 2.5}, "b": {"a": 1.5, "b": 1.9}}
    with pytest.warns(ProbeWarning, match=r"task 'b': V_b\(b\) - V_b\(base\) = 1\.9 - 2 = -0\.1; column 'b' of C "
                      r"\(eq\. 15\).*sign flipped \(a task that helps 'b' counts as harming it\)\. Use"):  # fmt: skip
        contribution_matrix(scores, ["a", "b"], form="chat")
