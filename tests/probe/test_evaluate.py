"""Prediction files → scores.json and details."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cotbal_plugin.probe.errors import ProbeError, ProbeWarning
from cotbal_plugin.probe.evaluate import (
    PredictionFile,
    evaluate,
    metrics_from_manifest,
    read_predictions,
    resolve_metrics,
)


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


# ------------------------------------------------------------------------------- groups with mixed metrics


def test_group_with_a_metric_per_dataset_mean_and_size(tmp_path: Path) -> None:
    from nltk.translate.gleu_score import corpus_gleu

    a = write_preds(tmp_path / "a.jsonl", [("yes", "yes"), ("no", "yes"), ("No.", "no"), ("x", "y")])  # em 2/4
    b = write_preds(tmp_path / "b.jsonl", [("ein hund läuft", "ein hund rennt")])
    gleu_b = corpus_gleu([[["ein", "hund", "rennt"]]], [["ein", "hund", "läuft"]])
    files = [PredictionFile("mini", "gen", a, "vis_val"), PredictionFile("mini", "gen", b, "m30k_val")]
    by_dataset = {"vis_val": ["em"], "m30k_val": ["gleu"]}
    scores, details = evaluate(files, {}, progress=False, dataset_metrics=by_dataset)
    assert scores["mini"]["gen"] == pytest.approx((0.5 + gleu_b) / 2)  # default: mean of the datasets
    entry = details["mini"]["gen"]
    assert entry["combine"] == "mean" and entry["score"] == scores["mini"]["gen"] and entry["n"] == 5
    assert "em" not in entry and "gleu" not in entry  # no metric was computed on every dataset
    per_file = {f["dataset"]: f for f in entry["per_file"]}
    assert per_file["vis_val"]["metric"] == "em" and per_file["vis_val"]["score"] == pytest.approx(0.5)
    assert per_file["m30k_val"]["metric"] == "gleu" and per_file["m30k_val"]["gleu"] == pytest.approx(gleu_b)
    assert per_file["vis_val"]["n"] == 4
    sized, details = evaluate(files, {}, progress=False, dataset_metrics=by_dataset, group_combine="size")
    assert sized["mini"]["gen"] == pytest.approx((4 * 0.5 + 1 * gleu_b) / 5)
    assert details["mini"]["gen"]["combine"] == "size"
    with pytest.raises(ProbeError, match=r"unknown group combine mode 'median'; use one of: mean, size"):
        evaluate(files, {}, progress=False, dataset_metrics=by_dataset, group_combine="median")


def test_size_weighting_of_em_is_the_pooled_rate(tmp_path: Path) -> None:
    a = write_preds(tmp_path / "a.jsonl", [("yes", "yes")] * 3 + [("no", "yes")])  # 3/4
    b = write_preds(tmp_path / "b.jsonl", [("no", "yes")])  # 0/1
    files = [PredictionFile("mini", "g", a, "a"), PredictionFile("mini", "g", b, "b")]
    scores, details = evaluate(files, {"g": ["em", "vqa"]}, progress=False, group_combine="size")
    assert scores["mini"]["g"] == pytest.approx(3 / 5)  # 3 hits in 5 predictions
    assert details["mini"]["g"]["vqa"] == pytest.approx(3 / 5)  # secondary metrics are combined the same way
    mean, _ = evaluate(files, {"g": ["em"]}, progress=False)
    assert mean["mini"]["g"] == pytest.approx((3 / 4 + 0) / 2)


def test_mixing_cider_with_fractions_warns(tmp_path: Path) -> None:
    a = write_preds(tmp_path / "a.jsonl", [("a dog", "a dog"), ("a cat", "two cats")])
    b = write_preds(tmp_path / "b.jsonl", [("yes", "yes")])
    files = [PredictionFile("mini", "g", a, "cap_val"), PredictionFile("b+mini", "g", b, "qa_val")]
    files += [PredictionFile("b+mini", "g", a, "cap_val"), PredictionFile("mini", "g", b, "qa_val")]
    with pytest.warns(ProbeWarning, match=r"task 'g' combines CIDEr-D .* cap_val \(cider\), qa_val \(em\)") as rec:
        evaluate(files, {}, progress=False, dataset_metrics={"cap_val": ["cider"], "qa_val": ["em"]})
    assert len([w for w in rec if issubclass(w.category, ProbeWarning)]) == 1  # once per task, not per run


def test_resolve_metrics_precedence() -> None:
    files = [PredictionFile("mini", "gen", Path("a"), "vis_val"), PredictionFile("mini", "gen", Path("b"), "m30k_val")]
    files.append(PredictionFile("mini", "qa", Path("c"), "qa_val"))
    manifest_tasks = {"gen": ["em", "gleu"], "qa": ["em"]}
    manifest_datasets = {"vis_val": ["em"], "m30k_val": ["gleu"]}
    # no override: the manifest's
    assert resolve_metrics(files, manifest_tasks, manifest_datasets, {}) == (manifest_tasks, manifest_datasets)
    # a dataset override replaces that dataset's metric only
    tasks, datasets = resolve_metrics(files, manifest_tasks, manifest_datasets, {"m30k_val": ["bleu"]})
    assert datasets == {"vis_val": ["em"], "m30k_val": ["bleu"]} and tasks == manifest_tasks
    # a task override applies to all its datasets (the datasets' own metrics from the manifest are dropped) ...
    tasks, datasets = resolve_metrics(files, manifest_tasks, manifest_datasets, {"gen": ["rouge_l"]})
    assert tasks["gen"] == ["rouge_l"] and datasets == {}
    # ... unless a dataset override is given too
    tasks, datasets = resolve_metrics(
        files, manifest_tasks, manifest_datasets, {"gen": ["rouge_l"], "vis_val": ["em"]}
    )
    assert datasets == {"vis_val": ["em"]}
    with pytest.raises(ProbeError, match=r"--metric names \['vqa'\], neither a task nor a validation dataset"):
        resolve_metrics(files, manifest_tasks, manifest_datasets, {"vqa": ["em"]})
    with pytest.raises(ProbeError, match=r"^--metric m30k_val=gleu,blue: unknown metric 'blue'; .* 'bleu'\?$"):
        resolve_metrics(files, manifest_tasks, manifest_datasets, {"m30k_val": ["gleu", "blue"]})


def test_metrics_from_manifest(tmp_path: Path) -> None:
    info = {
        "vis_val": {"file_name": "v.json", "cotbal_metric": "em"},
        "m30k_val": {"file_name": "m.json", "cotbal_metric": "gleu"},
        "cap_val": {"file_name": "c.json", "cotbal_metric": "cider"},
        "cap2_val": {"file_name": "c2.json", "cotbal_metric": "bleu"},
    }
    (tmp_path / "dataset_info.json").write_text(json.dumps(info))
    manifest = {
        "dataset_dir": str(tmp_path),
        "tasks": {
            "gen": {"validation": ["vis_val", "m30k_val"], "metrics": ["em", "gleu"]},  # from dataset_info
            "cap": {"validation": ["cap_val", "cap2_val"], "metrics": ["rouge_l"]},  # chosen with plan --metric
        },
    }
    tasks, datasets = metrics_from_manifest(manifest)
    assert tasks == {"gen": ["em", "gleu"], "cap": ["rouge_l"]}
    assert datasets == {"vis_val": ["em"], "m30k_val": ["gleu"]}
    (tmp_path / "dataset_info.json").unlink()  # an older plan folder: task metrics only
    assert metrics_from_manifest(manifest) == (tasks, {})


def test_cotbal_eval_mixed_group_through_plan(tmp_path: Path, capsys) -> None:
    """`cotbal plan` takes a group's metrics from dataset_info; `cotbal eval` scores each dataset with its own."""
    from cotbal_plugin import cli
    from tests.probe.conftest import make_workspace, write_alpaca

    base = make_workspace(tmp_path, sizes={"vqa": 64, "cap": 64}, groups=True)
    data = tmp_path / "data"
    write_alpaca(data / "g2_val.jsonl", "g2", 20, as_array=False)
    info = json.loads((data / "dataset_info.json").read_text())
    info["grp_val"]["cotbal_metric"] = "em"
    info["g2_val"] = {"file_name": "g2_val.jsonl", "cotbal_metric": "rouge_l"}
    (data / "dataset_info.json").write_text(json.dumps(info))
    plan_dir = tmp_path / "plan"
    argv = ["plan", "--base-yaml", base, "--out", plan_dir, "--tasks", "vqa,cap,grp", "--no-progress",
            "--val", "vqa=vqa_val", "--val", "cap=cap_val", "--val", "grp=grp_val,g2_val",
            "--metric", "vqa=em", "--metric", "cap=em", "--mini-fraction", "1/4"]  # fmt: skip
    assert cli.main([str(a) for a in argv]) == 0, capsys.readouterr().err
    manifest = json.loads((plan_dir / "manifest.json").read_text())
    assert manifest["tasks"]["grp"]["metrics"] == ["em", "rouge_l"]
    for p in manifest["predictions"]:  # predictions written by hand instead of running the jobs
        if p["dataset"] == "g2_val":  # rouge_l: LCS 2 of 3 tokens both ways → F = 2/3
            rows = [("a b c", "a b d")] * 2
        else:
            rows = [("yes", "yes"), ("no", "yes"), ("yes", "yes"), ("yes", "yes")]  # em 3/4
        write_preds(Path(p["file"]), rows)
    out = tmp_path / "scores.json"
    code = cli.main(["eval", "--manifest", str(plan_dir / "manifest.json"), "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    scores = json.loads(out.read_text())
    assert scores["mini"]["grp"] == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert scores["mini"]["vqa"] == pytest.approx(3 / 4)
    details = json.loads((tmp_path / "scores.details.json").read_text())
    per_file = {f["dataset"]: f["metric"] for f in details["mini"]["grp"]["per_file"]}
    assert per_file == {"grp_val": "em", "g2_val": "rouge_l"}
    # --group-combine size, and a dataset-level override on the command line
    code = cli.main(["eval", "--manifest", str(plan_dir / "manifest.json"), "--out", str(out), "--no-progress",
                     "--group-combine", "size", "--metric", "g2_val=em"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert json.loads(out.read_text())["mini"]["grp"] == pytest.approx((3 + 0) / 6)  # "a b c" != "a b d"
