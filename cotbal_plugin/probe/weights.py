"""CoTBal weight math (paper §3, eqs. 3-11; appendix F eqs. 15-16; appendix G eq. 17).

Pure numpy; no LLaMA-Factory. ``C[i, j]`` is the contribution of task i to task j (row = giver, column = receiver);
the diagonal is ignored everywhere.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from .errors import ProbeError, ProbeWarning
from .scores import (
    BASE_RUN,
    MINI_RUN,
    Scores,
    alone_run,
    get_score,
    mini_alone_run,
    plus_mini_run,
)

DIFFICULTY_VARIANTS = ("real", "precise", "chat")
LAMBDA_KEYS = ("out", "in", "C", "D", "CoTBal")
# A task's own gain V_j(j+mini) - V_j(mini) below this share of its score makes column j of C fragile (a warning).
FRAGILE_GAIN = 0.05


def _check_temperature(temperature: float) -> float:
    temperature = float(temperature)
    if not np.isfinite(temperature) or temperature <= 0:
        raise ProbeError(f"temperature must be a finite number > 0, got {temperature}.")
    return temperature


def scaled_softmax(values: Sequence[float] | np.ndarray, temperature: float) -> np.ndarray:
    """``N × softmax(values / T)`` (eqs. 5, 7, 10): positive weights averaging 1."""
    temperature = _check_temperature(temperature)
    x = np.asarray(values, dtype=np.float64) / temperature
    if x.ndim != 1 or x.size == 0:
        raise ProbeError(f"expected a non-empty vector, got shape {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ProbeError(f"non-finite value in {list(np.asarray(values))}.")
    e = np.exp(x - x.max())
    return x.size * e / e.sum()


def _check_matrix(contribution: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    c = np.asarray(contribution, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ProbeError(f"the contribution matrix must be square (N×N), got shape {c.shape}.")
    if c.shape[0] < 2:
        raise ProbeError("inter-task contributions need at least 2 tasks.")
    off = ~np.eye(c.shape[0], dtype=bool)
    if not np.all(np.isfinite(c[off])):
        raise ProbeError("the contribution matrix has non-finite off-diagonal entries.")
    return c


def contribution_out(contribution: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Task-outward contribution (eq. 4): ``C_out[i] = mean_{j != i} C[i, j]`` (row means without the diagonal)."""
    c = _check_matrix(contribution)
    n = c.shape[0]
    return (c.sum(axis=1) - np.diag(c)) / (n - 1)


