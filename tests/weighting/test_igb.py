"""igb (IGBv1): weights 1 until the base window is complete, then N·softmax(L_t / L_base)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cotbal_plugin.weighting import build_weighting

from .conftest import n_softmax_ref, random_steps


def igb_reference(steps, num_tasks: int, window: int) -> list[list[float]]:
    """Expected weights before each step: base = pooled per-token mean of observations window+1..2·window."""
    history: list[list[tuple[float, float]]] = [[] for _ in range(num_tasks)]
    expected = []
    for loss_sums, counts in steps:
        gaps = {}
        for i, obs in enumerate(history):
            if len(obs) >= 2 * window:
                base_obs = obs[window : 2 * window]
                base = sum(s for s, _ in base_obs) / sum(n for _, n in base_obs)
                last_sum, last_count = obs[-1]
                gaps[i] = (last_sum / last_count) / base
        weights = [1.0] * num_tasks
        ready = sorted(gaps)
        for i, w in zip(ready, n_softmax_ref([gaps[i] for i in ready]), strict=True):
            weights[i] = w
        expected.append(weights)
        for i in range(num_tasks):
            if counts[i] > 0:
                history[i].append((loss_sums[i], counts[i]))
    return expected


def run(igb, steps) -> np.ndarray:
    out = []
    for loss_sums, counts in steps:
        out.append(igb.step_weights(counts))
        igb.observe(loss_sums, counts)
    return np.array(out)


def test_hand_computed_window_1():
    # window 1: first observation is warm-up, second is the base, afterwards L_t / L_base
    igb = build_weighting("igb", ["a", "b"], window=1)
    counts = np.array([2.0, 4.0])
    per_token = [(9.0, 9.0), (2.0, 1.0), (1.0, 1.0)]
    w = run(igb, [(np.array(p) * counts, counts) for p in per_token])
    assert w.tolist() == [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]
    after = igb.step_weights(counts)
    # gaps: a 1/2 = 0.5, b 1/1 = 1 (the warm-up value 9 is ignored)
    ea, eb = math.exp(0.5), math.exp(1.0)
    np.testing.assert_allclose(after, [2 * ea / (ea + eb), 2 * eb / (ea + eb)], rtol=1e-12)
    assert after[0] < after[1]


def test_latest_loss_moves_the_weight_base_stays():
    igb = build_weighting("igb", ["a", "b"], window=2)
    counts = np.array([1.0, 1.0])
    for _ in range(4):
        igb.observe(np.array([2.0, 2.0]), counts)
    assert igb.step_weights(counts).tolist() == [1.0, 1.0]
    igb.observe(np.array([3.0, 1.0]), counts)  # a got worse, b improved
    np.testing.assert_allclose(igb.step_weights(counts), n_softmax_ref([1.5, 0.5]), rtol=1e-12)
    igb.observe(np.array([1.0, 1.0]), counts)  # base unchanged (2.0): gaps 0.5, 0.5
    np.testing.assert_allclose(igb.step_weights(counts), [1.0, 1.0], rtol=1e-12)


@pytest.mark.parametrize(("window", "seed"), [(1, 0), (2, 1), (4, 2), (7, 3)])
def test_matches_direct_computation_with_absences(window, seed):
    rng = np.random.default_rng(100 + seed)
    steps = random_steps(rng, num_tasks=3, num_steps=45, p_absent=0.3)
    igb = build_weighting("igb", ["x", "y", "z"], window=window)
    got = run(igb, steps)
    np.testing.assert_allclose(got, np.array(igb_reference(steps, 3, window)), rtol=1e-12)
    assert (got[: 2 * window] == 1.0).all()
    assert not np.allclose(got[-1], 1.0)


def test_absent_steps_do_not_enter_base_or_latest_loss():
    igb = build_weighting("igb", ["a", "b", "c"], window=1)
    # b absent in steps 1 and 3: its observations are 5 (warm-up), 2 (base), 1 (latest)
    seq = [
        ((1.0, 5.0, 1.0), (1, 1, 1)),
        ((1.0, 0.0, 1.0), (1, 0, 1)),
        ((1.0, 2.0, 1.0), (1, 1, 1)),
        ((1.0, 0.0, 1.0), (1, 0, 1)),
        ((1.0, 1.0, 1.0), (1, 1, 1)),
    ]
    for sums, counts in seq:
        igb.step_weights(np.array(counts, dtype=float))
        igb.observe(np.array(sums), np.array(counts, dtype=float))
    np.testing.assert_allclose(igb.step_weights(np.ones(3)), n_softmax_ref([1.0, 0.5, 1.0]), rtol=1e-12)


def test_default_window_is_100_and_short_runs_are_equal_weighting():
    igb = build_weighting("igb", ["a", "b"])
    counts = np.array([3.0, 5.0])
    for step in range(200):
        assert igb.step_weights(counts).tolist() == [1.0, 1.0]
        igb.observe(np.array([3.0 * (1.0 + step % 4), 5.0]), counts)  # a's loss varies, b's is flat
    assert not np.allclose(igb.step_weights(counts), 1.0)
