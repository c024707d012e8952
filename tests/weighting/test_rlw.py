"""rlw: reproducible from the seed, N·softmax of standard normals."""

from __future__ import annotations

import numpy as np
import pytest

from cotbal_plugin.weighting import build_weighting

from .conftest import n_softmax_ref

TASKS = ["a", "b", "c", "d", "e"]


def run(seed: int, steps: int, counts: np.ndarray | None = None) -> np.ndarray:
    rlw = build_weighting("rlw", TASKS, seed=seed)
    counts = np.full(len(TASKS), 10.0) if counts is None else counts
    out = []
    for _ in range(steps):
        out.append(rlw.step_weights(counts))
        rlw.observe(counts * 1.5, counts)
    return np.array(out)


def test_reproducible_from_seed_and_different_across_seeds():
    a, b, c = run(7, 20), run(7, 20), run(8, 20)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    # redrawn every step
    assert not np.allclose(a[0], a[1])


def test_weights_are_n_softmax_of_standard_normals_from_default_rng():
    z = np.random.default_rng(123).standard_normal((3, len(TASKS)))
    expected = np.array([n_softmax_ref(list(row)) for row in z])
    np.testing.assert_allclose(run(123, 3), expected, rtol=1e-12)


def test_sum_is_n_and_mean_weight_is_one():
    w = run(0, 2000)
    assert (w > 0).all()
    np.testing.assert_allclose(w.sum(axis=1), len(TASKS), rtol=1e-12)
    # E[N softmax(z)_i] = 1 by symmetry; 2000 draws: standard error ≈ 0.02
    np.testing.assert_allclose(w.mean(axis=0), 1.0, atol=0.1)


def test_draws_do_not_depend_on_which_tasks_are_present():
    full = run(5, 6)
    sparse = run(5, 6, counts=np.array([0.0, 3.0, 0.0, 0.0, 1.0]))
    assert np.array_equal(full, sparse)


@pytest.mark.parametrize("seed", [0, 2**40 + 3])
def test_large_seeds_work(seed):
    assert np.isfinite(run(seed, 2)).all()
