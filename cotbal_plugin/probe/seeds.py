"""ΔI%, ΔE% and every metric over several seeds (``cotbal summary --table seed0.json --table seed1.json ...``).

Each table is one seed's ``{method: {task: {metric: value}}}``; eqs. 12-14 are computed per seed against that
seed's baseline with :func:`cotbal_plugin.probe.summary.summarize`, then averaged. Spreads are sample standard
deviations (n - 1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ProbeError
from .summary import Table, is_lower_better, summarize


def _stats(values: list[float]) -> dict[str, Any]:
    """``{"mean", "std", "values"}``; std is the sample standard deviation (n - 1), 0 for one value."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "values": list(values)}


def summarize_seeds(
    tables: list[Table], baseline: str, lower_better: Iterable[str] = (), tasks: Iterable[str] | None = None
) -> dict[str, Any]:
    """ΔI%, ΔE% and every metric over several seeds: mean and sample standard deviation (n - 1).

    Each table is one seed's ``{method: {task: {metric: value}}}``; ΔI%/ΔE% are computed per seed against that
    seed's baseline (:func:`summarize`) and then averaged. ``paired`` holds, for every pair of methods (a, b),
    the per-seed differences ΔI%(a) - ΔI%(b) and their mean and std: seeds share data and baseline, so the
    paired spread is the one to compare two methods with.

    Returns:
        ``{"seeds": n, "metrics": {method: {task: {metric: stats}}}, "summary": {method: {"delta_i": stats,
        "delta_e": stats, "per_task": {task: stats}}}, "paired": {"a - b": stats}}``, stats being
        ``{"mean", "std", "values"}``.

    Raises:
        ProbeError: no table, or tables whose methods, tasks or metrics differ.
    """
    if not tables:
        raise ProbeError("no metric table given; pass one --table per seed.")
    lower_better = list(lower_better)
    shape = {m: {t: sorted(ms) for t, ms in per.items()} for m, per in tables[0].items()}
    for k, table in enumerate(tables[1:], start=2):
        other = {m: {t: sorted(ms) for t, ms in per.items()} for m, per in table.items()}
        if other != shape:
            raise ProbeError(
                f"table {k} has other methods, tasks or metrics than table 1 ({sorted(other)} vs {sorted(shape)}); "
                "every seed must report the same {method: {task: {metric}}} layout."
            )
    per_seed = [summarize(t, baseline, lower_better, tasks) for t in tables]
    metrics = {m: {t: {name: _stats([tb[m][t][name] for tb in tables]) for name in ms} for t, ms in per.items()}
               for m, per in shape.items()}  # fmt: skip
    summary: dict[str, Any] = {}
    for method in per_seed[0]:
        task_names = per_seed[0][method]["per_task"]
        summary[method] = {
            "delta_i": _stats([r[method]["delta_i"] for r in per_seed]),
            "delta_e": _stats([r[method]["delta_e"] for r in per_seed]),
            "per_task": {t: _stats([r[method]["per_task"][t] for r in per_seed]) for t in task_names},
        }
    methods = [m for m in per_seed[0] if m != baseline]
    paired = {f"{a} - {b}": _stats([r[a]["delta_i"] - r[b]["delta_i"] for r in per_seed])
              for i, a in enumerate(methods) for b in methods[i + 1 :]}  # fmt: skip
    return {"seeds": len(tables), "baseline": baseline, "metrics": metrics, "summary": summary, "paired": paired}


def _pm(stats: Mapping[str, Any], fmt: str) -> str:
    return f"{stats['mean']:{fmt}} ± {stats['std']:{fmt}}"


def markdown_seeds(result: Mapping[str, Any], lower_better: Iterable[str] = ()) -> str:
    """Markdown table of :func:`summarize_seeds`: mean ± std of every metric, ΔI% and ΔE%, then paired ΔI% gaps."""
    lower_better = list(lower_better)
    baseline = result["baseline"]
    metrics = result["metrics"]
    columns = [(t, m) for t, ms in metrics[baseline].items() for m in ms]
    head = [f"{t} {m}{'↓' if is_lower_better(m, lower_better) else '↑'}" for t, m in columns] + ["ΔI%↑", "ΔE%↓"]
    lines = ["| Method | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for method, per_task in metrics.items():
        cells = [_pm(per_task[t][m], ".4g") if t in per_task and m in per_task[t] else "—" for t, m in columns]
        if method == baseline:
            cells += ["—", "—"]
        else:
            s = result["summary"][method]
            cells += [_pm(s["delta_i"], ".2f"), _pm(s["delta_e"], ".2f")]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    n = result["seeds"]
    text = "\n".join(lines) + f"\n\nmean ± sample std over {n} seed(s); ΔI%/ΔE% against {baseline}, per seed.\n"
    if result.get("paired"):
        text += "\n| paired ΔI% difference | mean ± std | per seed |\n|---|---|---|\n"
        for name, s in result["paired"].items():
            text += f"| {name} | {_pm(s, '.2f')} | {', '.join(f'{v:.2f}' for v in s['values'])} |\n"
    return text
