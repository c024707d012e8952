"""``cotbal summary``: overall metrics of the paper (eqs. 12-14) from per-method metric tables.

Input table: ``{method: {task: {metric: value}}}`` (a bare number per task counts as one metric named ``score``).

* ``I_i = 1/K_i Σ_j (-1)^δ_ij (M_e,ij - M_b,ij) / M_b,ij`` (eq. 12), δ_ij = 1 for lower-is-better metrics;
* ``ΔI% = 100 · mean_i I_i`` (eq. 13) and ``ΔE% = 100 · mean_i max(0, -I_i)`` (eq. 14), against the STL baseline;
* ``ΔI_zero%``: ΔI% on zero-shot tasks against EW (§4.1.3).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..files import read_json
from .errors import ProbeError

Table = dict[str, dict[str, dict[str, float]]]
KNOWN_LOWER_IS_BETTER = frozenset(
    {"loss", "error", "err", "wer", "cer", "ter", "perplexity", "ppl", "mae", "mse", "rmse", "fid", "latency"}
)


def is_lower_better(metric: str, extra: Iterable[str] = ()) -> bool:
    """Whether ``metric`` is lower-is-better: named in ``extra`` or a known name (case-insensitive)."""
    name = metric.strip().lower()
    return name in {m.lower() for m in extra} or name in KNOWN_LOWER_IS_BETTER


def validate_table(data: object, source: str) -> Table:
    """Check a ``{method: {task: {metric: value}}}`` table (a number per task becomes ``{"score": value}``)."""
    if not isinstance(data, Mapping) or not data:
        raise ProbeError(f"{source}: expected a non-empty JSON object {{method: {{task: {{metric: value}}}}}}.")
    table: Table = {}
    for method, tasks in data.items():
        if not isinstance(tasks, Mapping) or not tasks:
            raise ProbeError(f"{source}: method {method!r} must map tasks to metrics.")
        table[method] = {}
        for task, metrics in tasks.items():
            if not isinstance(metrics, Mapping):
                metrics = {"score": metrics}
            table[method][task] = {}
            for metric, value in metrics.items():
                if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                    where = f"{method!r} / {task!r} / {metric!r}"
                    raise ProbeError(f"{source}: {where} is {value!r}, not a finite number.")
                table[method][task][metric] = float(value)
    return table


def load_table(path: str | Path, what: str = "--table") -> Table:
    """Load a metric table from a JSON file (errors name ``what``, the option, and the file)."""
    data = read_json(path, what, hint="write it as {method: {task: {metric: value}}}.", error=ProbeError)
    return validate_table(data, f"{what} {str(path)!r}")


def task_improvement(
    method: Mapping[str, float], baseline: Mapping[str, float], lower_better: Iterable[str] = (), where: str = ""
) -> float:
    """``I_i`` of eq. 12 for one task (a fraction, not a percentage)."""
    lower_better = list(lower_better)
    if not baseline:
        raise ProbeError(f"{where}: the baseline has no metric.")
    total = 0.0
    for metric, base in baseline.items():
        if metric not in method:
            raise ProbeError(f"{where}: metric {metric!r} is missing (the baseline has it).")
        if base == 0:
            raise ProbeError(f"{where}: baseline value of metric {metric!r} is 0; eq. 12 divides by it.")
        sign = -1.0 if is_lower_better(metric, lower_better) else 1.0
        total += sign * (method[metric] - base) / base
    return total / len(baseline)


def summarize(
    table: Table, baseline: str, lower_better: Iterable[str] = (), tasks: Iterable[str] | None = None
) -> dict[str, dict[str, Any]]:
    """ΔI% and ΔE% of every method against ``baseline`` over ``tasks`` (default: the baseline's tasks).

    Returns:
        ``{method: {"delta_i": %, "delta_e": %, "per_task": {task: I_i %}}}`` (the baseline included, all 0).
    """
    if baseline not in table:
        raise ProbeError(f"baseline method {baseline!r} is not in the table; methods: {sorted(table)}.")
    lower_better = list(lower_better)
    tasks = list(tasks) if tasks is not None else list(table[baseline])
    out: dict[str, dict[str, Any]] = {}
    for method, per_task in table.items():
        improvements = {}
        for task in tasks:
            if task not in table[baseline]:
                raise ProbeError(f"baseline {baseline!r} has no task {task!r}.")
            if task not in per_task:
                raise ProbeError(f"method {method!r} has no results for task {task!r}.")
            where = f"method {method!r}, task {task!r}"
            improvements[task] = task_improvement(per_task[task], table[baseline][task], lower_better, where)
        values = list(improvements.values())
        out[method] = {
            "delta_i": 100 * sum(values) / len(values),
            "delta_e": 100 * sum(max(0.0, -v) for v in values) / len(values),
            "per_task": {t: 100 * v for t, v in improvements.items()},
        }
    return out


MAX_DECIMALS = 6
DELTA_DECIMALS = 2  # ΔI%, ΔE%, ΔI_zero% are percentages: always 2 decimals


def column_decimals(values: Iterable[float], significant: int = 3, max_decimals: int = MAX_DECIMALS) -> int:
    """Decimals of one column: ``significant`` digits for its largest magnitude, more if rounding would merge
    two different values (up to ``max_decimals``).

    The scale follows the metric: accuracies in [0, 1] get 3 decimals (0.352), CIDEr around 1-3 gets 2 (2.14),
    percentages 1 (78.5), counts 0 — and 78.54 next to 78.51 gets 2, so different numbers never print alike.
    """
    finite = [v for v in values if math.isfinite(v)]
    nonzero = [abs(v) for v in finite if v != 0]
    if not nonzero:
        return 0
    decimals = min(max_decimals, max(0, significant - 1 - math.floor(math.log10(max(nonzero)))))
    distinct = set(finite)
    while decimals < max_decimals and len({round(v, decimals) for v in distinct}) < len(distinct):
        decimals += 1
    return decimals


def summary_rows(
    table: Table,
    result: Mapping[str, Mapping[str, Any]],
    baseline: str,
    zero_shot: Mapping[str, Mapping[str, Any]] | None = None,
    lower_better: Iterable[str] = (),
    decimals: int | None = None,
) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells of the summary: one row per method, one column per (task, metric), then ΔI%,
    ΔE% (and ΔI_zero%). Each metric column has one format (:func:`column_decimals`, or ``decimals`` for all)."""
    lower_better = list(lower_better)
    columns = [(t, m) for t, ms in table[baseline].items() for m in ms]
    arrow = {c: "↓" if is_lower_better(c[1], lower_better) else "↑" for c in columns}
    head = ["Method", *[f"{t} {m}{arrow[(t, m)]}" for t, m in columns], "ΔI%↑", "ΔE%↓"]
    if zero_shot is not None:
        head.append("ΔI_zero%↑")
    values = {c: [table[method].get(c[0], {}).get(c[1], math.nan) for method in table] for c in columns}
    places = {c: decimals if decimals is not None else column_decimals(values[c]) for c in columns}
    rows = []
    for k, method in enumerate(table):
        cells = [method] + ["—" if math.isnan(values[c][k]) else f"{values[c][k]:.{places[c]}f}" for c in columns]
        if method == baseline:
            cells += ["—", "—"]
        else:
            cells += [f"{result[method][key]:.{DELTA_DECIMALS}f}" for key in ("delta_i", "delta_e")]
        if zero_shot is not None:
            cells.append(f"{zero_shot[method]['delta_i']:.{DELTA_DECIMALS}f}" if method in zero_shot else "—")
        rows.append(cells)
    return head, rows


def markdown(
    table: Table,
    result: Mapping[str, Mapping[str, Any]],
    baseline: str,
    zero_shot: Mapping[str, Mapping[str, Any]] | None = None,
    lower_better: Iterable[str] = (),
    decimals: int | None = None,
) -> str:
    """The summary as a markdown table (see :func:`summary_rows`)."""
    head, rows = summary_rows(table, result, baseline, zero_shot, lower_better, decimals)
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def plain(
    table: Table,
    result: Mapping[str, Mapping[str, Any]],
    baseline: str,
    zero_shot: Mapping[str, Mapping[str, Any]] | None = None,
    lower_better: Iterable[str] = (),
    decimals: int | None = None,
) -> str:
    """The summary as aligned plain text: method names left-aligned, numbers right-aligned on the decimal point."""
    head, rows = summary_rows(table, result, baseline, zero_shot, lower_better, decimals)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:]))]).rstrip()

    return "\n".join([line(head), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]) + "\n"
