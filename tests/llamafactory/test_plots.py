"""Per-task curves in LLaMA-Factory's own plots: ``plot_loss: true`` files, ``trainer_log.jsonl`` and LlamaBoard.

Unit tests drive the patched functions on hand-written logs; the integration test runs a real
``llamafactory-cli train`` with ``loss: cotbal`` and ``plot_loss: true`` and feeds its ``trainer_log.jsonl`` to
LlamaBoard's own ``get_trainer_info`` (the function behind the web UI's loss curve).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cotbal_plugin.llamafactory.plots import series, task_keys

from ._runs import train

PNG = b"\x89PNG\r\n\x1a\n"


def _history(tasks=("short", "long"), steps=5) -> list[dict]:
    logs = []
    for s in range(1, steps + 1):
        log = {"loss": 2.0 / s, "step": s, "learning_rate": 0.1, "epoch": s / steps}
        for k, t in enumerate(tasks):
            log[f"task_loss/{t}"] = (k + 1.0) / s
            log[f"task_weight/{t}"] = 0.5 + k + 0.01 * s
        logs.append(log)
    logs.append({"step": steps, "train_runtime": 1.0})  # a summary entry without loss
    return logs


def test_task_keys_and_series() -> None:
    logs = _history()
    assert task_keys(logs) == ["task_loss/short", "task_weight/short", "task_loss/long", "task_weight/long"]
    curves = series(logs, "task_loss/")
    assert set(curves) == {"short", "long"}
    assert curves["long"] == ([1, 2, 3, 4, 5], [2.0 / s for s in range(1, 6)])
    assert series([{"step": 1, "task_loss/a": float("nan")}], "task_loss/") == {}  # non-finite values skipped


def test_plot_loss_adds_task_figures(tmp_path: Path) -> None:
    import llamafactory.extras.ploting as ploting

    import cotbal_plugin

    cotbal_plugin.install()
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": _history()}))
    ploting.plot_loss(str(tmp_path), keys=["loss", "eval_loss"])
    names = {p.name for p in tmp_path.glob("*.png")}
    assert names == {
        "training_loss.png",
        "training_task_loss_short.png",
        "training_task_loss_long.png",
        "training_task_weight_short.png",
        "training_task_weight_long.png",
        "training_task_loss.png",
        "training_task_weight.png",
    }  # eval_loss is not logged: the stock function warns and skips it, as without the plugin
    assert all((tmp_path / n).read_bytes()[:8] == PNG for n in names)
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # no figure left open


def test_plot_loss_unchanged_without_task_keys(tmp_path: Path) -> None:
    import llamafactory.extras.ploting as ploting

    import cotbal_plugin

    cotbal_plugin.install()
    history = [{k: v for k, v in h.items() if not k.startswith("task_")} for h in _history()]
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    ploting.plot_loss(str(tmp_path), keys=["loss"])
    assert {p.name for p in tmp_path.glob("*.png")} == {"training_loss.png"}


def test_llamaboard_plot_without_task_keys_is_stock() -> None:
    import llamafactory.extras.ploting as ploting

    import cotbal_plugin

    cotbal_plugin.install()
    log = [{"current_steps": s, "loss": 1.0 / s} for s in range(1, 4)]
    fig = ploting.gen_loss_plot(log)
    assert len(fig.axes) == 1


@pytest.mark.integration
def test_real_run_curves_reach_plot_loss_and_llamaboard(text_workspace: Path) -> None:
    ws = text_workspace
    out = ws / "runs" / "plots_rlw"
    train(ws, "plots_rlw", loss="cotbal", cotbal_weighting="rlw", dataset="short,long",
          max_steps=6, logging_steps=1, plot_loss=True)  # fmt: skip
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    logged = [h for h in history if "loss" in h]
    assert len(logged) == 6

    # plot_loss: true -> the stock per-key files (with "/" replaced by "_") and the all-task figures
    for name in ("loss", "task_loss_short", "task_loss_long", "task_weight_short", "task_weight_long",
                 "task_loss", "task_weight"):  # fmt: skip
        assert (out / f"training_{name}.png").read_bytes()[:8] == PNG, name

    # LogCallback -> trainer_log.jsonl carries the per-task keys of every training log
    lines = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    train_lines = [line for line in lines if "loss" in line]
    assert len(train_lines) == 6
    for line, log in zip(train_lines, logged):
        assert line["current_steps"] == log["step"]
        keys = {k for k in log if k.startswith(("task_loss/", "task_weight/"))}
        assert {"task_weight/short", "task_weight/long"} <= keys  # task_loss/<t> only when t had tokens
        assert keys == {k for k in line if k.startswith(("task_loss/", "task_weight/"))}
        for key in keys:
            assert line[key] == pytest.approx(log[key])
    weights = [line["task_weight/long"] for line in train_lines]
    assert len(set(weights)) > 1  # rlw draws the weights: the curve is not flat

    # LlamaBoard: the web UI's own function reads trainer_log.jsonl and returns the loss viewer
    from llamafactory.webui.control import get_trainer_info

    _, _, info = get_trainer_info("en", str(out), True)
    assert "loss_viewer" in info
    from llamafactory.extras.ploting import gen_loss_plot

    fig = gen_loss_plot(lines)
    assert len(fig.axes) == 3
    loss_ax, task_loss_ax, weight_ax = fig.axes
    assert loss_ax.get_ylabel() == "loss"
    assert task_loss_ax.get_ylabel() == "task_loss" and weight_ax.get_ylabel() == "task_weight"
    labels = task_loss_ax.get_legend_handles_labels()[1]
    assert sorted(labels) == ["long", "short"]
    raw = {tuple(line.get_ydata()) for line in weight_ax.get_lines()}
    assert tuple(weights) in raw  # the raw weight curve of task long is drawn as logged
