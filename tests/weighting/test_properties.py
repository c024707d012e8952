"""Property tests (hypothesis): weights finite and positive; task order is irrelevant for deterministic methods."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cotbal_plugin.weighting import WEIGHTINGS, build_weighting

DETERMINISTIC = ["static", "ew", "tla", "dwa", "igb"]


@st.composite
def scenarios(draw):
    num_tasks = draw(st.integers(1, 5))
    num_steps = draw(st.integers(1, 14))
    count = st.one_of(st.just(0.0), st.integers(1, 10**6).map(float))
    per_token = st.floats(0.0, 50.0, allow_nan=False)
    steps = []
    for _ in range(num_steps):
        counts = np.array(draw(st.lists(count, min_size=num_tasks, max_size=num_tasks)))
        losses = np.array(draw(st.lists(per_token, min_size=num_tasks, max_size=num_tasks)))
        steps.append((losses * counts, counts))
    static = draw(st.lists(st.floats(1e-3, 1e3), min_size=num_tasks, max_size=num_tasks))
    window = draw(st.integers(1, 3))
    temperature = draw(st.floats(0.05, 10.0))
    perm = draw(st.permutations(range(num_tasks)))
    return num_tasks, steps, static, window, temperature, list(perm)


def build(name, tasks, static, window, temperature, seed=0):
    hp = {"dwa": {"window": window, "temperature": temperature}, "igb": {"window": window}}.get(name, {})
    return build_weighting(name, tasks, static_weights=dict(zip(tasks, static, strict=True)), seed=seed, **hp)


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_weights_finite_and_positive(scenario):
    num_tasks, steps, static, window, temperature, _ = scenario
    tasks = [f"t{i}" for i in range(num_tasks)]
    for name in WEIGHTINGS:
        w = build(name, tasks, static, window, temperature)
        for loss_sums, counts in steps:
            weights = w.step_weights(counts)
            assert weights.shape == (num_tasks,)
            assert np.isfinite(weights).all() and (weights > 0).all(), (name, weights)
            w.observe(loss_sums, counts)


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_permuting_tasks_permutes_weights(scenario):
    num_tasks, steps, static, window, temperature, perm = scenario
    tasks = [f"t{i}" for i in range(num_tasks)]
    permuted_tasks = [tasks[i] for i in perm]
    permuted_static = [static[i] for i in perm]
    for name in DETERMINISTIC:
        a = build(name, tasks, static, window, temperature)
        b = build(name, permuted_tasks, permuted_static, window, temperature)
        for loss_sums, counts in steps:
            wa = a.step_weights(counts)
            wb = b.step_weights(counts[perm])
            np.testing.assert_allclose(wb, wa[perm], rtol=1e-12, err_msg=name)
            a.observe(loss_sums, counts)
            b.observe(loss_sums[perm], counts[perm])
