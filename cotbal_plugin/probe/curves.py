"""Per-task loss and weight curves of a finished training (``cotbal report --trainer-state <output_dir>``).

A ``loss: cotbal`` training logs ``task_loss/<task>`` (token-mean NLL of the task over the logging window) and
``task_weight/<task>`` (its λ) at every logging step; HF's Trainer keeps them in ``trainer_state.json``
(``log_history``) in the output folder and in every ``checkpoint-<step>/``. This module reads them back and draws
one figure with two panels (loss above, weight below) for the report. No LLaMA-Factory import.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import ProbeError

STATE_FILE = "trainer_state.json"
LOSS_PREFIX = "task_loss/"
WEIGHT_PREFIX = "task_weight/"
CURVES_FILE = "task_curves.png"
Curves = dict[str, tuple[list[float], list[float]]]


def find_trainer_state(path: str | Path) -> Path:
    """``trainer_state.json`` of an output folder (or of its latest checkpoint), or the file itself.

    Raises:
        ProbeError: nothing readable at ``path``.
    """
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise ProbeError(
            f"--trainer-state {str(path)!r} does not exist; pass the output_dir of a finished training "
            "(the folder holding trainer_state.json)."
        )
    if (path / STATE_FILE).is_file():
        return path / STATE_FILE
    checkpoints = [p for p in path.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name)]
    checkpoints = [p for p in checkpoints if (p / STATE_FILE).is_file()]
    if checkpoints:
        return max(checkpoints, key=lambda p: int(p.name.split("-")[1])) / STATE_FILE
    raise ProbeError(
        f"--trainer-state {str(path)!r} holds no {STATE_FILE} (nor a checkpoint-<step>/ with one); pass the "
        "output_dir of a finished training, or the path of its trainer_state.json."
    )


def load_log_history(path: str | Path) -> tuple[Path, list[dict[str, Any]]]:
    """``(file, log_history)`` of a trainer state found with :func:`find_trainer_state`."""
    file = find_trainer_state(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ProbeError(f"{str(file)!r} is not a readable trainer state ({err}).") from None
    history = data.get("log_history") if isinstance(data, dict) else None
    if not isinstance(history, list):
        raise ProbeError(f"{str(file)!r} has no log_history list; is it a Hugging Face trainer_state.json?")
    return file, [h for h in history if isinstance(h, dict)]


def task_series(history: Iterable[Mapping[str, Any]], prefix: str) -> Curves:
    """``{task: (steps, values)}`` of the log keys ``<prefix><task>``; non-finite values are skipped."""
    out: Curves = {}
    for log in history:
        step = log.get("step")
        if not isinstance(step, int | float):
            continue
        for key, value in log.items():
            if isinstance(key, str) and key.startswith(prefix) and isinstance(value, int | float):
                if math.isfinite(value):
                    steps, values = out.setdefault(key[len(prefix) :], ([], []))
                    steps.append(float(step))
                    values.append(float(value))
    return out


def task_curves(path: str | Path) -> dict[str, Any]:
    """Per-task loss and weight series of a training, with the file they came from.

    Returns:
        ``{"file": Path, "loss": {task: (steps, values)}, "weight": {...}, "total": (steps, values)}``.

    Raises:
        ProbeError: no trainer state, or a log without any ``task_loss/<task>`` key (not a ``loss: cotbal`` run).
    """
    file, history = load_log_history(path)
    losses = task_series(history, LOSS_PREFIX)
    if not losses:
        raise ProbeError(
            f"{str(file)!r} logs no task_loss/<task> values: it is not a `loss: cotbal` training, or it logged "
            "nothing (set logging_steps below the number of steps)."
        )
    total = ([float(h["step"]) for h in history if "loss" in h and "step" in h],
             [float(h["loss"]) for h in history if "loss" in h and "step" in h])  # fmt: skip
    return {"file": file, "loss": losses, "weight": task_series(history, WEIGHT_PREFIX), "total": total}


def plot_task_curves(curves: Mapping[str, Any], path: str | Path, title: str | None = None) -> Path:
    """One PNG: per-task loss (top, log scale, with the logged total loss dashed) and per-task weight (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    weights: Curves = curves.get("weight") or {}
    rows = 2 if weights else 1
    fig, axes = plt.subplots(rows, 1, figsize=(7.0, 3.4 * rows), sharex=True, squeeze=False)
    tasks = sorted(set(curves["loss"]) | set(weights))
    colour = {t: f"C{i % 10}" for i, t in enumerate(tasks)}
    ax = axes[0][0]
    for task, (steps, values) in sorted(curves["loss"].items()):
        ax.plot(steps, values, color=colour[task], label=task)
    steps, values = curves.get("total", ([], []))
    if steps:
        ax.plot(steps, values, color="k", linestyle="--", linewidth=1, label="loss (VITW)")
    if all(v > 0 for _, values in curves["loss"].values() for v in values):
        from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("task_loss (token-mean NLL)")
    ax.legend(fontsize="small", ncol=2 if len(tasks) > 5 else 1)
    ax.grid(alpha=0.3)
    ax.set_title(title or "Per-task training loss and weight")
    if weights:
        ax = axes[1][0]
        for task, (steps, values) in sorted(weights.items()):
            ax.plot(steps, values, color=colour[task], label=task)
        ax.set_ylabel("task_weight (λ)")
        ax.legend(fontsize="small", ncol=2 if len(tasks) > 5 else 1)
        ax.grid(alpha=0.3)
        low = min(min(v) for _, v in weights.values())
        ax.set_ylim(bottom=min(0.0, low))
    axes[-1][0].set_xlabel("optimizer step")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def final_table(curves: Mapping[str, Any]) -> str:
    """Markdown table: per task, the first and last logged loss and the last logged weight."""
    lines = ["| task | first task_loss | last task_loss | last task_weight |", "|---|---:|---:|---:|"]
    weights = curves.get("weight") or {}
    for task, (_, values) in sorted(curves["loss"].items()):
        weight = f"{weights[task][1][-1]:.4f}" if task in weights and weights[task][1] else "—"
        lines.append(f"| {task} | {values[0]:.4f} | {values[-1]:.4f} | {weight} |")
    return "\n".join(lines) + "\n"


CURVES_SECTION = "## Per-task training curves"


def add_task_curves(trainer_state: str | Path, out_dir: str | Path) -> list[Path]:
    """Draw the per-task loss/weight curves of a finished training into ``out_dir`` and add them to report.md.

    ``trainer_state`` is the training's output_dir (or its ``trainer_state.json``). ``report.md`` gets (or
    replaces) a section with the figure and a table of first/last losses and last weights; it is created when
    only curves are drawn. Returns the written paths.
    """
    curves = task_curves(trainer_state)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = curves["file"].parent
    title = f"Per-task loss and weight: {run.parent.name}/{run.name}"
    figure = plot_task_curves(curves, out / CURVES_FILE, title=title)
    md = out / "report.md"
    text = md.read_text(encoding="utf-8") if md.is_file() else "# CoTBal report\n"
    text = text.split(f"\n{CURVES_SECTION}\n")[0].rstrip("\n") + "\n"
    text += (
        f"\n{CURVES_SECTION}\n\nFrom `{curves['file']}`: `task_loss/<task>` (token-mean NLL over each logging window) "
        f"and `task_weight/<task>` (λ).\n\n![per-task curves]({CURVES_FILE})\n\n{final_table(curves)}"
    )
    md.write_text(text, encoding="utf-8")
    return [figure, md]
