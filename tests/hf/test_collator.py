"""``TaskLabelCollator``: the task field becomes task ids in the collated labels, with real HF and TRL collators
(padded either side, labels built from input_ids, padding-free), and one clear error for each bad input."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import torch

from cotbal_plugin.hf import TaskLabelCollator
from cotbal_plugin.task_labels import IGNORE_INDEX, decode_labels
from cotbal_plugin.weights_file import CotbalConfigError

TASKS = ["short", "long", "third"]


def features() -> list[dict[str, Any]]:
    """Three examples of different lengths and tasks; prompts masked."""
    return [
        {"input_ids": [1, 5, 6, 7, 8], "labels": [-100, -100, 6, 7, 8], "task": "long"},
        {"input_ids": [1, 9, 10], "labels": [-100, -100, 10], "task": "short"},
        {"input_ids": [1, 11, 12, 13], "labels": [-100, 11, 12, 13], "task": "third"},
    ]


@pytest.fixture(scope="module")
def tokenizer(text_workspace):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(text_workspace / "model")


def check_rows(encoded: torch.Tensor, plain: torch.Tensor, row_tasks: list[str]) -> None:
    """Decoding the wrapped batch gives the unwrapped collator's labels, and each row's valid labels its task."""
    labels, task_ids = decode_labels(encoded)
    assert torch.equal(labels, plain)
    for b, task in enumerate(row_tasks):
        valid = plain[b] != IGNORE_INDEX
        assert valid.any()
        assert (task_ids[b][valid] == TASKS.index(task)).all()
        assert (task_ids[b][~valid] == -1).all()


@pytest.mark.parametrize("side", ["right", "left"])
def test_padded_batches_get_one_task_per_row(tokenizer, side):
    from transformers import DataCollatorForSeq2Seq

    tokenizer.padding_side = side
    try:
        inner = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
        rows = features()
        plain = inner([{k: v for k, v in f.items() if k != "task"} for f in rows])
        batch = TaskLabelCollator(inner, "task", TASKS)(rows)
    finally:
        tokenizer.padding_side = "right"
    assert torch.equal(batch["input_ids"], plain["input_ids"])
    check_rows(batch["labels"], plain["labels"], ["long", "short", "third"])
    assert "task" not in batch
    assert all("task" in f for f in rows)  # the dataset's rows are not modified


def test_trl_completion_only_labels_are_built_then_encoded():
    """TRL's collator builds labels from input_ids and masks the prompt with completion_mask; encoding comes after."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    inner = DataCollatorForLanguageModeling(pad_token_id=0)
    rows = [
        {"input_ids": [1, 5, 6, 7], "completion_mask": [0, 0, 1, 1], "task": "short"},
        {"input_ids": [1, 8, 9, 10, 11], "completion_mask": [0, 1, 1, 1, 1], "task": "long"},
    ]
    plain = inner([{k: v for k, v in f.items() if k != "task"} for f in rows])
    batch = TaskLabelCollator(inner, "task", TASKS)(rows)
    check_rows(batch["labels"], plain["labels"], ["short", "long"])
    assert int((plain["labels"] != IGNORE_INDEX).sum()) == 6


def flat_tasks(encoded: torch.Tensor) -> list[int]:
    return decode_labels(encoded)[1][0].tolist()


def test_trl_padding_free_gets_one_task_per_token():
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    inner = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True, pad_to_multiple_of=8)
    rows = features()
    plain = inner([{k: v for k, v in f.items() if k != "task"} for f in rows])
    batch = TaskLabelCollator(inner, "task", TASKS)(rows)
    assert batch["labels"].shape == (1, 16) and "position_ids" in batch
    labels, _ = decode_labels(batch["labels"])
    assert torch.equal(labels, plain["labels"])
    # long: positions 0-4, short: 5-7, third: 8-11, padding: 12-15; ignored labels carry no task
    expected = [-1, -1, 1, 1, 1, -1, -1, 0, -1, 2, 2, 2, -1, -1, -1, -1]
    assert flat_tasks(batch["labels"]) == expected


def test_transformers_flattening_collator_gets_one_task_per_token():
    from transformers import DataCollatorWithFlattening

    rows = features()
    batch = TaskLabelCollator(DataCollatorWithFlattening(), "task", TASKS)(rows)
    assert batch["labels"].shape == (1, 12)
    assert flat_tasks(batch["labels"]) == [-1, -1, 1, 1, 1, -1, -1, 0, -1, 2, 2, 2]


