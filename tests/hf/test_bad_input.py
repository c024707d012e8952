"""User mistakes with the plain-HF front end: one clear error naming the culprit (option, task, row) and the fix."""

from __future__ import annotations

import json
import warnings

import pytest

from cotbal_plugin.weights_file import CotbalConfigError

from ._common import WEIGHTS, build


def rows_with(ws, **changes):
    """The workspace rows with ``changes`` = {row index: {field: value or None to delete}}."""
    rows = [dict(r) for r in ws["rows"]]
    for i, change in changes.items():
        for key, value in change.items():
            if value is None:
                rows[int(i)].pop(key)
            else:
                rows[int(i)][key] = value
    return rows


def dataset(rows):
    import datasets

    return datasets.Dataset.from_list(rows)


@pytest.mark.parametrize(
    "kw, pattern",
    [
        ({}, r"needs `cotbal_weights"),
        ({"cotbal_weighting": "dwaa"}, r"unknown method 'dwaa' \(did you mean 'dwa'\?\)"),
        (
            {"cotbal_weigths": WEIGHTS},
            r"unknown keyword argument 'cotbal_weigths' \(did you mean 'cotbal_weights'\?\)",
        ),
        ({"cotbal_weights": {"short": 1.0, "long": 0.0}}, r"weight of task 'long' is 0.0; weights must be finite"),
        ({"cotbal_weights": WEIGHTS, "cotbal_weighting": "ew"}, r"cotbal_weighting: ew ignores static weights"),
        (
            {"cotbal_weights": WEIGHTS, "cotbal_dwa_window": 3},
            r"cotbal_dwa_window only applies to cotbal_weighting: dwa",
        ),
        ({"cotbal_weighting": "ew", "cotbal_tla_variant": "micro_batch"}, r"cotbal_tla_variant only applies to"),
        ({"cotbal_weights": WEIGHTS, "cotbal_ce_chunk_tokens": 0}, r"cotbal_ce_chunk_tokens must be an integer >= 1"),
        ({"cotbal_weights": WEIGHTS, "cotbal_task_key": ""}, r"cotbal_task_key must name the per-example field"),
        ({"cotbal_weights": WEIGHTS, "cotbal_fused_ce": "yes"}, r"cotbal_fused_ce must be True or False"),
        ({"cotbal_weighting": "ew", "cotbal_tasks": "short"}, r"cotbal_tasks must be a list of task names"),
        ({"cotbal_weighting": "ew", "cotbal_tasks": ["short", "short"]}, r"cotbal_tasks: duplicate task names"),
        ({"cotbal_weights": WEIGHTS, "label_smoothing_factor": 0.1}, r"label_smoothing_factor: 0.1 is not supported"),
    ],
)
def test_bad_options(ws, kw, pattern):
    with pytest.raises(CotbalConfigError, match=pattern):
        build(ws, **kw)


def test_missing_weights_file(ws, tmp_path):
    with pytest.raises(CotbalConfigError, match=r"cotbal_weights: file '.*nowhere.json' does not exist"):
        build(ws, cotbal_weights=str(tmp_path / "nowhere.json"))


def test_weights_file_is_read(ws, tmp_path):
    path = tmp_path / "weights.json"
    path.write_text(json.dumps({"weights": WEIGHTS, "method": "CoTBal"}))
    trainer = build(ws, cotbal_weights=str(path))
    assert trainer.cotbal.weights == WEIGHTS and trainer.cotbal.weights_source == str(path)


def test_task_without_weight_names_the_task_and_row(ws):
    with pytest.raises(CotbalConfigError) as err:
        build(ws, cotbal_weights={"short": 1.0})
    message = str(err.value)
    assert "has no weight for task(s) ['long'] (first: row 1 of the training dataset)" in message
    assert "Tasks with a weight: ['short']" in message


def test_weights_for_untrained_tasks_warn(ws):
    with pytest.warns(UserWarning, match=r"gives weights for untrained tasks \['vqa'\] \(ignored\)"):
        trainer = build(ws, cotbal_weights={**WEIGHTS, "vqa": 1.0})
    assert trainer.cotbal_tasks == ["short", "long"]


def test_task_column_missing(ws):
    rows = [{k: v for k, v in r.items() if k != "task"} for r in ws["rows"]]
    with pytest.raises(CotbalConfigError, match=r"the training dataset has no 'task' column \(columns: \["):
        build(ws, rows=dataset(rows), cotbal_weights=WEIGHTS)


def test_other_task_key(ws):
    rows = [{("kind" if k == "task" else k): v for k, v in r.items()} for r in ws["rows"]]
    trainer = build(ws, rows=dataset(rows), cotbal_weights=WEIGHTS, cotbal_task_key="kind")
    batch = next(iter(trainer.get_train_dataloader()))
    assert "kind" not in batch and int(batch["labels"].max()) >= 1 << 24


def test_empty_task_names_the_row(ws):
    rows = rows_with(ws, **{"3": {"task": ""}})
    rows[5]["task"] = None
    with pytest.raises(CotbalConfigError, match=r"row 5 of the training dataset has no task \(1 row\(s\) are empty\)"):
        build(ws, rows=dataset(rows), cotbal_weights=WEIGHTS)


def test_unknown_task_in_named_list_names_the_row(ws):
    with pytest.raises(CotbalConfigError, match=r"task 'long' \(row 1 of the training dataset\) is not a known task"):
        build(ws, cotbal_weighting="ew", cotbal_tasks=["short"])


