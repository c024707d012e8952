"""Collator wrapper of the plain-HF front end: per-example task names in, task-encoded labels out.

Examples carry their task as a plain field (``{"input_ids": ..., "labels": ..., "task": "vqa"}``).
:class:`TaskLabelCollator` pops that field from every example *before* the user's collator runs (so collators that
pad or drop keys never see a string), lets the user's collator build the batch, and folds each example's task id
into the collated ``labels`` *after* collation (``cotbal_plugin.task_labels``: valid label ``y`` of task ``k``
becomes ``y + (k + 1) * 2**24``). Encoding after collation is what makes collators that build the labels
themselves work: TRL's completion-only masking, ``DataCollatorForLanguageModeling`` (labels from ``input_ids``),
LLaVA's truncation to ``model_max_length``.

Two batch layouts are recognised:

* one row per example (padded batches, either padding side): row ``b`` gets the task of example ``b``;
* one row holding every example back to back (padding-free collators: TRL's ``padding_free=True``,
  ``transformers.DataCollatorWithFlattening``): the tokens of example ``i`` are the ``len(input_ids_i)`` positions
  after those of the examples before it; when the batch has ``position_ids``, each example must start at a
  position id 0, which checks that the collator kept the order of the examples.

Anything else (a collator that splits or merges examples into a different number of rows) is refused with one
line: the task of each token could not be told.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..task_labels import IGNORE_INDEX, TASK_STRIDE
from ..weights_file import CotbalConfigError


def encode_rows(labels: torch.Tensor, row_tasks: Sequence[int]) -> torch.Tensor:
    """Fold ``row_tasks[b]`` into every valid label of row ``b`` of ``labels`` (``[rows, length]``)."""
    tasks = torch.as_tensor(list(row_tasks), dtype=torch.int64, device=labels.device).view(-1, 1)
    return _encode(labels, tasks.expand_as(labels))


def encode_tokens(labels: torch.Tensor, token_tasks: torch.Tensor) -> torch.Tensor:
    """Fold the per-position task ids ``token_tasks`` (same shape as ``labels``; -1 = none) into ``labels``."""
    return _encode(labels, token_tasks.to(labels.device))


def _encode(labels: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
    labels = labels.to(torch.int64)
    valid = labels != IGNORE_INDEX
    bad = valid & ((labels < 0) | (labels >= TASK_STRIDE))
    if bool(bad.any()):
        value = int(labels[bad][0])
        if value >= TASK_STRIDE:
            raise CotbalConfigError(
                f"cotbal_plugin: the collated labels already carry task ids (label {value} >= 2**24): the data "
                "collator is wrapped twice, or the labels were task-encoded by hand. Pass the plain collator."
            )
        raise CotbalConfigError(
            f"cotbal_plugin: the collated labels hold {value}; labels must be token ids or {IGNORE_INDEX} (ignored)."
        )
    untasked = valid & (tasks < 0)
    if bool(untasked.any()):
        raise CotbalConfigError(
            "cotbal_plugin: the data collator put supervised labels outside every example's tokens (padding-free "
            "layout); cotbal_plugin cannot tell their task. Use a padded collator."
        )
    return torch.where(valid, labels + (tasks + 1) * TASK_STRIDE, labels)


class TaskLabelCollator:
    """Wrap a data collator: pop each example's task field, collate, fold the task ids into the labels.

    Args:
        collator: the user's (or the trainer's default) data collator, called with the examples minus the task field.
        task_key: name of the per-example field holding the task (a task name, or an index into ``tasks`` when
            ``allow_index`` is set).
        tasks: every known task (training tasks, then evaluation-only ones); task id ``k`` is ``tasks[k]``.
        num_train_tasks: how many of ``tasks`` are training tasks (for messages).
        allow_index: accept integer task values as indices into ``tasks`` (only when the user named the task list).
    """

    def __init__(
        self,
        collator: Any,
        task_key: str,
        tasks: Sequence[str],
        num_train_tasks: int | None = None,
        allow_index: bool = False,
    ) -> None:
        self.collator = collator
        self.task_key = task_key
        self.tasks = list(tasks)
        self.num_train_tasks = len(self.tasks) if num_train_tasks is None else num_train_tasks
        self.allow_index = allow_index
        self.training = False
        self.task_to_id = {task: i for i, task in enumerate(self.tasks)}

    def for_training(self) -> TaskLabelCollator:
        """A copy for training batches: an example of an evaluation-only task is an error there."""
        clone = TaskLabelCollator(self.collator, self.task_key, self.tasks, self.num_train_tasks, self.allow_index)
        clone.training = True
        return clone

    def __getattr__(self, name: str) -> Any:
        # Code that inspects the collator (``trainer.data_collator.tokenizer``) sees the wrapped one. Looked up
        # through __dict__ so that unpickling (before __init__ ran) does not recurse.
        inner = self.__dict__.get("collator")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    # ------------------------------------------------------------------------------------------------ tasks
    def _known(self) -> str:
        train = self.tasks[: self.num_train_tasks]
        extra = self.tasks[self.num_train_tasks :]
        text = f"training tasks: {train}"
        if extra:
            text += f"; evaluation-only tasks: {extra}"
        return text

    def task_id(self, value: Any, position: int) -> int:
        """The task id of one example's task field (``position``: the example's index in the batch)."""
        where = f"example {position} of the batch"
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
            value = int(value.item())
        if isinstance(value, str):
            task_id = self.task_to_id.get(value)
            if task_id is None:
                raise CotbalConfigError(
                    f"cotbal_task_key {self.task_key!r}: {where} has task {value!r}, which is not a known task "
                    f"({self._known()}). Fix the data, or name it in cotbal_tasks (training; with a weight in "
                    "cotbal_weights) or cotbal_eval_tasks (evaluation only)."
                )
        elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
            if not self.allow_index:
                raise CotbalConfigError(
                    f"cotbal_task_key {self.task_key!r}: {where} has task {value!r}, an integer; use task names, "
                    "or pass cotbal_tasks=[...] so that integers index that list."
                )
            if not 0 <= int(value) < len(self.tasks):
                raise CotbalConfigError(
                    f"cotbal_task_key {self.task_key!r}: {where} has task index {value}, outside cotbal_tasks "
                    f"(0..{len(self.tasks) - 1}: {self.tasks})."
                )
            task_id = int(value)
        else:
            raise CotbalConfigError(
                f"cotbal_task_key {self.task_key!r}: {where} has task {value!r} of type {type(value).__name__}; "
                "expected the task name (a string)."
            )
        if self.training and task_id >= self.num_train_tasks:
            raise CotbalConfigError(
                f"cotbal_task_key {self.task_key!r}: {where} has task {self.tasks[task_id]!r}, an evaluation-only "
                f"task (cotbal_eval_tasks), in a training batch; {self._known()}."
            )
        return task_id

    # ------------------------------------------------------------------------------------------------ collate
    def __call__(self, features: Sequence[Any]) -> Any:
        features = list(features)
        stripped, task_ids, lengths = [], [], []
        for i, feature in enumerate(features):
            if not isinstance(feature, Mapping):
                raise CotbalConfigError(
                    f"cotbal_plugin: example {i} of the batch is a {type(feature).__name__}, not a mapping; examples "
                    f"must be dicts with a {self.task_key!r} field."
                )
            if self.task_key not in feature:
                raise CotbalConfigError(
                    f"cotbal_task_key {self.task_key!r}: example {i} of the batch has no {self.task_key!r} field "
                    f"(it has {sorted(map(str, feature))}). Give every example its task name, or set "
                    "cotbal_task_key to the field that holds it."
                )
            task_ids.append(self.task_id(feature[self.task_key], i))
            rest = {k: v for k, v in feature.items() if k != self.task_key}  # copy: dataset rows stay untouched
            ids = rest.get("input_ids")
            lengths.append(len(ids) if ids is not None and hasattr(ids, "__len__") else None)
            stripped.append(rest)
        batch = self.collator(stripped)
        labels = batch.get("labels") if isinstance(batch, Mapping) else None
        if labels is None:
            raise CotbalConfigError(
                "cotbal_plugin: the data collator returned no `labels`; the VITW loss needs token labels (-100 = "
                "ignored). Add `labels` to the examples or use a collator that builds them "
                "(e.g. DataCollatorForLanguageModeling(tokenizer, mlm=False))."
            )
        if not isinstance(labels, torch.Tensor):
            labels = torch.as_tensor(labels)
        batch["labels"] = self.encode(labels, task_ids, lengths, batch.get("position_ids"))
        return batch

    def encode(
        self,
        labels: torch.Tensor,
        task_ids: Sequence[int],
        lengths: Sequence[int | None],
        position_ids: Any = None,
    ) -> torch.Tensor:
        """Fold the examples' task ids into the collated ``labels`` (per row, or per token when flattened)."""
        if labels.dim() != 2:
            raise CotbalConfigError(
                f"cotbal_plugin: the collated labels have shape {tuple(labels.shape)}; expected [batch, length]."
            )
        rows = labels.size(0)
        if rows == len(task_ids):
            return encode_rows(labels, task_ids)
        if rows != 1:
            raise CotbalConfigError(
                f"cotbal_plugin: the data collator turned {len(task_ids)} examples into {rows} rows; cotbal_plugin "
                "cannot tell which tokens belong to which example (packing collators are not supported)."
            )
        return encode_tokens(labels, self._flat_tasks(labels, task_ids, lengths, position_ids))

    def _flat_tasks(
        self, labels: torch.Tensor, task_ids: Sequence[int], lengths: Sequence[int | None], position_ids: Any
    ) -> torch.Tensor:
        """Per-position task ids of a padding-free batch (examples back to back in one row)."""
        if any(n is None for n in lengths):
            raise CotbalConfigError(
                "cotbal_plugin: the data collator concatenated the examples into one row, but the examples have no "
                "`input_ids` to tell where each one starts; use a padded collator."
            )
        total, width = sum(lengths), labels.size(1)
        if total > width:
            raise CotbalConfigError(
                f"cotbal_plugin: the data collator concatenated {len(lengths)} examples of {total} tokens into a row "
                f"of {width}; cotbal_plugin cannot tell which tokens belong to which example."
            )
        starts, offset = [], 0
        for n in lengths:
            starts.append(offset)
            offset += n
        if position_ids is not None:
            pos = torch.as_tensor(position_ids).reshape(-1)
            if any(n > 0 and int(pos[s]) != 0 for s, n in zip(starts, lengths)):
                raise CotbalConfigError(
                    "cotbal_plugin: the padding-free batch's position_ids do not restart at 0 where each example "
                    "starts (the collator reordered or altered the examples); use a padded collator."
                )
        token_tasks = torch.full_like(labels, -1, dtype=torch.int64)
        for task, start, n in zip(task_ids, starts, lengths):
            token_tasks[0, start : start + n] = task
        return token_tasks