def test_integer_tasks_index_the_named_list():
    def stack(fs):
        return {"labels": torch.tensor([f["labels"] for f in fs])}

    rows = [{"labels": [-100, 3, 4], "task_ids": torch.tensor(2)}, {"labels": [-100, 5, 6], "task_ids": 0}]
    batch = TaskLabelCollator(stack, "task_ids", TASKS, allow_index=True)(rows)
    assert decode_labels(batch["labels"])[1].tolist() == [[-1, 2, 2], [-1, 0, 0]]


def test_wrapper_pickles_and_exposes_the_inner_collator(tokenizer):
    from transformers import DataCollatorForSeq2Seq

    wrapper = TaskLabelCollator(DataCollatorForSeq2Seq(tokenizer), "task", TASKS)
    assert wrapper.tokenizer is tokenizer  # trainer code that inspects the collator still works
    clone = pickle.loads(pickle.dumps(wrapper))  # DataLoader workers started with spawn
    assert torch.equal(clone(features())["labels"], wrapper(features())["labels"])


def pad_stack(fs: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    width = max(len(f["labels"]) for f in fs)
    return {"labels": torch.tensor([f["labels"] + [-100] * (width - len(f["labels"])) for f in fs])}


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda fs: fs[1].pop("task"), r"example 1 of the batch has no 'task' field \(it has \['input_ids', 'labels'"),
        (lambda fs: fs[2].update(task="vqa"), r"example 2 of the batch has task 'vqa', which is not a known task"),
        (lambda fs: fs[0].update(task=1), r"example 0 of the batch has task 1, an integer; use task names"),
        (lambda fs: fs[0].update(task=None), r"example 0 of the batch has task None of type NoneType"),
        (lambda fs: fs[0].update(labels=[-100, 1 << 24, 5, 6, 7]), r"already carry task ids"),
        (lambda fs: fs[0].update(labels=[-100, -5, 5, 6, 7]), r"hold -5; labels must be token ids or -100"),
    ],
)
def test_bad_examples(mutate, pattern):
    rows = features()
    mutate(rows)
    with pytest.raises(CotbalConfigError, match=pattern):
        TaskLabelCollator(pad_stack, "task", TASKS, num_train_tasks=2)(rows)


def test_unknown_task_message_lists_training_and_eval_tasks():
    rows = features()
    rows[0]["task"] = "vqa"
    with pytest.raises(CotbalConfigError) as err:
        TaskLabelCollator(pad_stack, "task", TASKS, num_train_tasks=2)(rows)
    assert "training tasks: ['short', 'long']; evaluation-only tasks: ['third']" in str(err.value)


def test_integer_index_out_of_range():
    rows = features()
    rows[0]["task"] = 7
    with pytest.raises(CotbalConfigError, match=r"task index 7, outside cotbal_tasks \(0..2"):
        TaskLabelCollator(pad_stack, "task", TASKS, allow_index=True)(rows)


def test_collator_without_labels():
    with pytest.raises(CotbalConfigError, match="returned no `labels`"):
        TaskLabelCollator(lambda fs: {"input_ids": torch.zeros(3, 2)}, "task", TASKS)(features())


def test_collator_that_regroups_examples():
    def two_rows(fs):
        return {"labels": torch.ones(2, 4, dtype=torch.long)}

    with pytest.raises(CotbalConfigError, match="turned 3 examples into 2 rows"):
        TaskLabelCollator(two_rows, "task", TASKS)(features())


def test_flattened_batch_in_another_order_is_refused():
    def reversed_flat(fs):
        ids = [t for f in reversed(fs) for t in f["input_ids"]]
        pos = [p for f in reversed(fs) for p in range(len(f["input_ids"]))]
        return {"labels": torch.tensor([ids]), "position_ids": torch.tensor([pos])}

    with pytest.raises(CotbalConfigError, match="position_ids do not restart at 0"):
        TaskLabelCollator(reversed_flat, "task", TASKS)(features())


def test_flattened_batch_longer_than_its_examples_is_refused():
    def with_extra_tokens(fs):
        return {"labels": torch.tensor([[5] * 20])}

    with pytest.raises(CotbalConfigError, match="outside every example's tokens"):
        TaskLabelCollator(with_extra_tokens, "task", TASKS)(features())


def test_non_mapping_example():
    with pytest.raises(CotbalConfigError, match="example 0 of the batch is a list, not a mapping"):
        TaskLabelCollator(pad_stack, "task", TASKS)([[1, 2, 3]])