def test_integer_task_column_needs_the_named_list(ws):
    rows = [dict(r, task=int(r["task"] == "long")) for r in ws["rows"]]
    with pytest.raises(CotbalConfigError, match=r"row 0 of the training dataset has task 0, an integer"):
        build(ws, rows=dataset(rows), cotbal_weighting="ew")
    trainer = build(ws, rows=dataset(rows), cotbal_weights=WEIGHTS, cotbal_tasks=["short", "long"])
    batch = next(iter(trainer.get_train_dataloader()))
    assert (batch["labels"][1] >= 2 << 24).any()  # row 1 is task "long" (id 1): labels + 2·2^24


def test_dynamic_weighting_on_an_opaque_dataset_needs_the_task_list(ws):
    with pytest.raises(
        CotbalConfigError, match=r"cotbal_weighting: ew needs the list of training tasks, .* \(a list\)"
    ):
        build(ws, rows=list(ws["rows"]), cotbal_weighting="ew")


def test_opaque_dataset_unknown_task_fails_in_the_collator(ws):
    rows = rows_with(ws, **{"2": {"task": "vqa"}})
    trainer = build(ws, rows=rows, cotbal_weighting="ew", cotbal_tasks=["short", "long"])
    with pytest.raises(CotbalConfigError, match=r"example 2 of the batch has task 'vqa', which is not a known task"):
        next(iter(trainer.get_train_dataloader()))


def test_eval_tasks_must_not_be_training_tasks(ws):
    with pytest.raises(CotbalConfigError, match=r"cotbal_eval_tasks: \['long'\] are training tasks"):
        build(ws, cotbal_weights=WEIGHTS, cotbal_eval_tasks=["long"])


def test_compute_loss_func_is_refused(ws):
    with pytest.raises(CotbalConfigError, match="compute_loss_func cannot be combined with cotbal_plugin"):
        build(ws, cotbal_weights=WEIGHTS, compute_loss_func=lambda *a, **k: 0)


def test_encoder_decoder_models_are_refused(ws):
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=64, d_model=8, d_kv=4, d_ff=16, num_layers=1, num_heads=2, decoder_start_token_id=0)
    with pytest.raises(CotbalConfigError, match=r"decoder-only .* T5ForConditionalGeneration is an encoder-decoder"):
        build(ws, model=T5ForConditionalGeneration(config), cotbal_weights=WEIGHTS)


def test_make_cotbal_trainer_checks_its_argument_and_warns_about_bypassed_overrides():
    from transformers import Trainer

    from cotbal_plugin.hf import CotbalTrainer, make_cotbal_trainer

    with pytest.raises(TypeError, match="needs a transformers.Trainer subclass"):
        make_cotbal_trainer(dict)

    class MyTrainer(Trainer):
        def compute_loss(self, *args, **kwargs):  # pragma: no cover - bypassed
            raise AssertionError

    with pytest.warns(UserWarning, match=r"MyTrainer.compute_loss \(module .*\) is bypassed"):
        cls = make_cotbal_trainer(MyTrainer)
    assert cls.__name__ == "CotbalMyTrainer" and issubclass(cls, MyTrainer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert make_cotbal_trainer(MyTrainer) is cls  # cached: same class, no second warning
        assert make_cotbal_trainer(Trainer).__mro__[1:3] == CotbalTrainer.__mro__[1:3]
        assert make_cotbal_trainer(CotbalTrainer) is CotbalTrainer


def test_eval_only_task_in_training_data(ws):
    rows = rows_with(ws, **{"2": {"task": "third"}})
    with pytest.raises(CotbalConfigError, match=r"task 'third' \(row 2 of the training dataset\) is not a known task"):
        build(
            ws, rows=dataset(rows), cotbal_weighting="ew", cotbal_tasks=["short", "long"], cotbal_eval_tasks=["third"]
        )
    trainer = build(ws, rows=rows, cotbal_weighting="ew", cotbal_tasks=["short", "long"], cotbal_eval_tasks=["third"])
    with pytest.raises(CotbalConfigError, match=r"example 2 of the batch has task 'third', an evaluation-only task"):
        next(iter(trainer.get_train_dataloader()))
    assert trainer.data_collator([dict(r) for r in rows[:3]])["labels"].shape[0] == 3  # evaluation batches take it


def test_a_collator_assigned_later_is_wrapped_too(ws):
    from transformers import DataCollatorForSeq2Seq

    from cotbal_plugin.hf import TaskLabelCollator

    trainer = build(ws, cotbal_weights=WEIGHTS)
    inner = DataCollatorForSeq2Seq(ws["tokenizer"], label_pad_token_id=-100, pad_to_multiple_of=8)
    trainer.data_collator = inner
    assert isinstance(trainer.data_collator, TaskLabelCollator) and trainer.data_collator.collator is inner
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["labels"].shape[1] % 8 == 0 and int(batch["labels"].max()) >= 1 << 24


def test_batches_that_bypass_the_collator_are_refused_with_the_fix(ws):
    from torch.utils.data import DataLoader
    from transformers import DataCollatorForSeq2Seq

    trainer = build(ws, cotbal_weights=WEIGHTS)
    plain = [{k: v for k, v in r.items() if k != "task"} for r in ws["rows"]]
    collate = DataCollatorForSeq2Seq(ws["tokenizer"], label_pad_token_id=-100)
    trainer.get_train_dataloader = lambda: DataLoader(plain, batch_size=4, collate_fn=collate)
    with pytest.raises(CotbalConfigError, match=r"carry no task id\. The batch did not pass through the trainer's"):
        trainer.train()
