"""``python -m cotbal_plugin.demo``: the quick demo end to end (integration), and its small helpers (unit)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from cotbal_plugin.demo.pipeline import (
    MARKER,
    METHODS,
    QUICK,
    DemoError,
    degenerate_tasks,
    prepare_out_dir,
    settings_for,
    summary_table,
    summary_tables,
)
from cotbal_plugin.demo.structure import EXPECTED, check_structure, markdown

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _demo(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cotbal_plugin.demo", "--no-progress", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def _png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    with Image.open(path) as image:
        image.verify()


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
    other = settings_for(True, seeds=(7,))
    with pytest.raises(DemoError, match="other settings.*seeds.*--overwrite"):
        prepare_out_dir(out, other, overwrite=False)
    assert (out / "weights.json").is_file()
    assert prepare_out_dir(out, other, overwrite=True) is False
    assert not (out / "weights.json").exists()
    assert json.loads((out / MARKER).read_text())["settings"]["seeds"] == [7]


def test_out_dir_foreign_folder_refused_even_with_overwrite(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(DemoError, match="no demo marker"):
            prepare_out_dir(tmp_path, QUICK, overwrite=overwrite)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(DemoError, match="is a file"):
        prepare_out_dir(tmp_path / "notes.txt", QUICK, overwrite=True)


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


def test_summary_tables_keep_the_same_columns_in_every_seed() -> None:
    seed0 = {"STL": {"a": {"em": 0.5}, "b": {"em": 0.3}}, "EW": {"a": {"em": 0.6}, "b": {"em": 0.4}}}
    seed1 = {"STL": {"a": {"em": 0.5}, "b": {"em": 0.0}}, "EW": {"a": {"em": 0.6}, "b": {"em": 0.2}}}
    (t0, t1), notes = summary_tables([seed0, seed1], "STL")
    assert set(t0["EW"]) == set(t1["EW"]) == {"a"}  # b's baseline is 0 in seed 1: left out of both
    assert len(notes) == 1 and "lowest seed" in notes[0]


def test_structure_check_reads_c_and_d_of_every_seed() -> None:
    tasks = ["color", "colour", "count", "caption"]
    i = {t: k for k, t in enumerate(tasks)}

    def weights(helps: float, conflicts: float, d_count: float) -> dict:
        c = [[0.0] * 4 for _ in tasks]
        c[i["caption"]][i["colour"]], c[i["colour"]][i["color"]] = helps, conflicts
        return {"tasks": tasks, "C": c, "D": {"color": 0.1, "colour": 0.2, "count": d_count, "caption": 0.4}}

    assert [(e.kind, e.a, e.b, e.sign) for e in EXPECTED] == [
        ("C", "caption", "colour", 1),
        ("C", "colour", "color", -1),
        ("D", "count", "color", 1),
    ]  # the designed relations (docs/demo.md)
    rows = check_structure({0: weights(0.4, -0.2, 0.8), 1: weights(-0.1, -0.3, 0.05)}, tasks)
    helps, conflicts, difficulty = rows
    assert helps["values"] == {0: 0.4, 1: -0.1} and helps["holds"] and helps["seeds_holding"] == 1
    assert conflicts["mean"] == pytest.approx(-0.25) and conflicts["holds"] and conflicts["seeds_holding"] == 2
    assert difficulty["values"] == {0: pytest.approx(0.7), 1: pytest.approx(-0.05)} and difficulty["holds"]
    text = markdown(rows, {0: weights(0.4, -0.2, 0.8), 1: weights(-0.1, -0.3, 0.05)})
    assert "| mean only (1/2 seeds) |" in text and "| yes (2/2 seeds) |" in text  # one seed against: not a plain yes
    rows = check_structure({0: weights(-0.4, 0.2, 0.0)}, tasks)
    assert "| **no** (0/1 seeds) |" in markdown(rows, {0: weights(-0.4, 0.2, 0.0)})
    assert not any(r["holds"] for r in rows)
    assert check_structure({0: weights(0.4, -0.2, 0.8)}, ["color", "count"])[0]["relation"] == "D[count] > D[color]"
    balanced = ["colour", "count", "caption"]
    fixed = {"tasks": balanced, "C": [[0.0] * 3] * 3, "D": dict.fromkeys(balanced, 0.0)}
    assert check_structure({0: fixed}, tasks)[1]["values"] == {0: None}  # color fixed (not balanced): no value


def test_bad_options_fail_clearly(tmp_path: Path) -> None:
    proc = _demo("--quick", "--launcher", "nope", "--out", str(tmp_path / "x"), timeout=60)
    assert proc.returncode == 2 and "invalid choice" in proc.stdout
    (tmp_path / "file").write_text("")
    proc = _demo("--quick", "--out", str(tmp_path / "file"), timeout=60)
    assert proc.returncode == 2 and "is a file" in proc.stdout
    proc = _demo("--quick", "--seeds", "1,1", "--out", str(tmp_path / "y"), timeout=60)
    assert proc.returncode == 2 and "distinct seeds" in proc.stdout
    proc = _demo("--quick", "--jobs", "0", "--out", str(tmp_path / "z"), timeout=60)
    assert proc.returncode == 2 and "--jobs must be >= 1" in proc.stdout


# ---------------------------------------------------------------------------------------------- integration


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("demo") / "out"
    proc = _demo("--quick", "--out", str(out))
    if proc.returncode != 0:
        raise AssertionError(f"quick demo failed ({proc.returncode}):\n{proc.stdout[-5000:]}")
    return out, proc


@pytest.mark.integration
def test_quick_demo_weights(quick_demo) -> None:
    out, _ = quick_demo
    data = json.loads((out / "seeds" / "seed0" / "weights.json").read_text())
    weights = data["weights"]
    assert set(weights) == set(QUICK.tasks)
    assert all(w > 0 for w in weights.values())
    balanced = data["tasks"]
    assert len(balanced) >= 2 and set(balanced) <= set(QUICK.tasks)
    lam = data["lambda"]["CoTBal"]  # eq. 11 averages 1; the demo clips to [0.5, 2] as the paper recommends
    assert sum(lam[t] for t in balanced) / len(balanced) == pytest.approx(1.0, abs=1e-6)
    assert all(weights[t] == pytest.approx(min(2.0, max(0.5, lam[t]))) for t in balanced)


@pytest.mark.integration
def test_quick_demo_report_pngs(quick_demo) -> None:
    out, proc = quick_demo
    for name in ("contribution.png", "difficulty.png", "weights.png", "task_curves.png"):
        _png(out / "report" / name)
    assert str(out / "report" / "report.md") in proc.stdout  # the demo ends by saying where things are
    assert "## Per-task training curves" in (out / "report" / "report.md").read_text()


@pytest.mark.integration
def test_quick_demo_summary_recomputed_from_its_metrics(quick_demo) -> None:
    out, proc = quick_demo
    summary = (out / "summary" / "summary.md").read_text()
    header = summary.splitlines()[0]
    assert "ΔI%" in header and "ΔE%" in header
    rows = {line.split("|")[1].strip(): line for line in summary.splitlines()[2:6]}
    assert set(rows) == {"STL", *METHODS} and all(" ± " in row for row in rows.values())
    _png(out / "summary" / "summary.png")
    result = json.loads((out / "summary" / "summary.json").read_text())
    assert result["seeds"] == len(QUICK.seeds) and result["baseline"] == "STL"
    # eq. 12-13 by hand from the per-seed table the summary read
    table = json.loads((out / "summary" / f"table_seed{QUICK.seeds[0]}.json").read_text())
    for method in METHODS:
        changes = [
            sum((table[method][t][m] - base) / base for m, base in metrics.items()) / len(metrics)
            for t, metrics in table["STL"].items()
        ]
        assert result["summary"][method]["delta_i"]["mean"] == pytest.approx(100 * sum(changes) / len(changes))


@pytest.mark.integration
def test_quick_demo_final_trainings_log_and_plot_every_task(quick_demo) -> None:
    out, _ = quick_demo
    saves = out / "seeds" / "seed0" / "compare" / "saves"
    weights = json.loads((out / "seeds" / "seed0" / "weights.json").read_text())["weights"]
    for method in METHODS:
        history = json.loads((saves / method / "trainer_state.json").read_text())["log_history"]
        logs = [h for h in history if "loss" in h]
        assert logs, method
        for task in QUICK.tasks:
            assert all(f"task_weight/{task}" in h for h in logs), (method, task)
        if method == "CoTBal":
            assert all(h[f"task_weight/{t}"] == pytest.approx(weights[t]) for h in logs for t in QUICK.tasks)
        if method == "EW":
            assert all(h[f"task_weight/{t}"] == 1.0 for h in logs for t in QUICK.tasks)
    cotbal_run = saves / "CoTBal"  # plot_loss: true -> LLaMA-Factory's own figures, with the per-task curves
    for task in QUICK.tasks:
        _png(cotbal_run / f"training_task_loss_{task}.png")
    _png(cotbal_run / "training_task_loss.png")
    _png(cotbal_run / "training_task_weight.png")
    lines = [json.loads(line) for line in (cotbal_run / "trainer_log.jsonl").read_text().splitlines()]
    assert any(f"task_loss/{QUICK.tasks[0]}" in line for line in lines)  # LlamaBoard's log has the per-task keys


@pytest.mark.integration
def test_quick_demo_structure_report(quick_demo) -> None:
    out, _ = quick_demo
    rows = json.loads((out / "summary" / "structure.json").read_text())
    assert [r["relation"] for r in rows] == [e.label for e in EXPECTED]
    by_relation = {r["relation"]: r for r in rows}
    # the relations every seed of the full demo showed (docs/demo.md); the quick demo runs the full demo's seed 0
    for relation in ("C[caption → colour] > 0", "D[count] > D[color]"):
        assert by_relation[relation]["holds"], by_relation[relation]
    assert by_relation["C[colour → color] < 0"]["values"]["0"] is not None  # measured and reported (see docs)
    text = (out / "summary" / "structure.md").read_text()
    assert "C (eq. 3, row gives to column)" in text and "D per seed" in text


@pytest.mark.integration
def test_quick_demo_refuses_other_settings(quick_demo) -> None:
    out, _ = quick_demo
    before = (out / "seeds" / "seed0" / "weights.json").read_bytes()
    proc = _demo("--quick", "--seeds", "1", "--out", str(out), timeout=60)
    assert proc.returncode == 2
    assert "other settings" in proc.stdout and "--overwrite" in proc.stdout
    assert (out / "seeds" / "seed0" / "weights.json").read_bytes() == before
