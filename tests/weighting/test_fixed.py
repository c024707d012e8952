"""ew, static and tla: values, and what they do to the VITW loss."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cotbal_plugin.weighting import build_weighting

from .conftest import vitw

TASKS = ["vqa", "caption", "ocr", "chat"]


def random_step_tokens(rng: np.random.Generator, absent: set[str]) -> list[tuple[str, float]]:
    """Token-level data of one step: (task, nll) with very different token counts per task."""
    tokens = []
    for task, hi in zip(TASKS, (5, 400, 40, 2000), strict=True):
        if task in absent:
            continue
        n = int(rng.integers(1, hi + 1))
        tokens += [(task, float(x)) for x in rng.gamma(2.0, 0.7, size=n)]
    rng.shuffle(tokens)
    return tokens


def counts_of(tokens: list[tuple[str, float]]) -> np.ndarray:
    return np.array([sum(1 for t, _ in tokens if t == task) for task in TASKS], dtype=np.float64)


def test_ew_is_all_ones_and_gives_the_plain_token_mean():
    rng = np.random.default_rng(1)
    ew = build_weighting("ew", TASKS)
    tokens = random_step_tokens(rng, absent={"ocr"})
    weights = ew.step_weights(counts_of(tokens))
    assert weights.tolist() == [1.0, 1.0, 1.0, 1.0]
    plain_mean = math.fsum(nll for _, nll in tokens) / len(tokens)
    assert vitw(dict(zip(TASKS, weights, strict=True)), tokens) == pytest.approx(plain_mean, rel=1e-12)


def test_static_returns_given_weights_in_task_order_and_ignores_extra_names():
    given = {"chat": 1.0, "ocr": 0.25, "vqa": 2.5, "caption": 0.75, "not_trained": 9.0}
    st = build_weighting("static", TASKS, static_weights=given)
    for counts in ([1, 2, 3, 4], [0, 0, 5, 0]):
        assert st.step_weights(np.array(counts, dtype=float)).tolist() == [2.5, 0.75, 0.25, 1.0]
        st.observe(np.ones(4), np.array(counts, dtype=float))


def test_tla_values():
    tla = build_weighting("tla", TASKS)
    # present counts 10, 30, 20 -> mean 20 -> weights 2, 2/3, 1; absent task -> 1.0
    w = tla.step_weights(np.array([10.0, 30.0, 0.0, 20.0]))
    np.testing.assert_allclose(w, [2.0, 2.0 / 3.0, 1.0, 1.0], rtol=1e-15)
    assert tla.step_weights(np.zeros(4)).tolist() == [1.0, 1.0, 1.0, 1.0]
    assert tla.step_weights(np.array([0.0, 7.0, 0.0, 0.0])).tolist() == [1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("absent", [set(), {"vqa"}, {"caption", "chat"}, {"vqa", "caption", "ocr"}])
def test_tla_makes_vitw_the_mean_of_per_task_means(absent):
    rng = np.random.default_rng(len(absent))
    tla = build_weighting("tla", TASKS)
    for _ in range(5):
        tokens = random_step_tokens(rng, absent)
        counts = counts_of(tokens)
        weights = tla.step_weights(counts)
        per_task_means = []
        for task in TASKS:
            losses = [nll for t, nll in tokens if t == task]
            if losses:
                per_task_means.append(math.fsum(losses) / len(losses))
        expected = math.fsum(per_task_means) / len(per_task_means)
        assert vitw(dict(zip(TASKS, weights, strict=True)), tokens) == pytest.approx(expected, rel=1e-12)
        # chosen scale: the VITW denominator equals the number of valid tokens, as in stock LLaMA-Factory
        assert float(weights @ counts) == pytest.approx(len(tokens), rel=1e-12)
        tla.observe(np.array([math.fsum(n for t, n in tokens if t == task) for task in TASKS]), counts)
