"""``python -m cotbal_plugin.demo``: the quick demo end to end (integration), and its small helpers (unit)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from cotbal_plugin.demo.pipeline import (
    MARKER,
    QUICK,
    DemoError,
    degenerate_tasks,
    prepare_out_dir,
    settings_for,
    summary_table,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
QUICK_LIMIT_S = 210  # the bound for this test: < 3.5 minutes on the 2-core CPU


def _demo(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cotbal_plugin.demo", "--no-progress", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


# ------------------------------------------------------------------------------------------------ unit tests


def test_out_dir_new_and_same_settings(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert prepare_out_dir(out, QUICK, overwrite=False) is False
    assert json.loads((out / MARKER).read_text())["settings"]["mode"] == "quick"
    (out / "data").mkdir()
    assert prepare_out_dir(out, QUICK, overwrite=False) is True  # same settings: reuse
    assert (out / "data").is_dir()


def test_out_dir_other_settings_refused_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    prepare_out_dir(out, QUICK, overwrite=False)
    (out / "weights.json").write_text("{}")
    other = settings_for(True, seed=7)
    with pytest.raises(DemoError, match="other settings.*seed.*--overwrite"):
        prepare_out_dir(out, other, overwrite=False)
    assert (out / "weights.json").is_file()
    assert prepare_out_dir(out, other, overwrite=True) is False
    assert not (out / "weights.json").exists()
    assert json.loads((out / MARKER).read_text())["settings"]["seed"] == 7


def test_out_dir_foreign_folder_refused_even_with_overwrite(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(DemoError, match="no demo marker"):
            prepare_out_dir(tmp_path, QUICK, overwrite=overwrite)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    file = tmp_path / "notes.txt"
    with pytest.raises(DemoError, match="is a file"):
        prepare_out_dir(file, QUICK, overwrite=True)


def test_degenerate_tasks() -> None:
    scores = {
        "mini": {"a": 0.2, "b": 0.0, "c": 0.1},
        "a+mini": {"a": 0.2, "b": 0.1, "c": 0.1},  # a did not move: eq. 3 undefined
        "b+mini": {"a": 0.3, "b": 0.0, "c": 0.2},  # b unchanged at 0 (eq. 3 is checked first)
        "c+mini": {"a": 0.1, "b": 0.2, "c": 0.5},
    }
    found = degenerate_tasks(scores, ["a", "b", "c"])
    assert sorted(found) == ["a", "b"] and "eq. 3" in found["a"]
    scores["b+mini"]["b"], scores["mini"]["b"] = 0.0, 0.1
    assert "eq. 9" in degenerate_tasks(scores, ["a", "b", "c"])["b"]


def test_summary_table_drops_zero_baseline_metrics() -> None:
    table = {
        "STL": {"g": {"miou": 0.1, "iou_acc": 0.0}, "h": {"em": 0.001}, "k": {"em": 0.5}},
        "EW": {"g": {"miou": 0.2, "iou_acc": 0.1}, "h": {"em": 0.1}, "k": {"em": 0.4}},
    }
    out, notes = summary_table(table, "STL")
    assert out == {"STL": {"g": {"miou": 0.1}, "k": {"em": 0.5}}, "EW": {"g": {"miou": 0.2}, "k": {"em": 0.4}}}
    assert len(notes) == 2 and any(n.startswith("h:") and "task left out" in n for n in notes)


def test_bad_options_fail_clearly(tmp_path: Path) -> None:
    proc = _demo("--quick", "--launcher", "nope", "--out", str(tmp_path / "x"), timeout=60)
    assert proc.returncode == 2 and "invalid choice" in proc.stdout
    (tmp_path / "file").write_text("")
    proc = _demo("--quick", "--out", str(tmp_path / "file"), timeout=60)
    assert proc.returncode == 2 and "is a file" in proc.stdout


# ---------------------------------------------------------------------------------------------- integration


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess, float]:
    out = tmp_path_factory.mktemp("demo") / "out"
    start = time.monotonic()
    proc = _demo("--quick", "--out", str(out))
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise AssertionError(f"quick demo failed ({proc.returncode}):\n{proc.stdout[-5000:]}")
    return out, proc, elapsed


@pytest.mark.integration
def test_quick_demo_time(quick_demo) -> None:
    assert quick_demo[2] < QUICK_LIMIT_S, f"quick demo took {quick_demo[2]:.0f} s"


@pytest.mark.integration
def test_quick_demo_weights(quick_demo) -> None:
    out, _, _ = quick_demo
    data = json.loads((out / "weights.json").read_text())
    weights = data["weights"]
    assert set(weights) == set(QUICK.tasks)
    assert all(w > 0 for w in weights.values())
    balanced = data["tasks"]
    assert len(balanced) >= 2 and set(balanced) <= set(QUICK.tasks)
    assert sum(weights[t] for t in balanced) / len(balanced) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.integration
def test_quick_demo_report_pngs(quick_demo) -> None:
    out, proc, _ = quick_demo
    for name in ("contribution.png", "difficulty.png", "weights.png"):
        path = out / "report" / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(path) as image:
            image.verify()
        assert str(path) in proc.stdout  # the demo ends by saying where they are


@pytest.mark.integration
def test_quick_demo_summary(quick_demo) -> None:
    out, proc, _ = quick_demo
    summary = (out / "summary" / "summary.md").read_text()
    header = summary.splitlines()[0]
    assert "ΔI%" in header and "ΔE%" in header
    assert {"EW", "CoTBal"} <= {line.split("|")[1].strip() for line in summary.splitlines()[2:]}
    assert str(out / "summary" / "summary.md") in proc.stdout
    assert "against EW" in proc.stdout  # quick mode has no STL and must say so
    numbers = json.loads((out / "summary" / "summary.json").read_text())["summary"]
    assert set(numbers) == {"EW", "CoTBal"}


@pytest.mark.integration
def test_quick_demo_final_training_logs_every_task(quick_demo) -> None:
    out, _, _ = quick_demo
    state = json.loads((out / "compare" / "saves" / "CoTBal" / "trainer_state.json").read_text())
    logs = [h for h in state["log_history"] if "loss" in h]
    assert logs
    for task in QUICK.tasks:
        assert all(f"task_loss/{task}" in h for h in logs), task
    weights = json.loads((out / "weights.json").read_text())["weights"]
    assert logs[0]["task_weight/color"] == pytest.approx(weights["color"])


@pytest.mark.integration
def test_quick_demo_refuses_other_settings(quick_demo) -> None:
    out, _, _ = quick_demo
    before = (out / "weights.json").read_bytes()
    proc = _demo("--quick", "--seed", "1", "--out", str(out), timeout=60)
    assert proc.returncode == 2
    assert "other settings" in proc.stdout and "--overwrite" in proc.stdout
    assert (out / "weights.json").read_bytes() == before
