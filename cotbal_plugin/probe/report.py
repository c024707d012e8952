"""``cotbal report``: figures and a markdown table from ``weights.json`` (heatmap of C, bars of D and of the λs).

Works on any weights.json: a hand-written one with only ``"weights"`` gives a bar chart of the weights only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ProbeError

LAMBDA_ORDER = ("out", "in", "C", "D", "CoTBal")


def load_weights_report(path: str | Path, what: str = "--weights") -> dict[str, Any]:
    """Load a weights.json (written by ``cotbal weights`` or by hand) and validate everything the report draws.

    ``"weights"`` goes through the trainer's own loader (:func:`cotbal_plugin.weights_file.read_weights_file`:
    finite numbers > 0); the optional audit keys are checked when present: ``"tasks"`` (task names, each with a
    weight), ``"C"`` (a square matrix of finite numbers, one row per task), ``"C_out"`` / ``"C_in"`` / ``"D"``
    (task → finite number) and ``"lambda"`` (name → task → finite number). Values for tasks the report would not
    show are refused rather than dropped.

    Raises:
        ProbeError: the first problem, naming the file, the key and the task.
    """
    from ..weights_file import CotbalConfigError, read_weights_file

    try:
        data = read_weights_file(path, what)
    except CotbalConfigError as err:
        raise ProbeError(str(err)) from None
    where = f"{what}: {str(path)!r}"
    weights = data["weights"]
    tasks = data.get("tasks", list(weights))
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
        raise ProbeError(f'{where}: "tasks" must be a non-empty list of task names, got {tasks!r}.')
    unweighted = [t for t in tasks if t not in weights]
    if unweighted:
        raise ProbeError(f'{where}: task(s) {unweighted} of "tasks" have no entry in "weights"; add their weights.')
    if "C" in data:
        _check_matrix(data["C"], tasks, f'{where}: "C"')
    for key in ("C_out", "C_in", "D"):
        if key in data:
            _check_per_task(data[key], tasks, f'{where}: "{key}"')
    if "lambda" in data:
        lambdas = data["lambda"]
        if not isinstance(lambdas, Mapping):
            raise ProbeError(f'{where}: "lambda" must map names (out, in, C, D, CoTBal) to {{task: value}} objects.')
        for name, values in lambdas.items():
            _check_per_task(values, tasks, f'{where}: "lambda"/"{name}"')
    return data


def _finite(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _check_per_task(values: Any, tasks: list[str], where: str) -> None:
    if not isinstance(values, Mapping):
        raise ProbeError(f"{where} must be an object {{task: number}}, got {type(values).__name__}.")
    for task, value in values.items():
        if task not in tasks:
            raise ProbeError(f"{where} names task {task!r}, which is not one of the balanced tasks {tasks}.")
        if not _finite(value):
            raise ProbeError(f"{where}: value of task {task!r} is {value!r}, not a finite number.")


def _check_matrix(c: Any, tasks: list[str], where: str) -> None:
    n = len(tasks)
    if not isinstance(c, list) or len(c) != n or not all(isinstance(row, list) and len(row) == n for row in c):
        raise ProbeError(f'{where} must be a {n}×{n} list of rows (one per task of "tasks": {tasks}).')
    for i, row in enumerate(c):
        for j, value in enumerate(row):
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not (i == j and (value is None or number)) and not _finite(value):  # the diagonal is not drawn
                raise ProbeError(f"{where}[{i}][{j}] ({tasks[i]} → {tasks[j]}) is {value!r}, not a finite number.")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_contributions(tasks: list[str], c: list[list[float]], path: Path) -> None:
    """Heatmap of the contribution matrix (row i gives to column j); the diagonal is blanked."""
    import numpy as np

    plt = _plt()
    m = np.array(c, dtype=float)
    np.fill_diagonal(m, np.nan)
    size = max(4.0, 0.7 * len(tasks) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(m, cmap="viridis")
    ax.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right")
    ax.set_yticks(range(len(tasks)), tasks)
    ax.set_xlabel("to task j")
    ax.set_ylabel("from task i")
    ax.set_title("Inter-task contributions C_ij (eq. 3)")
    mid = np.nanmean(m) if len(tasks) > 1 else 0.0
    for i in range(len(tasks)):
        for j in range(len(tasks)):
            if i != j:
                color = "k" if m[i, j] > mid else "w"  # readable on both ends of viridis
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", color=color, fontsize=8)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_bars(series: Mapping[str, Mapping[str, float]], tasks: list[str], title: str, path: Path) -> None:
    """Grouped bar chart: one group per task, one bar per series."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 * len(tasks) + 2), 4))
    width = 0.8 / max(1, len(series))
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(tasks))]
        ax.bar(xs, [values.get(t, 0.0) for t in tasks], width=width, label=name)
    ax.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right")
    ax.set_title(title)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown_table(data: Mapping[str, Any]) -> str:
    """Markdown table of every per-task quantity present (C_out, C_in, D, each λ, final weight)."""
    tasks = list(data.get("tasks") or data["weights"])
    tasks += [t for t in data["weights"] if t not in tasks]
    columns: list[tuple[str, Mapping[str, float]]] = []
    for key in ("C_out", "C_in", "D"):
        if isinstance(data.get(key), Mapping):
            columns.append((key, data[key]))
    for key in LAMBDA_ORDER:
        if isinstance(data.get("lambda"), Mapping) and key in data["lambda"]:
            columns.append((f"λ_{key}", data["lambda"][key]))
    columns.append(("weight", data["weights"]))
    lines = ["| task | " + " | ".join(c for c, _ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for t in tasks:
        cells = [f"{values[t]:.4f}" if t in values else "—" for _, values in columns]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(data: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``report.md`` and the PNG figures into ``out_dir``; return the written paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    tasks = list(data.get("tasks") or data["weights"])
    header = ["# CoTBal task weights", ""]
    meta = {k: data[k] for k in ("method", "temperature", "difficulty", "clipped", "fixed") if k in data}
    if meta:
        header += [", ".join(f"**{k}**: {v}" for k, v in meta.items()), ""]
    figures = []
    if isinstance(data.get("C"), list) and len(data["C"]) == len(tasks) >= 2:
        path = out / "contribution.png"
        plot_contributions(tasks, data["C"], path)
        written.append(path)
        figures.append("![inter-task contributions](contribution.png)")
    if isinstance(data.get("D"), Mapping):
        path = out / "difficulty.png"
        plot_bars({"D": data["D"]}, tasks, "Intra-task difficulty D_i (eq. 9)", path)
        written.append(path)
        figures.append("![intra-task difficulty](difficulty.png)")
    lambdas = data.get("lambda")
    series = {f"λ_{k}": lambdas[k] for k in LAMBDA_ORDER if k in lambdas} if isinstance(lambdas, Mapping) else {}
    all_tasks = tasks + [t for t in data["weights"] if t not in tasks]
    path = out / "weights.png"
    plot_bars(series or {"weight": data["weights"]}, tasks if series else all_tasks, "Task weights", path)
    written.append(path)
    figures.append("![task weights](weights.png)")
    body = header + [markdown_table(data), *[f"{f}\n" for f in figures]]
    if isinstance(data.get("C"), list) and data["C"]:
        body.append("## Contribution matrix C (row i → column j)\n")
        body.append("| from \\ to | " + " | ".join(tasks) + " |")
        body.append("|---" * (len(tasks) + 1) + "|")
        for i, (t, row) in enumerate(zip(tasks, data["C"])):
            body.append(f"| {t} | " + " | ".join("—" if i == j else f"{v:.4f}" for j, v in enumerate(row)) + " |")
    md = out / "report.md"
    md.write_text("\n".join(body) + "\n", encoding="utf-8")
    written.insert(0, md)
    return written
