"""Per-task curves (``task_loss/<task>``, ``task_weight/<task>``) in LLaMA-Factory's own plots.

LLaMA-Factory 0.9.5 draws training curves in two places, and neither knows the plugin's keys:

- ``plot_loss: true`` — after training, the workflow calls ``llamafactory.extras.ploting.plot_loss(output_dir,
  keys)`` with ``keys = ["loss", "eval_loss", ...]``; it reads ``trainer_state.json`` and saves one
  ``training_<key>.png`` per key, with ``/`` in a key replaced by ``_``.
- LlamaBoard (the web UI) — ``LogCallback.on_log`` appends a fixed set of keys (loss, lr, epoch, ...) of each log
  to ``trainer_log.jsonl`` in the output folder; the UI reads that file and draws it with ``gen_loss_plot``.

The patches below (applied by the import hook when ``llamafactory.extras.ploting`` and
``llamafactory.train.callbacks`` are imported) add the per-task keys to all three:

- ``plot_loss`` also plots every ``task_loss/<task>`` and ``task_weight/<task>`` found in the log history, as the
  stock per-key files ``training_task_loss_<task>.png`` / ``training_task_weight_<task>.png``, and writes two
  figures with all tasks together: ``training_task_loss.png`` and ``training_task_weight.png``;
- ``LogCallback`` writes the per-task keys of each training log into ``trainer_log.jsonl``;
- ``gen_loss_plot`` (LlamaBoard's curve) adds a panel of per-task losses and one of per-task weights below the
  stock loss panel.

Every patch only acts on logs that hold per-task keys, which only a ``loss: cotbal`` run writes: for any other
run (and in a LlamaBoard process showing one) the stock functions run unchanged.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any

LOSS_PREFIX = "task_loss/"
WEIGHT_PREFIX = "task_weight/"
PREFIXES = (LOSS_PREFIX, WEIGHT_PREFIX)
COMBINED_FILES = {LOSS_PREFIX: "training_task_loss.png", WEIGHT_PREFIX: "training_task_weight.png"}
_MARK = "_cotbal_plots_patched"


def task_keys(logs: Iterable[Mapping[str, Any]]) -> list[str]:
    """The ``task_loss/<task>`` and ``task_weight/<task>`` keys found in ``logs``, in order of appearance."""
    found: dict[str, None] = {}
    for log in logs:
        for key in log:
            if isinstance(key, str) and key.startswith(PREFIXES):
                found.setdefault(key, None)
    return list(found)


def series(logs: Iterable[Mapping[str, Any]], prefix: str, step_key: str = "step") -> dict[str, tuple[list, list]]:
    """``{task: (steps, values)}`` of the keys ``<prefix><task>`` (non-finite values skipped)."""
    out: dict[str, tuple[list, list]] = {}
    for log in logs:
        step = log.get(step_key)
        if step is None:
            continue
        for key, value in log.items():
            if not (isinstance(key, str) and key.startswith(prefix)) or not isinstance(value, int | float):
                continue
            if math.isfinite(value):
                steps, values = out.setdefault(key[len(prefix) :], ([], []))
                steps.append(step)
                values.append(float(value))
    return out


def draw_task_axes(ax: Any, curves: Mapping[str, tuple[list, list]], ylabel: str, smooth: Any = None) -> None:
    """One line per task on ``ax``: raw values faint, smoothed (when ``smooth`` is given) in the same colour."""
    for i, (task, (steps, values)) in enumerate(sorted(curves.items())):
        colour = f"C{i % 10}"
        if smooth is not None and len(values) > 1:
            ax.plot(steps, values, color=colour, alpha=0.3, linewidth=1)
            ax.plot(steps, smooth(values), color=colour, label=task)
        else:
            ax.plot(steps, values, color=colour, label=task, marker="." if len(values) < 30 else None)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if curves:
        ax.legend(fontsize="small", ncol=2 if len(curves) > 6 else 1)


def write_combined_figures(output_dir: str, logs: Sequence[Mapping[str, Any]], smooth: Any = None) -> list[str]:
    """``training_task_loss.png`` / ``training_task_weight.png`` (all tasks in one chart) in ``output_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for prefix, name in COMBINED_FILES.items():
        curves = series(logs, prefix)
        if not curves:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.8))
        draw_task_axes(ax, curves, prefix.rstrip("/"), smooth)
        ax.set_title(f"training {prefix.rstrip('/')} per task of {output_dir}", fontsize="small")
        path = os.path.join(output_dir, name)
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=100)
        plt.close(fig)
        print("Figure saved at:", path)
        written.append(path)
    return written


