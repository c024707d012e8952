"""``cotbal report --trainer-state``: per-task loss and weight curves of a finished training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from cotbal_plugin.cli import main
from cotbal_plugin.probe.curves import find_trainer_state, task_curves, task_series
from cotbal_plugin.probe.errors import ProbeError

PNG = b"\x89PNG\r\n\x1a\n"


def _state(folder: Path, steps: int = 6, tasks=("color", "caption")) -> Path:
    history = []
    for s in range(1, steps + 1):
        log = {"step": s, "loss": 3.0 / s, "learning_rate": 1e-3}
        for k, t in enumerate(tasks):
            log[f"task_loss/{t}"] = (k + 2.0) / s
            log[f"task_weight/{t}"] = 0.5 + k
        history.append(log)
    history.append({"step": steps, "train_loss": 1.0, "train_runtime": 2.0})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": steps, "log_history": history}))
    return folder


def test_series_and_curves(tmp_path: Path) -> None:
    curves = task_curves(_state(tmp_path / "run"))
    assert set(curves["loss"]) == {"color", "caption"}
    assert curves["loss"]["caption"] == ([1.0, 2, 3, 4, 5, 6], [3.0 / s for s in range(1, 7)])
    assert curves["weight"]["color"][1] == [0.5] * 6
    assert curves["total"][1][0] == 3.0
    assert task_series([{"step": 1, "task_loss/a": float("inf")}], "task_loss/") == {}


def test_latest_checkpoint_is_used_when_the_run_did_not_finish(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _state(run / "checkpoint-2", steps=2)
    _state(run / "checkpoint-10", steps=10)
    _state(run / "checkpoint-9", steps=9)
    assert find_trainer_state(run) == run / "checkpoint-10" / "trainer_state.json"


def test_errors_name_the_culprit(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match="does not exist"):
        find_trainer_state(tmp_path / "nope")
    with pytest.raises(ProbeError, match="holds no trainer_state.json"):
        find_trainer_state(tmp_path)
    stock = tmp_path / "stock"
    stock.mkdir()
    (stock / "trainer_state.json").write_text(json.dumps({"log_history": [{"step": 1, "loss": 1.0}]}))
    with pytest.raises(ProbeError, match="not a `loss: cotbal` training"):
        task_curves(stock)
    (stock / "trainer_state.json").write_text("{")
    with pytest.raises(ProbeError, match="not a readable trainer state"):
        task_curves(stock)


def test_cli_report_with_weights_and_trainer_state(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = _state(tmp_path / "run")
    weights = tmp_path / "weights.json"
    weights.write_text(json.dumps({"weights": {"color": 0.5, "caption": 1.5}}))
    out = tmp_path / "report"
    assert main(["report", "--weights", str(weights), "--trainer-state", str(run), "--out", str(out)]) == 0
    assert str(out / "task_curves.png") in capsys.readouterr().out
    assert (out / "task_curves.png").read_bytes()[:8] == PNG
    with Image.open(out / "task_curves.png") as image:
        assert image.size[1] > image.size[0] * 0.8  # two panels stacked
    md = (out / "report.md").read_text()
    assert "![task weights](weights.png)" in md and "![per-task curves](task_curves.png)" in md
    assert "| caption | 3.0000 | 0.5000 | 1.5000 |" in md  # first, last loss and last weight of caption
    # a second report into the same folder replaces the section instead of repeating it
    assert main(["report", "--trainer-state", str(run), "--out", str(out)]) == 0
    assert (out / "report.md").read_text().count("## Per-task training curves") == 1


def test_cli_report_needs_weights_or_trainer_state(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", "--out", str(tmp_path / "r")]) == 2
    assert "--weights" in capsys.readouterr().err
