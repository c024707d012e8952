"""Task ids survive LLaMA-Factory's data pipeline: converter, merge, preprocessing, packing, collator."""

from __future__ import annotations

import json

import pytest
import torch

from cotbal_plugin.llamafactory import state
from cotbal_plugin.task_labels import IGNORE_INDEX, decode_label_list
from cotbal_plugin.testing.workspace import sft_config

from ._inproc import load_data


def _answer_tasks(ws) -> dict[str, set[str]]:
    """answer text → tasks whose samples have that answer (read from the source files, not the pipeline)."""
    out: dict[str, set[str]] = {}
    for task in ("short", "long"):
        for s in json.loads((ws / "data" / f"{task}.json").read_text()):
            out.setdefault(s["output"].strip(), set()).add(task)
    return out


def _spans(labels: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs of supervised positions."""
    spans, start = [], None
    for i, y in enumerate(labels + [IGNORE_INDEX]):
        if y != IGNORE_INDEX and start is None:
            start = i
        elif y == IGNORE_INDEX and start is not None:
            spans.append((start, i))
            start = None
    return spans


def _check_rows(rows: list[list[int]], tokenizer, ws) -> set[int]:
    """Every supervised span decodes to an answer of the task its ids name; returns tasks-per-row counts."""
    answers = _answer_tasks(ws)
    tasks = state.active().tasks
    per_row = set()
    for row in rows:
        plain, ids = decode_label_list(row)
        row_tasks = set()
        for a, b in _spans(plain):
            span_ids = set(ids[a:b])
            assert len(span_ids) == 1, f"one answer span carries several task ids: {span_ids}"
            text = tokenizer.decode(plain[a:b], skip_special_tokens=True).strip()
            assert text in answers, f"span {text!r} is not an answer of the source data"
            assert tasks[span_ids.pop()] in answers[text]
            row_tasks.add(ids[a])
        per_row.add(len(row_tasks))
    return per_row


def _config(ws, **kw):
    return sft_config(
        ws / "model",
        ws / "data",
        ws / "runs" / "unused",
        dataset="short,long",
        loss="cotbal",
        cotbal_weights=str(ws / "weights.json"),
        **kw,
    )


@pytest.mark.parametrize("mix", ["concat", "interleave_under", "interleave_over"])
def test_plain_rows_carry_their_task(text_workspace, mix):
    module, tok, _ = load_data(_config(text_workspace, mix_strategy=mix))
    rows = [r["labels"] for r in module["train_dataset"]]
    assert state.active().tasks == ["short", "long"]
    assert _check_rows(rows, tok["tokenizer"], text_workspace) == {1}


@pytest.mark.parametrize("neat", [False, True])
def test_packed_rows_mix_tasks_and_ids_follow_tokens(text_workspace, neat):
    from llamafactory.data import SFTDataCollatorWith4DAttentionMask

    cfg = _config(text_workspace, packing=True, neat_packing=neat, cutoff_len=96, mix_strategy="interleave_under")
    module, tok, template = load_data(cfg)
    rows = [r["labels"] for r in module["train_dataset"]]
    counts = _check_rows(rows, tok["tokenizer"], text_workspace)
    assert max(counts) >= 2, "packing should put both tasks in one row"

    collator = SFTDataCollatorWith4DAttentionMask(
        template=template,
        pad_to_multiple_of=8,
        label_pad_token_id=IGNORE_INDEX,
        neat_packing=neat,
        block_diag_attn=neat,
        compute_dtype=torch.float32,
        **tok,
    )
    features = [module["train_dataset"][i] for i in range(min(2, len(rows)))]
    batch = collator(features)
    assert "labels" in batch and batch["labels"].dtype == torch.long
    assert not any(k.startswith("task") or k.startswith("cotbal") for k in batch), "no extra key reaches the model"
    _check_rows(batch["labels"].tolist(), tok["tokenizer"], text_workspace)


@pytest.mark.parametrize("side", ["left", "right"])
def test_collator_padding_keeps_ids(text_workspace, side):
    from llamafactory.data import SFTDataCollatorWith4DAttentionMask

    module, tok, template = load_data(_config(text_workspace, mix_strategy="interleave_under"))
    tokenizer = tok["tokenizer"]
    tokenizer.padding_side = side
    collator = SFTDataCollatorWith4DAttentionMask(
        template=template, pad_to_multiple_of=8, label_pad_token_id=IGNORE_INDEX, compute_dtype=torch.float32, **tok
    )
    features = [module["train_dataset"][i] for i in range(4)]
    batch = collator(features)
    assert batch["labels"].shape[1] % 8 == 0
    assert _check_rows(batch["labels"].tolist(), tokenizer, text_workspace) == {1}
    for feat, row in zip(features, batch["labels"].tolist()):
        assert [y for y in row if y != IGNORE_INDEX] == [y for y in feat["labels"] if y != IGNORE_INDEX]


def test_task_key_column_and_groups(text_workspace, tmp_path):
    ws = text_workspace
    data = tmp_path / "data"
    data.mkdir()
    rows = json.loads((ws / "data" / "short.json").read_text()) + json.loads((ws / "data" / "long.json").read_text())
    for i, r in enumerate(rows):
        r["kind"] = "odd" if i % 2 else "even"
    (data / "mixed.json").write_text(json.dumps(rows))
    (data / "short.json").write_text((ws / "data" / "short.json").read_text())
    (data / "long.json").write_text((ws / "data" / "long.json").read_text())
    info = {
        "mixed": {"file_name": "mixed.json"},
        "short": {"file_name": "short.json", "cotbal_task": "group_a"},
        "long": {"file_name": "long.json", "cotbal_task": "group_a"},
    }
    (data / "dataset_info.json").write_text(json.dumps(info))
    base = dict(loss="cotbal", cotbal_weighting="ew", mix_strategy="concat")

    module, _, _ = load_data(
        sft_config(ws / "model", data, tmp_path / "o", dataset="mixed", cotbal_task_key="kind", **base)
    )
    assert state.active().tasks == ["even", "odd"]
    ids = [decode_label_list(r["labels"])[1] for r in module["train_dataset"]]
    assert [max(i) for i in ids] == [i % 2 for i in range(len(rows))]

    module, _, _ = load_data(sft_config(ws / "model", data, tmp_path / "o", dataset="short,long", **base))
    assert state.active().tasks == ["group_a"]
    assert {max(decode_label_list(r["labels"])[1]) for r in module["train_dataset"]} == {0}


def test_stock_pipeline_is_untouched(text_workspace):
    cfg = sft_config(
        text_workspace / "model", text_workspace / "data", text_workspace / "runs" / "x", dataset="short,long"
    )
    module, _, _ = load_data(cfg)
    assert state.active() is None
    labels = [y for r in module["train_dataset"] for y in r["labels"] if y != IGNORE_INDEX]
    assert labels and max(labels) < 1000
