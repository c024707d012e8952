"""Prediction files → scores.json and details."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cotbal_plugin.probe.errors import ProbeError
from cotbal_plugin.probe.evaluate import PredictionFile, evaluate, read_predictions


def write_preds(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"prompt": "p", "predict": p, "label": lab}) + "\n" for p, lab in pairs))
    return path


def test_read_predictions(tmp_path: Path) -> None:
    path = write_preds(tmp_path / "g.jsonl", [("a", "a"), ("b", "c")])
    assert read_predictions(path) == (["a", "b"], ["a", "c"])


def test_missing_empty_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match=r"does not exist.*cotbal run"):
        read_predictions(tmp_path / "none.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ProbeError, match=r"empty\.jsonl' is empty"):
        read_predictions(tmp_path / "empty.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"predict": "a", "label": "a"}\n{"predict": "a"}\n')
    with pytest.raises(ProbeError, match=r"line 2: key 'label' is missing"):
        read_predictions(tmp_path / "bad.jsonl")
    (tmp_path / "bad2.jsonl").write_text('{"predict": "a", "label": "a"}\nnot json\n')
    with pytest.raises(ProbeError, match=r"line 2: not valid JSON"):
        read_predictions(tmp_path / "bad2.jsonl")


def test_evaluate_averages_files_and_keeps_every_metric(tmp_path: Path) -> None:
    f1 = write_preds(tmp_path / "m" / "v1.jsonl", [("yes", "yes"), ("no", "yes")])  # em 0.5
    f2 = write_preds(tmp_path / "m" / "v2.jsonl", [("yes", "yes")])  # em 1.0
    f3 = write_preds(tmp_path / "b.jsonl", [("[0,0,1,1]", "[0,0,1,1]"), ("?", "[0,0,1,1]")])
    files = [PredictionFile("mini", "qa", f1), PredictionFile("mini", "qa", f2), PredictionFile("mini", "box", f3)]
    scores, details = evaluate(files, {"qa": ["em", "vqa"], "box": ["iou_acc", "miou"]}, progress=False)
    assert scores == {"mini": {"qa": pytest.approx(0.75), "box": pytest.approx(0.5)}}
    assert details["mini"]["qa"]["em"] == pytest.approx(0.75)
    assert details["mini"]["qa"]["vqa"] == pytest.approx(0.75)
    assert details["mini"]["qa"]["n"] == 3
    assert details["mini"]["box"]["miou"] == pytest.approx(0.5)
    assert details["mini"]["box"]["unparsable"] == 1


def test_evaluate_errors(tmp_path: Path) -> None:
    f = write_preds(tmp_path / "x.jsonl", [("a", "a")])
    with pytest.raises(ProbeError, match=r"no metric for task\(s\) \['qa'\]"):
        evaluate([PredictionFile("mini", "qa", f)], {}, progress=False)
    with pytest.raises(ProbeError, match="unknown metric 'acc'"):
        evaluate([PredictionFile("mini", "qa", f)], {"qa": ["acc"]}, progress=False)
    with pytest.raises(ProbeError, match="no prediction files"):
        evaluate([], {"qa": ["em"]}, progress=False)
    box = write_preds(tmp_path / "b.jsonl", [("[0,0,1,1]", "a cat")])
    with pytest.raises(ProbeError, match=r"b\.jsonl', metric 'iou_acc': label #1 is not a box"):
        evaluate([PredictionFile("mini", "box", box)], {"box": ["iou_acc"]}, progress=False)
