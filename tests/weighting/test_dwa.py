"""dwa: weights 1 until two full windows, then N·softmax(r/T) from a direct computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cotbal_plugin.weighting import build_weighting

from .conftest import n_softmax_ref, random_steps


def dwa_reference(steps, num_tasks: int, window: int, temperature: float) -> list[list[float]]:
    """Expected weights before each step, written out from the rule in docs/weighting.md."""
    history: list[list[tuple[float, float]]] = [[] for _ in range(num_tasks)]
    expected = []
    for loss_sums, counts in steps:
        ratios = {}
        for i, obs in enumerate(history):
            if len(obs) >= 2 * window:
                last, before = obs[-window:], obs[-2 * window : -window]
                recent = sum(s for s, _ in last) / sum(n for _, n in last)
                earlier = sum(s for s, _ in before) / sum(n for _, n in before)
                ratios[i] = recent / earlier
        weights = [1.0] * num_tasks
        ready = sorted(ratios)
        for i, w in zip(ready, n_softmax_ref([ratios[i] / temperature for i in ready]), strict=True):
            weights[i] = w
        expected.append(weights)
        for i in range(num_tasks):
            if counts[i] > 0:
                history[i].append((loss_sums[i], counts[i]))
    return expected


def run(dwa, steps) -> np.ndarray:
    out = []
    for loss_sums, counts in steps:
        out.append(dwa.step_weights(counts))
        dwa.observe(loss_sums, counts)
    return np.array(out)


def test_hand_computed_window_1():
    # per-token losses: task a 2.0 then 1.0 (r = 0.5), task b 1.0 then 1.0 (r = 1), T = 2
    dwa = build_weighting("dwa", ["a", "b"], window=1, temperature=2.0)
    steps = [(np.array([20.0, 5.0]), np.array([10.0, 5.0])), (np.array([4.0, 7.0]), np.array([4.0, 7.0]))]
    w = run(dwa, steps)
    assert w.tolist() == [[1.0, 1.0], [1.0, 1.0]]
    after = dwa.step_weights(np.array([1.0, 1.0]))
    ea, eb = math.exp(0.25), math.exp(0.5)
    np.testing.assert_allclose(after, [2 * ea / (ea + eb), 2 * eb / (ea + eb)], rtol=1e-12)
    # the task whose loss fell more gets the smaller weight
    assert after[0] < 1.0 < after[1]


def test_window_pools_tokens_within_a_window():
    # window 2; task a: steps with (sum, count) (1, 1) and (30, 10) -> pooled mean 31/11, not mean of means 2
    dwa = build_weighting("dwa", ["a", "b"], window=2, temperature=1.0)
    steps = [
        (np.array([1.0, 1.0]), np.array([1.0, 1.0])),
        (np.array([30.0, 1.0]), np.array([10.0, 1.0])),
        (np.array([2.0, 1.0]), np.array([1.0, 1.0])),
        (np.array([2.0, 1.0]), np.array([1.0, 1.0])),
    ]
    run(dwa, steps)
    r_a = 2.0 / (31.0 / 11.0)
    np.testing.assert_allclose(dwa.step_weights(np.ones(2)), n_softmax_ref([r_a, 1.0]), rtol=1e-12)


@pytest.mark.parametrize(("window", "temperature", "seed"), [(1, 2.0, 0), (3, 2.0, 1), (5, 0.5, 2), (2, 7.0, 3)])
def test_matches_direct_computation_with_absences(window, temperature, seed):
    rng = np.random.default_rng(seed)
    steps = random_steps(rng, num_tasks=4, num_steps=40, p_absent=0.35)
    dwa = build_weighting("dwa", ["t0", "t1", "t2", "t3"], window=window, temperature=temperature)
    got = run(dwa, steps)
    expected = np.array(dwa_reference(steps, 4, window, temperature))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # ones at first, changed later
    assert (got[: 2 * window] == 1.0).all()
    assert not np.allclose(got[-1], 1.0)


def test_ones_until_two_full_windows_then_change():
    window = 4
    dwa = build_weighting("dwa", ["a", "b", "c"], window=window)
    counts = np.array([10.0, 20.0, 30.0])
    for step in range(2 * window):
        assert dwa.step_weights(counts).tolist() == [1.0, 1.0, 1.0], step
        per_token = np.array([3.0, 2.0, 1.0]) * (0.9 ** np.arange(1, 4)) ** step  # different decay per task
        dwa.observe(per_token * counts, counts)
    w = dwa.step_weights(counts)
    assert not np.allclose(w, 1.0)
    assert w.sum() == pytest.approx(3.0, rel=1e-12)
    # slowest-falling loss (task a) gets the largest weight
    assert w[0] > w[1] > w[2]


def test_absent_steps_do_not_poison_or_shift_the_windows():
    # window 2, three tasks. Task b is absent at step 2 (count 0, loss 0). Per-token losses of b when present:
    # 6, 4, _, 2, 2 -> windows [6, 4] and [2, 2] -> r_b = 2 / 5. Had the absent step taken a slot, the windows
    # would be [4, 0-or-gap] and [2, 2] and the ratio 0.5 (or a division by a zero loss).
    dwa = build_weighting("dwa", ["a", "b", "c"], window=2, temperature=1.0)
    per_token = [(1.0, 6.0, 1.0), (1.0, 4.0, 1.0), (1.0, None, 1.0), (1.0, 2.0, 1.0), (1.0, 2.0, 1.0)]
    weights = []
    for losses in per_token:
        counts = np.array([5.0, 0.0 if losses[1] is None else 5.0, 5.0])
        sums = np.array([0.0 if x is None else x for x in losses]) * counts
        weights.append(dwa.step_weights(counts))
        dwa.observe(sums, counts)
    # before step 4, b has only 3 observations: a and c are ready (ratio 1 each), b keeps 1
    np.testing.assert_allclose(weights[4], [1.0, 1.0, 1.0], rtol=1e-12)
    final = dwa.step_weights(np.full(3, 5.0))
    np.testing.assert_allclose(final, n_softmax_ref([1.0, 0.4, 1.0]), rtol=1e-12)
    assert np.isfinite(final).all()


def test_nonfinite_loss_is_treated_as_absent():
    dwa = build_weighting("dwa", ["a", "b"], window=1)
    dwa.observe(np.array([2.0, math.nan]), np.array([1.0, 1.0]))
    dwa.observe(np.array([1.0, math.inf]), np.array([1.0, 1.0]))
    dwa.observe(np.array([1.0, 3.0]), np.array([1.0, 1.0]))
    dwa.observe(np.array([1.0, 3.0]), np.array([1.0, 1.0]))
    # a: last two windows [1], [1] -> r=1; b: [3], [3] -> r=1
    np.testing.assert_allclose(dwa.step_weights(np.ones(2)), [1.0, 1.0], rtol=1e-12)


def test_ready_tasks_share_mass_tasks_not_ready_keep_one():
    dwa = build_weighting("dwa", ["a", "b", "c"], window=1, temperature=1.0)
    dwa.observe(np.array([4.0, 4.0, 0.0]), np.array([1.0, 1.0, 0.0]))
    dwa.observe(np.array([2.0, 3.0, 0.0]), np.array([1.0, 1.0, 0.0]))
    w = dwa.step_weights(np.ones(3))
    np.testing.assert_allclose(w[:2], n_softmax_ref([0.5, 0.75]), rtol=1e-12)
    assert w[2] == 1.0
