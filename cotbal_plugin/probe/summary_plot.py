"""Figure of a several-seed summary (``cotbal summary --table ... --table ... --plot summary.png``).

Top row: ΔI% and ΔE% per method; below: one panel per (task, metric). Bars are seed means, error bars one sample
standard deviation, dots the individual seeds — so a reader sees the spread, not only its summary.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .summary import is_lower_better


def _bars(
    ax: Any, methods: Sequence[str], stats: Mapping[str, Mapping[str, Any]], title: str, colour: Mapping[str, str]
) -> None:
    xs = range(len(methods))
    means = [stats[m]["mean"] for m in methods]
    stds = [stats[m]["std"] for m in methods]
    colours = [colour[m] for m in methods]
    ax.bar(xs, means, yerr=stds, color=colours, alpha=0.55, capsize=4, edgecolor="k", linewidth=0.5)
    for x, m in zip(xs, methods):
        values = stats[m]["values"]
        offsets = [(k - (len(values) - 1) / 2) * 0.08 for k in range(len(values))]
        ax.plot([x + o for o in offsets], values, "o", color="k", markersize=3)
    ax.set_xticks(list(xs), methods, rotation=30 if max(len(m) for m in methods) > 6 else 0)
    ax.set_title(title, fontsize="medium")
    ax.axhline(0, color="k", linewidth=0.6)
    ax.grid(axis="y", alpha=0.3)


def plot_seed_summary(result: Mapping[str, Any], path: str | Path, lower_better: Sequence[str] = ()) -> Path:
    """Write the figure of :func:`cotbal_plugin.probe.summary.summarize_seeds` to ``path``; returns it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    baseline = result["baseline"]
    compared = [m for m in result["summary"] if m != baseline]
    all_methods = list(result["metrics"])
    panels = [(t, m) for t, ms in result["metrics"][baseline].items() for m in ms]
    cols = max(2, min(4, len(panels)))
    rows = 1 + math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.0 * rows), squeeze=False)
    n = result["seeds"]
    colour = {m: f"C{i % 10}" for i, m in enumerate(all_methods)}  # one colour per method in every panel
    summary = result["summary"]
    _bars(axes[0][0], compared, {m: summary[m]["delta_i"] for m in compared}, f"ΔI% ↑ (vs {baseline})", colour)
    _bars(axes[0][1], compared, {m: summary[m]["delta_e"] for m in compared}, f"ΔE% ↓ (vs {baseline})", colour)
    for ax in axes[0][2:]:
        ax.axis("off")
    for k, (task, metric) in enumerate(panels):
        ax = axes[1 + k // cols][k % cols]
        arrow = "↓" if is_lower_better(metric, lower_better) else "↑"
        stats = {m: result["metrics"][m][task][metric] for m in all_methods}
        _bars(ax, all_methods, stats, f"{task} {metric} {arrow}", colour)
    for k in range(len(panels), (rows - 1) * cols):
        axes[1 + k // cols][k % cols].axis("off")
    fig.suptitle(f"mean ± std over {n} seed(s); dots: single seeds", fontsize="medium")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