def contribution_in(contribution: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Task-inward contribution (eq. 6): ``C_in[i] = mean_{j != i} C[j, i]`` (column means without the diagonal)."""
    c = _check_matrix(contribution)
    n = c.shape[0]
    return (c.sum(axis=0) - np.diag(c)) / (n - 1)


def lambdas_from_summaries(
    c_out: Sequence[float] | np.ndarray,
    c_in: Sequence[float] | np.ndarray,
    difficulty: Sequence[float] | np.ndarray,
    temperature: float = 0.5,
) -> dict[str, np.ndarray]:
    """All λ vectors (eqs. 5, 7, 8, 10, 11) from C_out, C_in and D."""
    c_out = np.asarray(c_out, dtype=np.float64)
    c_in = np.asarray(c_in, dtype=np.float64)
    d = np.asarray(difficulty, dtype=np.float64)
    if not (c_out.shape == c_in.shape == d.shape):
        raise ProbeError(f"C_out, C_in and D must have the same length, got {c_out.shape}, {c_in.shape}, {d.shape}.")
    lam_out = scaled_softmax(c_out, temperature)
    lam_in = scaled_softmax(-c_in, temperature)
    lam_d = scaled_softmax(d, temperature)
    lam_c = (lam_out + lam_in) / 2
    return {"out": lam_out, "in": lam_in, "C": lam_c, "D": lam_d, "CoTBal": (lam_c + lam_d) / 2}


def cotbal_weights(
    contribution: Sequence[Sequence[float]] | np.ndarray,
    difficulty: Sequence[float] | np.ndarray,
    temperature: float = 0.5,
) -> dict[str, np.ndarray]:
    """CoTBal task weights from the N×N contribution matrix C (diagonal ignored) and the difficulty vector D.

    Returns:
        ``{"out": λ_out, "in": λ_in, "C": λ_C, "D": λ_D, "CoTBal": λ_CoTBal}``, each an array of N weights
        (eqs. 4-11). Every vector is positive and averages to 1.
    """
    c = _check_matrix(contribution)
    d = np.asarray(difficulty, dtype=np.float64)
    if d.shape != (c.shape[0],):
        raise ProbeError(f"D must have one entry per task ({c.shape[0]}), got shape {d.shape}.")
    if not np.all(np.isfinite(d)):
        raise ProbeError(f"D has non-finite entries: {d.tolist()}.")
    return lambdas_from_summaries(contribution_out(c), contribution_in(c), d, temperature)


def contribution_matrix(scores: Scores, tasks: Sequence[str], form: str = "standard") -> np.ndarray:
    """Inter-task contribution matrix from probe scores.

    ``form="standard"`` (eq. 3): ``C[i, j] = (V_j(i+mini) - V_j(mini)) / (V_j(j+mini) - V_j(mini))``.
    ``form="chat"`` (eq. 15): ``C[i, j] = (V_j(i) - V_j(base)) / (V_j(j) - V_j(base))``.
    The diagonal is 1 by construction.

    Raises:
        ProbeError: a missing run/task, fewer than 2 tasks, or a zero denominator (names the task).
    """
    if form not in ("standard", "chat"):
        raise ProbeError(f"unknown contribution form {form!r}; use 'standard' or 'chat'.")
    tasks = list(tasks)
    if len(tasks) < 2:
        raise ProbeError(f"inter-task contributions need at least 2 balanced tasks, got {tasks}.")
    ref_run, trained = (MINI_RUN, plus_mini_run) if form == "standard" else (BASE_RUN, alone_run)
    n = len(tasks)
    c = np.empty((n, n), dtype=np.float64)
    for j, tj in enumerate(tasks):
        ref = get_score(scores, ref_run, tj)
        own = get_score(scores, trained(tj), tj)
        denom = own - ref
        if denom == 0:
            raise ProbeError(
                f"task {tj!r}: V_{tj}({trained(tj)}) = V_{tj}({ref_run}) = {own}, so the denominator of "
                f"eq. {'3' if form == 'standard' else '15'} is zero and the contributions to {tj!r} are undefined. "
                f"Training on {tj!r} did not change its validation score: check the probe run {trained(tj)!r} "
                "(did it train? enough data? a fitting metric?), use a larger validation set or more "
                f"training data for {tj!r}, or give it a fixed weight (--fixed {tj}=1.0)."
            )
        for i, ti in enumerate(tasks):
            c[i, j] = (get_score(scores, trained(ti), tj) - ref) / denom
        _warn_fragile_column(c, j, tj, own, ref, trained(tj), ref_run, form)
    return c


def _warn_fragile_column(
    c: np.ndarray, j: int, task: str, own: float, ref: float, trained: str, ref_run: str, form: str
) -> None:
    """Warn when the denominator of column ``j`` (the task's own gain) is <= 0 or tiny next to its score.

    Only warns: the weights are computed from the scores as they are.
    """
    gain = own - ref
    scale = max(abs(own), abs(ref))
    if gain > FRAGILE_GAIN * scale:
        return
    eq = "3" if form == "standard" else "15"
    others = np.delete(c[:, j], j)
    numbers = (
        f"V_{task}({trained}) - V_{task}({ref_run}) = {own:.6g} - {ref:.6g} = {gain:.3g}"
        + (f" ({100 * gain / scale:.2g}% of the score)" if gain > 0 else "")
        + f"; column {task!r} of C (eq. {eq}) is divided by it: "
        + f"C[:, {task!r}] = {others.min():.3g} … {others.max():.3g}"
    )
    if gain < 0:
        what = (
            f"training on {task!r} lowered its own validation score, so the contributions to {task!r} have their "
            f"sign flipped (a task that helps {task!r} counts as harming it)"
            + (" and its difficulty D (eq. 9) is negative" if form == "standard" else "")
        )
    else:
        what = (
            f"the gain of {task!r} from its own data is below {FRAGILE_GAIN:.0%} of its score, so validation noise "
            f"is amplified into the contributions to {task!r}"
        )
    warnings.warn(
        f"task {task!r}: {numbers}: {what}. Use larger probes (a larger share of {task!r} in run {trained!r}, or more "
        f"steps), a larger validation set or another metric for {task!r}; or give it a fixed weight "
        f"(--fixed {task}=1.0).",
        ProbeWarning,
        stacklevel=3,
    )


def difficulty(scores: Scores, tasks: Sequence[str], variant: str = "real") -> np.ndarray:
    """Intra-task difficulty vector.

    ``variant="real"`` (eq. 9): ``D_i = 1 - V_i(mini) / V_i(i+mini)`` (reuses the contribution probes).
    ``variant="precise"`` (eq. 17) and ``"chat"`` (eq. 16): ``D_i = 1 - V_i(mini_i) / V_i(i)``.

    Raises:
        ProbeError: unknown variant, missing run/task, or a zero denominator (names the task).
    """
    if variant not in DIFFICULTY_VARIANTS:
        raise ProbeError(f"unknown difficulty variant {variant!r}; valid: {', '.join(DIFFICULTY_VARIANTS)}.")
    if variant == "real":
        small_run, large_run, eq = (lambda t: MINI_RUN), plus_mini_run, "9"
    else:
        small_run, large_run, eq = mini_alone_run, alone_run, "17" if variant == "precise" else "16"
    out = np.empty(len(tasks), dtype=np.float64)
    for i, task in enumerate(tasks):
        small = get_score(scores, small_run(task), task)
        large = get_score(scores, large_run(task), task)
        if large == 0:
            raise ProbeError(
                f"task {task!r}: V_{task}({large_run(task)}) = 0, so eq. {eq} (D = 1 - V(small)/V(large)) divides "
                f"by zero. The probe trained on {task!r} scored 0 on its validation set: check run "
                f"{large_run(task)!r} and the metric of {task!r}, or give {task!r} a fixed weight."
            )
        out[i] = 1.0 - small / large
    return out
