"""Tests of ``cotbal convert`` (library and CLI shell) on small LLaVA-style files with real PNG images."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from PIL import Image

from cotbal_plugin.commands import convert as cmd
from cotbal_plugin.convert import (
    INSTRUCTION_BBOX,
    INSTRUCTION_SHORT_ANSWER,
    ConvertError,
    benchmark_dataset_info,
    convert_files,
    parse_annotation_name,
)


def _png(path: Path, colour: tuple[int, int, int] = (255, 0, 0)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def _rec(rid: str, task: str | None, image: str | None, *pairs: tuple[str, str]) -> dict:
    turns = []
    for k, (q, a) in enumerate(pairs):
        turns.append({"from": "human", "value": (f"<image>\n{q}" if image and k == 0 else q)})
        turns.append({"from": "gpt", "value": a})
    rec: dict = {"id": rid, "conversations": turns}
    if image is not None:
        rec["image"] = image
    if task is not None:
        rec["task"] = task
    return rec


@pytest.fixture
def data(tmp_path: Path) -> Path:
    for name in ("coco/a.png", "coco/b.png", "chart/c.png"):
        _png(tmp_path / "images" / name)
    return tmp_path


def _write(path: Path, records: list) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def _load(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_parse_annotation_name() -> None:
    assert parse_annotation_name("VQAv2_train-83k.json") == ("VQAv2", "", "train")
    assert parse_annotation_name("RefCOCO-caption-mini_train-1.3k.json") == ("RefCOCO-caption", "-mini", "train")
    assert parse_annotation_name("GQA-plus-mini_val-20k.json") == ("GQA", "-plus-mini", "val")
    assert parse_annotation_name("ChartQA_test.json") == ("ChartQA", "", "test")
    assert parse_annotation_name("annotations.json") is None


def test_train_conversion_merges_splits_and_adds_instructions(data: Path) -> None:
    records = [_rec(f"v{i}", "VQAv2", "coco/a.png", (f"Q{i}?", f"A{i}")) for i in range(12)]
    records.insert(3, _rec("v-b", "VQAv2", "coco/b.png", ("Other?", "yes")))
    records.append(_rec("s1", "ShareGPT", None, ("hi", "hello"), ("more", "sure")))
    records.append(_rec("r1", "RefCOCO-bbox", "coco/b.png", ("the man", "[0.1, 0.2, 0.3, 0.4]")))
    src = _write(data / "academic_train-475k.json", records)
    out = data / "out"
    result = convert_files([src], out, image_folder=data / "images")

    assert set(result.files) == {"VQAv2_train", "ShareGPT_train", "RefCOCO-bbox_train"}
    vqa = _load(out / "VQAv2_train.json")
    # 12 turns on a.png -> segments of 10 + 2; b.png stays alone; images in order of first appearance.
    assert [len(s["conversations"]) // 2 for s in vqa] == [10, 2, 1]
    assert [s["id"] for s in vqa] == ["v0#0", "v0#1", "v-b"]
    assert vqa[0]["source_ids"] == vqa[1]["source_ids"] == [f"v{i}" for i in range(12)]
    assert [t["value"] for t in vqa[1]["conversations"][1::2]] == ["A10", "A11"]
    assert result.records["VQAv2_train"] == 13 and result.counts["VQAv2_train"] == 3
    total_turns = sum(len(s["conversations"]) // 2 for s in vqa)
    assert total_turns == 13  # nothing dropped
    for sample in vqa:
        humans = [t["value"] for t in sample["conversations"] if t["from"] == "human"]
        assert humans[0].startswith("<image>\n")
        assert sum(h.count("<image>") for h in humans) == len(sample["images"]) == 1
        assert all(h.endswith("\n" + INSTRUCTION_SHORT_ANSWER) for h in humans)
    assert vqa[0]["conversations"][0]["value"] == f"<image>\nQ0?\n{INSTRUCTION_SHORT_ANSWER}"
    # images are relative to the output folder and resolve to the real file
    assert vqa[0]["images"] == ["../images/coco/a.png"]
    assert (out / vqa[0]["images"][0]).resolve() == (data / "images/coco/a.png").resolve()

    share = _load(out / "ShareGPT_train.json")
    assert share == [
        {
            "id": "s1",
            "conversations": [
                {"from": "human", "value": "hi"},
                {"from": "gpt", "value": "hello"},
                {"from": "human", "value": "more"},
                {"from": "gpt", "value": "sure"},
            ],
            "images": [],
        }
    ]
    ref = _load(out / "RefCOCO-bbox_train.json")
    assert ref[0]["conversations"][0]["value"] == f"<image>\nthe man\n{INSTRUCTION_BBOX}"

    info = _load(out / "dataset_info.json")
    assert info["VQAv2_train"]["file_name"] == "VQAv2_train.json"
    assert info["VQAv2_train"]["cotbal_metric"] == "em"
    assert info["RefCOCO-bbox_train"]["cotbal_metric"] == "iou_acc"
    assert "cotbal_metric" not in info["ShareGPT_train"]
    manifest = _load(out / "cotbal_convert.json")
    assert manifest["datasets"]["VQAv2_train"] == {"file": "VQAv2_train.json", "records": 13, "conversations": 3}


def test_eval_split_is_not_merged_and_instruction_is_idempotent(data: Path) -> None:
    q = f"What is it?\n{INSTRUCTION_SHORT_ANSWER}"
    records = [_rec("g1", "GQA", "coco/a.png", (q, "cat")), _rec("g2", "GQA", "coco/a.png", ("Color?", "red"))]
    src = _write(data / "GQA_val-20k.json", records)
    convert_files([src], data / "out", image_folder=data / "images")
    val = _load(data / "out" / "GQA_val.json")
    assert [s["id"] for s in val] == ["g1", "g2"]
    assert val[0]["conversations"][0]["value"] == f"<image>\n{q}"  # not appended twice
    assert val[1]["conversations"][0]["value"].count(INSTRUCTION_SHORT_ANSWER) == 1
    entry = _load(data / "out" / "dataset_info.json")["GQA_val"]
    assert entry["cotbal_metric"] == "em" and entry["cotbal_task"] == "GQA" and entry["cotbal_split"] == "val"


def test_options_no_merge_no_instruction_absolute_and_variant(data: Path) -> None:
    records = [_rec(f"c{i}", "ChartQA", "chart/c.png", (f"Q{i}", "1")) for i in range(3)]
    src = _write(data / "ChartQA-mini_train-0.5k.json", records)
    result = convert_files(
        [src], data / "out", image_folder=data / "images", merge=False, add_instruction=False, absolute_paths=True
    )
    assert list(result.files) == ["ChartQA-mini_train"]
    rows = _load(data / "out" / "ChartQA-mini_train.json")
    assert len(rows) == 3
    assert rows[0]["conversations"][0]["value"] == "<image>\nQ0"
    assert rows[0]["images"] == [str((data / "images/chart/c.png").resolve())]
    info = _load(data / "out" / "dataset_info.json")
    assert info["ChartQA-mini_train"]["cotbal_task"] == "ChartQA"  # mini subset balances as the same task


def test_max_turns_zero_keeps_merged_conversation(data: Path) -> None:
    records = [_rec(f"v{i}", "OCRVQA", "coco/a.png", (f"Q{i}", "x")) for i in range(15)]
    src = _write(data / "OCRVQA_train.json", records)
    convert_files([src], data / "out", image_folder=data / "images", max_turns=0)
    rows = _load(data / "out" / "OCRVQA_train.json")
    assert len(rows) == 1 and len(rows[0]["conversations"]) == 30


def test_large_benchmark_groups(data: Path) -> None:
    records = [_rec("m1", "gqa", "coco/a.png", ("Q", "A")), _rec("m2", "Multi30k", "coco/b.png", ("Q", "A"))]
    src = _write(data / "m3it_train.json", records)
    result = convert_files([src], data / "out", image_folder=data / "images", benchmark="large")
    info = result.dataset_info
    assert info["M3IT-GQA_train"]["cotbal_task"] == "vqa"
    assert info["M3IT-Multi30k_train"]["cotbal_task"] == "generation"
    assert info["M3IT-Multi30k_train"]["cotbal_metric"] == "gleu"


@pytest.mark.parametrize(
    ("records", "needles"),
    [
        ([_rec("x1", "VQAv2", "coco/missing.png", ("Q", "A"))], ["coco/missing.png", "'x1'"]),
        ([_rec("x2", None, "coco/a.png", ("Q", "A"))], ["'x2'", "no 'task'", "--task"]),
        ([_rec("x3", "TextVQA", "coco/a.png", ("Q", "A"))], ["'TextVQA'", "VQAv2", "RefCOCO-bbox", "ShareGPT"]),
        ([_rec("x4", "Multi30k", "coco/a.png", ("Q", "A"))], ["'Multi30k'", "--benchmark large"]),
        (
            [{"id": "x5", "task": "GQA", "image": "coco/a.png", "conversations": [{"from": "gpt", "value": "A"}]}],
            ["'x5'", "human/gpt"],
        ),
        ([_rec("x6", "ShareGPT", "coco/a.png", ("Q", "A"))], ["'x6'", "text-only"]),
    ],
)
def test_bad_input_errors_name_the_culprit(data: Path, records: list, needles: list[str]) -> None:
    src = _write(data / "bad_train.json", records)
    with pytest.raises(ConvertError) as info:
        convert_files([src], data / "out", image_folder=data / "images")
    for needle in needles:
        assert needle in str(info.value)
    assert not (data / "out").exists()  # nothing written on error


def test_all_errors_are_reported_not_only_the_first(data: Path) -> None:
    records = [_rec(f"m{i}", "VQAv2", f"coco/none{i}.png", ("Q", "A")) for i in range(12)]
    src = _write(data / "x_train.json", records)
    with pytest.raises(ConvertError, match=r"(?s)12 problem\(s\).*and 2 more"):
        convert_files([src], data / "out", image_folder=data / "images")


def test_task_option_fills_missing_task_and_split_required(data: Path) -> None:
    src = _write(data / "annotations.json", [_rec("t1", None, "coco/a.png", ("Q", "A"))])
    with pytest.raises(ConvertError, match="cannot tell the split"):
        convert_files([src], data / "out", image_folder=data / "images", task="VQAv2")
    result = convert_files([src], data / "out", image_folder=data / "images", task="VQAv2", split="test")
    assert list(result.files) == ["VQAv2_test"]


def test_refuses_other_runs_output_unless_overwrite(data: Path) -> None:
    out = data / "out"
    first = _write(data / "VQAv2_train.json", [_rec("a", "VQAv2", "coco/a.png", ("Q", "A"))])
    second = _write(data / "GQA_val.json", [_rec("b", "GQA", "coco/b.png", ("Q", "A"))])
    convert_files([first], out, image_folder=data / "images")
    with pytest.raises(ConvertError, match="another run.*--overwrite") as info:
        convert_files([second], out, image_folder=data / "images")
    assert "cotbal_convert.json" in str(info.value)
    assert not (out / "GQA_val.json").exists()
    convert_files([second], out, image_folder=data / "images", overwrite=True)
    info_json = _load(out / "dataset_info.json")
    assert {"VQAv2_train", "GQA_val"} <= set(info_json)  # entries merged
    assert set(_load(out / "cotbal_convert.json")["datasets"]) == {"VQAv2_train", "GQA_val"}


def _args(**kw: object) -> argparse.Namespace:
    from cotbal_plugin.commands._common import add_common_options

    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    add_common_options(parser)
    argv = [str(x) for x in kw.pop("argv")]  # type: ignore[union-attr]
    return parser.parse_args(argv)


def test_cli_success_and_error_exit_codes(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd.NAME == "convert" and cmd.HELP
    src = _write(data / "VQAv2_train-1k.json", [_rec("a", "VQAv2", "coco/a.png", ("Q", "A"))])
    argv = [src, "--out", data / "out", "--image-folder", data / "images"]
    assert cmd.run(_args(argv=argv)) == 0
    assert "VQAv2_train" in capsys.readouterr().out
    assert cmd.run(_args(argv=argv)) == 2  # second run into the same folder
    err = capsys.readouterr().err
    assert err.startswith("cotbal convert: error:") and "--overwrite" in err
    assert cmd.run(_args(argv=[*argv, "--overwrite", "--variant", "mini"])) == 0
    assert (data / "out" / "VQAv2-mini_train.json").is_file()
    bad = _write(data / "Bad_train.json", [_rec("z", "VQAv2", "nope.png", ("Q", "A"))])
    assert cmd.run(_args(argv=[bad, "--out", data / "out2", "--image-folder", data / "images"])) == 2
    assert "nope.png" in capsys.readouterr().err


def test_shipped_dataset_info_matches_the_task_table() -> None:
    shipped = json.loads((Path(__file__).parents[1] / "dataset_info" / "dataset_info.json").read_text())
    assert shipped == benchmark_dataset_info()


# ------------------------------------------------------------------------------------------------ generic mode


def _mix665k_like(data: Path) -> Path:
    """Records shaped like LLaVA's llava_v1_5_mix665k.json: no task field; the source shows in the image path,
    the id or the question."""
    for name in ("ocr_vqa/images/1.jpg", "gqa/images/2.jpg", "coco/train2017/3.jpg", "coco/train2017/4.jpg"):
        _png(data / "llava" / name)
    records = [
        _rec("o1", None, "ocr_vqa/images/1.jpg", ("Who wrote this book?", "Jane Doe")),
        _rec("g1", None, "gqa/images/2.jpg", ("Is the sky blue?\nAnswer the question using a single word or phrase.",
                                             "Yes")),
        _rec("v1", None, "coco/train2017/3.jpg", ("What is this?\nAnswer the question using a single word or phrase.",
                                                  "cat")),
        _rec("c1", None, "coco/train2017/4.jpg", ("Describe the scene in detail.", "A cat sits on a mat.")),
        _rec("s1", None, None, ("Write a haiku.", "Snow on the pine...")),
    ]  # fmt: skip
    return _write(data / "llava_v1_5_mix665k.json", records)


RULES = ["ocrvqa=image:^ocr_vqa/", "gqa=image:^gqa/", "vqa=question:single word or phrase", "sharegpt=image:^$"]


def test_generic_mode_splits_by_rules(data: Path) -> None:
    src = _mix665k_like(data)
    result = convert_files([src], data / "out", image_folder=data / "llava", benchmark="generic", split="train",
                           rules=RULES, task="llava_instruct", metrics={"vqa": "em"})  # fmt: skip
    assert set(result.files) == {"ocrvqa_train", "gqa_train", "vqa_train", "sharegpt_train", "llava_instruct_train"}
    ids = {name: [r["id"] for r in _load(path)] for name, path in result.files.items()}
    # first matching rule wins: g1 matches gqa (image) before vqa (question)
    assert ids == {"ocrvqa_train": ["o1"], "gqa_train": ["g1"], "vqa_train": ["v1"], "sharegpt_train": ["s1"],
                   "llava_instruct_train": ["c1"]}  # fmt: skip
    info = _load(data / "out" / "dataset_info.json")
    assert info["vqa_train"]["cotbal_task"] == "vqa" and info["vqa_train"]["cotbal_metric"] == "em"
    assert "cotbal_metric" not in info["gqa_train"]
    # generic mode appends no instruction and merges nothing
    ocr = _load(result.files["ocrvqa_train"])[0]
    assert ocr["conversations"][0]["value"] == "<image>\nWho wrote this book?"
    assert _load(result.files["sharegpt_train"])[0]["images"] == []
    manifest = _load(data / "out" / "cotbal_convert.json")
    assert manifest["options"]["task_rules"] == RULES and manifest["skipped"] == 0


def test_generic_mode_task_field_and_fixed_name(data: Path) -> None:
    records = [_rec("a", None, "coco/a.png", ("Q", "A")), _rec("b", None, "coco/b.png", ("Q", "A"))]
    records[0]["source"] = "my_task"
    src = _write(data / "mine_val.json", records)
    result = convert_files([src], data / "out", image_folder=data / "images", benchmark="generic",
                           task_field="source", task="other")  # fmt: skip
    assert set(result.files) == {"my_task_val", "other_val"}
    assert result.dataset_info["my_task_val"]["cotbal_split"] == "val"  # an eval entry: plan never trains on it


def test_generic_mode_errors(data: Path) -> None:
    src = _mix665k_like(data)
    with pytest.raises(ConvertError, match=r"id 'c1': no 'task' field and no --task-rule matched"):
        convert_files([src], data / "out", image_folder=data / "llava", benchmark="generic", split="train",
                      rules=RULES)  # fmt: skip
    assert not (data / "out").exists()
    with pytest.raises(ConvertError, match=r"--task-rule 'x=path:a': expected TASK=KIND:REGEX"):
        convert_files([src], data / "out", benchmark="generic", split="train", rules=["x=path:a"])
    with pytest.raises(ConvertError, match=r"'\(' is not a valid regular expression"):
        convert_files([src], data / "out", benchmark="generic", split="train", rules=["x=id:("])
    with pytest.raises(ConvertError, match=r"task name 'a/b' cannot name a dataset file"):
        convert_files([src], data / "out", benchmark="generic", split="train", task="a/b")
    with pytest.raises(ConvertError, match=r"unknown --task-rule task 'ocrvqa'.*any name with --benchmark generic"):
        convert_files([src], data / "out", split="train", rules=RULES)
    with pytest.raises(ConvertError, match=r"--metric vqa=acc: unknown metric 'acc'"):
        convert_files([src], data / "out", benchmark="generic", split="train", task="t", metrics={"vqa": "acc"})


def test_skip_invalid_lists_every_record_left_out(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _mix665k_like(data)
    records = _load(src)
    records.append(_rec("bad1", None, "coco/none.jpg", ("Q", "A")))
    records.append({"id": "bad2", "conversations": [{"from": "gpt", "value": "A"}]})
    _write(src, records)
    argv = [src, "--out", data / "out", "--image-folder", data / "llava", "--benchmark", "generic", "--split",
            "train", "--task", "other", "--skip-invalid", "--quiet"]  # fmt: skip
    assert cmd.run(_args(argv=argv)) == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # --quiet: no status lines, but the warning below is never dropped
    warning = [line for line in captured.err.splitlines() if "left out" in line]
    assert len(warning) == 1 and warning[0].startswith("cotbal convert: warning: 2 invalid record(s) left out")
    skipped = [
        json.loads(x)["problem"] for x in (data / "out" / "cotbal_convert_skipped.jsonl").read_text().splitlines()
    ]
    assert len(skipped) == 2 and "'bad1'" in skipped[0] and "'bad2'" in skipped[1]
    assert _load(data / "out" / "cotbal_convert.json")["skipped"] == 2
    assert sum(len(_load(p)) for p in (data / "out").glob("*_train.json")) == 5