def _read_history(output_dir: str) -> list[dict[str, Any]]:
    try:
        with open(os.path.join(output_dir, "trainer_state.json"), encoding="utf-8") as f:
            history = json.load(f).get("log_history", [])
    except (OSError, ValueError):
        return []  # the stock plot_loss reports a missing state itself
    return [h for h in history if isinstance(h, dict)]


def patch_ploting(module: ModuleType) -> None:
    """Wrap ``plot_loss`` and ``gen_loss_plot`` of ``llamafactory.extras.ploting`` (idempotent)."""
    if getattr(module, _MARK, False):
        return
    setattr(module, _MARK, True)
    stock_plot_loss, stock_gen_loss_plot = module.plot_loss, module.gen_loss_plot

    @functools.wraps(stock_plot_loss)
    def plot_loss(save_dictionary: str, keys: list[str] = ["loss"]) -> None:  # noqa: B006 - stock signature
        history = _read_history(save_dictionary)
        extra = [k for k in task_keys(history) if k not in keys]
        if not extra:
            return stock_plot_loss(save_dictionary, keys=keys)
        import matplotlib.pyplot as plt

        for key in [*keys, *extra]:  # one key at a time: the stock function leaves its figures open
            stock_plot_loss(save_dictionary, keys=[key])
            plt.close("all")
        write_combined_figures(save_dictionary, history, getattr(module, "smooth", None))
        return None

    @functools.wraps(stock_gen_loss_plot)
    def gen_loss_plot(trainer_log: list[dict[str, Any]]) -> Any:
        fig = stock_gen_loss_plot(trainer_log)
        logs = [log for log in trainer_log if isinstance(log, dict)]
        panels = [(p, series(logs, p, step_key="current_steps")) for p in PREFIXES]
        panels = [(p, c) for p, c in panels if c]
        if not panels or len(fig.axes) != 1:
            return fig
        grid = fig.add_gridspec(1 + len(panels), 1)
        fig.axes[0].set_subplotspec(grid[0])
        for row, (prefix, curves) in enumerate(panels, start=1):
            draw_task_axes(fig.add_subplot(grid[row]), curves, prefix.rstrip("/"), getattr(module, "smooth", None))
        fig.set_size_inches(fig.get_size_inches()[0], 3.2 * (1 + len(panels)))
        fig.tight_layout()
        return fig

    module.plot_loss = plot_loss
    module.gen_loss_plot = gen_loss_plot
    _rebind(module, {"plot_loss": (stock_plot_loss, plot_loss), "gen_loss_plot": (stock_gen_loss_plot, gen_loss_plot)})


def _rebind(source: ModuleType, names: Mapping[str, tuple[Any, Any]]) -> None:
    """Modules imported before the patch hold the stock functions (``from ..extras.ploting import plot_loss``)."""
    for name, module in list(sys.modules.items()):
        if module is source or not name.startswith("llamafactory.") or module is None:
            continue
        for attr, (old, new) in names.items():
            if getattr(module, attr, None) is old:
                setattr(module, attr, new)


def patch_callbacks(module: ModuleType) -> None:
    """Make ``LogCallback`` write the per-task keys of each training log into ``trainer_log.jsonl`` (idempotent)."""
    callback = getattr(module, "LogCallback", None)
    if callback is None or getattr(callback, _MARK, False):
        return
    setattr(callback, _MARK, True)
    stock_on_log = callback.on_log

    @functools.wraps(stock_on_log)
    def on_log(self: Any, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        last = state.log_history[-1] if getattr(state, "log_history", None) else {}
        extra = {k: v for k, v in last.items() if isinstance(k, str) and k.startswith(PREFIXES)}
        if not extra:
            return stock_on_log(self, args, state, control, **kwargs)
        write = self._write_log

        def write_with_tasks(output_dir: str, logs: dict[str, Any]) -> None:
            write(output_dir, {**logs, **extra})

        self._write_log = write_with_tasks  # the stock on_log hands self._write_log to its writer thread
        try:
            return stock_on_log(self, args, state, control, **kwargs)
        finally:
            del self._write_log

    callback.on_log = on_log
