"""The task-id data hook: every sample is tagged with its task, and every supervised token carries it in its label.

Flow through LLaMA-Factory's data pipeline (``llamafactory/data/loader.py``):

1. ``get_dataset_list`` → each ``DatasetAttr`` gets ``cotbal_task``: the dataset's ``cotbal_task`` entry in
   ``dataset_info.json`` (group-level balancing) or its name from ``dataset:``.
2. ``align_dataset`` drops every column but its own; the hook adds a ``_cotbal_task`` column (integer task id)
   to the aligned dataset (the constant task, or the values of the ``cotbal_task_key`` column read before
   alignment).
   Merging (concat and interleave) and ``val_size`` splits keep the column.
3. The SFT processors (plain and packed) encode each example's task into its labels
   (:mod:`cotbal_plugin.task_labels`), so packing, neat packing and the collator keep ids aligned per token.
4. ``tokenized_path``: the task vocabulary is saved beside the cache (``cotbal_tasks.json``) and required when
   the cache is loaded; a cache written without the plugin is refused.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from llamafactory.data.processor import PackedSupervisedDatasetProcessor, SupervisedDatasetProcessor

from ..task_labels import decode_label_list, encode_labels
from ..weights_file import CotbalConfigError
from . import state

TASK_COLUMN = "_cotbal_task"
TASKS_SIDECAR = "cotbal_tasks.json"


def read_dataset_info(dataset_dir: Any) -> dict[str, Any]:
    """The ``dataset_info.json`` mapping of ``dataset_dir`` ({} when unavailable: online datasets)."""
    if isinstance(dataset_dir, dict):
        return dataset_dir
    if not isinstance(dataset_dir, str) or dataset_dir == "ONLINE" or dataset_dir.startswith("REMOTE:"):
        return {}
    path = os.path.join(dataset_dir, "dataset_info.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return {}


def dataset_task(name: str, dataset_info: dict[str, Any]) -> str:
    """Task of dataset ``name``: its ``cotbal_task`` entry in dataset_info.json, else the dataset name."""
    entry = dataset_info.get(name) or {}
    task = entry.get("cotbal_task", name) if isinstance(entry, dict) else name
    if not isinstance(task, str) or not task.strip():
        raise CotbalConfigError(
            f"dataset_info.json: `cotbal_task` of dataset {name!r} must be a non-empty string (got {task!r})."
        )
    return task


def _is_eval_list(run: state.CotbalRun, dataset_names: list[str]) -> bool:
    """Whether LLaMA-Factory is loading the ``eval_dataset:`` list (it loads ``dataset:`` first, then that)."""
    data_args = run.data_args
    if data_args is None or not data_args.dataset:  # evaluation-only run: its datasets are the tasks
        return False
    names = list(dataset_names)
    return names == list(getattr(data_args, "eval_dataset", None) or []) and names != list(data_args.dataset or [])


def tag_dataset_list(dataset_names: list[str] | None, dataset_dir: Any, attrs: list[Any]) -> list[Any]:
    """Attach the task name to each ``DatasetAttr`` and register the tasks (in ``dataset:`` order).

    Only ``dataset:`` entries define training tasks. An ``eval_dataset:`` entry takes the training task its
    ``cotbal_task`` (or its name) names; any other becomes an evaluation-only task, scored with weight 1.
    """
    run = state.active()
    if run is None or not dataset_names:
        return attrs
    info = read_dataset_info(dataset_dir)
    is_eval = _is_eval_list(run, dataset_names)
    for name, attr in zip(dataset_names, attrs):
        attr.cotbal_dataset = name
        attr.cotbal_eval = is_eval
        if run.task_key is None:
            attr.cotbal_task = dataset_task(name, info)
            run.register_task(attr.cotbal_task, eval_only=is_eval)
        else:
            attr.cotbal_task = None
    return attrs


def add_task_column(original: Any, aligned: Any, dataset_attr: Any) -> Any:
    """Add the ``_cotbal_task`` column to an aligned dataset (``original`` is the dataset before alignment)."""
    run = state.active()
    if run is None:
        return aligned
    dataset_name = getattr(dataset_attr, "cotbal_dataset", getattr(dataset_attr, "dataset_name", "?"))
    is_streaming = not hasattr(aligned, "add_column")
    eval_only = bool(getattr(dataset_attr, "cotbal_eval", False))
    if run.task_key is None:
        task_id = run.register_task(getattr(dataset_attr, "cotbal_task", None) or dataset_name, eval_only=eval_only)
        if is_streaming:
            return aligned.map(lambda _: {TASK_COLUMN: task_id})
        return aligned.add_column(TASK_COLUMN, [task_id] * len(aligned))
    if is_streaming:
        raise CotbalConfigError(
            f"cotbal_task_key: {run.task_key!r} is not supported with `streaming: true` (dataset {dataset_name!r}); "
            "turn streaming off or map datasets to tasks with `cotbal_task` entries in dataset_info.json."
        )
    columns = list(original.column_names)
    if run.task_key not in columns:
        raise CotbalConfigError(
            f"cotbal_task_key: column {run.task_key!r} is absent from dataset {dataset_name!r} "
            f"(its columns: {columns}). Add the column to every sample, or remove cotbal_task_key to use "
            "dataset names as tasks."
        )
    values = original[run.task_key]
    bad = [i for i, v in enumerate(values) if not isinstance(v, str) or not v.strip()]
    if bad:
        raise CotbalConfigError(
            f"cotbal_task_key: {len(bad)} sample(s) of dataset {dataset_name!r} have no task in column "
            f"{run.task_key!r} (first at row {bad[0]}: {values[bad[0]]!r}); every sample needs a task name."
        )
    ids = {task: run.register_task(task, eval_only=eval_only) for task in sorted(set(values))}
    return aligned.add_column(TASK_COLUMN, [ids[v] for v in values])


class _TaskTaggingMixin:
    """Folds each example's task id into its labels; works for the plain and the packed SFT processors.

    ``preprocess_dataset`` copies the batch into a plain dict (so every row's prompt list is one stable object)
    and records ``id(prompt) → task id``; ``_encode_data_example`` (called by LLaMA-Factory once per kept
    example, with that prompt object) looks the id up and encodes the labels. Rows LLaMA-Factory drops are
    never looked up; a prompt that is not found raises instead of mis-tagging.
    """

    cotbal_task_to_id: dict[str, int]

    def preprocess_dataset(self, examples: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if TASK_COLUMN not in examples:
            raise CotbalConfigError(
                "loss: cotbal: a dataset reached preprocessing without task ids (column `_cotbal_task`); "
                "was it loaded by a path the plugin does not hook?"
            )
        batch = {key: examples[key] for key in examples.keys()}
        lookup: dict[int, int] = {}
        num_tasks = len(self.cotbal_task_to_id)
        for prompt, task_id in zip(batch["_prompt"], batch[TASK_COLUMN]):
            if not 0 <= task_id < num_tasks:
                raise RuntimeError(f"cotbal_plugin: task id {task_id} outside the task list (internal error).")
            lookup[id(prompt)] = task_id
        self._cotbal_lookup = lookup
        try:
            return super().preprocess_dataset(batch)  # type: ignore[misc]
        finally:
            self._cotbal_lookup = {}

    def _encode_data_example(self, prompt: Any, *args: Any, **kwargs: Any) -> tuple[list[int], list[int]]:
        input_ids, labels = super()._encode_data_example(prompt, *args, **kwargs)  # type: ignore[misc]
        try:
            task_id = self._cotbal_lookup[id(prompt)]
        except (AttributeError, KeyError):
            raise RuntimeError("cotbal_plugin: an encoded example matches no task (internal error).") from None
        return input_ids, encode_labels(labels, task_id)

    def print_data_example(self, example: dict[str, list[int]]) -> None:
        labels, task_ids = decode_label_list(example["labels"])
        names = {i: t for t, i in self.cotbal_task_to_id.items()}
        tasks = sorted({names.get(t, str(t)) for t in task_ids if t >= 0})
        super().print_data_example({**example, "labels": labels})  # type: ignore[misc]
        print(f"cotbal tasks in this example: {tasks}")


@dataclass
class TaskTaggingSupervisedProcessor(_TaskTaggingMixin, SupervisedDatasetProcessor):
    """``SupervisedDatasetProcessor`` whose labels carry task ids."""

    cotbal_task_to_id: dict[str, int] = field(default_factory=dict)


@dataclass
class TaskTaggingPackedProcessor(_TaskTaggingMixin, PackedSupervisedDatasetProcessor):
    """``PackedSupervisedDatasetProcessor`` (packing / neat packing) whose labels carry task ids per token."""

    cotbal_task_to_id: dict[str, int] = field(default_factory=dict)


def tagging_processor(processor: Any) -> Any:
    """Wrap LLaMA-Factory's SFT training processor; other processors (generation, other stages) are returned as is."""
    run = state.active()
    if run is None:
        return processor
    if type(processor) is PackedSupervisedDatasetProcessor:
        cls = TaskTaggingPackedProcessor
    elif type(processor) is SupervisedDatasetProcessor:
        cls = TaskTaggingSupervisedProcessor
    else:
        return processor
    return cls(
        template=processor.template,
        tokenizer=processor.tokenizer,
        processor=processor.processor,
        data_args=processor.data_args,
        cotbal_task_to_id=run.task_to_id(),
    )


def write_tasks_sidecar(path: str) -> None:
    """Record the task vocabulary beside a ``tokenized_path`` cache."""
    run = state.require_active()
    with open(os.path.join(path, TASKS_SIDECAR), "w", encoding="utf-8") as f:
        json.dump({"tasks": run.tasks, "eval_tasks": run.eval_tasks}, f, indent=2)


def read_tasks_sidecar(path: str) -> None:
    """Load the task vocabulary of a ``tokenized_path`` cache, or explain why the cache cannot be used."""
    run = state.require_active()
    sidecar = os.path.join(path, TASKS_SIDECAR)
    if not os.path.isfile(sidecar):
        raise CotbalConfigError(
            f"tokenized_path: {path!r} was written without task ids (no {TASKS_SIDECAR}), so loss: cotbal cannot "
            "tell which task each token belongs to. Delete the folder (or use a new tokenized_path) and run again "
            "with loss: cotbal to rebuild it."
        )
    with open(sidecar, encoding="utf-8") as f:
        recorded = json.load(f)
    run.tasks[:] = list(recorded["tasks"])
    run.eval_tasks[:] = list(recorded.get("eval_tasks", []))


def count_by_task(labels_rows: list[list[int]], tasks: list[str]) -> dict[str, int]:
    """Number of valid label tokens per task in rows of encoded labels (used by tests and diagnostics)."""
    counts: dict[str, int] = defaultdict(int)
    for row in labels_rows:
        _, task_ids = decode_label_list(row)
        for t in task_ids:
            if t >= 0:
                counts[tasks[t]] += 1
    return dict(counts)
