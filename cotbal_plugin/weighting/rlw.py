"""``rlw``: random loss weighting (Lin et al., "Reasonable Effectiveness of Random Weighting", 2021).

Every optimizer step draws z ~ N(0, I_N) and uses λ = N · softmax(z) (the normal-distribution variant the CoTBal
authors' code uses). N counts *all* tasks and z is drawn for all of them every step, present or not:

* the generator then advances by exactly N normals per step, so the weights of step t depend only on the seed
  and t — not on which tasks happened to be in earlier steps;
* under VITW only ratios among present tasks matter, and λ_i/λ_j = exp(z_i - z_j) is the same whether the
  softmax runs over all tasks or over the present ones, so the choice changes the logged scale, not the loss.

The generator is ``numpy.random.default_rng(seed)`` (PCG64) with ``seed`` the training seed; its state is part of
:meth:`state_dict`, so a resumed run draws the same weights as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import TaskWeighting, n_softmax


class RandomLossWeighting(TaskWeighting):
    """λ = N · softmax(z), z ~ N(0, I_N) redrawn at every :meth:`step_weights` call."""

    name = "rlw"

    def __init__(
        self,
        tasks: list[str],
        *,
        static_weights: dict[str, float] | None = None,
        seed: int = 0,
        **hparams: Any,
    ) -> None:
        super().__init__(tasks, static_weights=static_weights, seed=seed, **hparams)
        self._rng = np.random.default_rng(self.seed)

    def _step_weights(self, counts: np.ndarray) -> np.ndarray:
        return n_softmax(self._rng.standard_normal(self.num_tasks))

    def _extra_state(self) -> dict:
        # PCG64 state: {"bit_generator": "PCG64", "state": {"state": int, "inc": int}, "has_uint32": int,
        # "uinteger": int}; Python's json writes and reads the 128-bit ints exactly.
        return {"rng": self._rng.bit_generator.state}

    def _load_extra_state(self, state: dict) -> None:
        rng_state = state["rng"]
        if rng_state.get("bit_generator") != type(self._rng.bit_generator).__name__:
            raise ValueError(f"rlw: state holds a {rng_state.get('bit_generator')!r} generator state")
        self._rng.bit_generator.state = rng_state
