"""The task list of a plain-HF run: named by the user, taken from the static weights, or read from the data.

A ``datasets.Dataset`` holds its task column in Arrow, so reading it costs one column scan (no example is
decoded, no image is loaded); its values are checked up front and every message names the row. Other datasets
(``torch.utils.data.Dataset`` such as LLaVA's ``LazySupervisedDataset``, ``IterableDataset``) are checked example by
example in the collator instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.config import check_tasks
from ..weights_file import CotbalConfigError


@dataclass
class TaskColumn:
    """The task column of one ``datasets.Dataset``.

    Attributes:
        split: ``train`` / ``eval`` / ``eval[<name>]`` (for messages).
        names: distinct task names in order of first appearance (integer columns: the indices, as ints).
        first_row: name → index of the first row holding it.
    """

    split: str
    names: list[Any]
    first_row: dict[Any, int]


def scan_task_column(dataset: Any, key: str, split: str) -> TaskColumn | None:
    """Read the task column of ``dataset`` if it is a ``datasets.Dataset``; None for any other dataset type.

    Raises:
        CotbalConfigError: no such column, empty (null) values, or values that are neither strings nor integers.
    """
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        return None
    if not isinstance(dataset, datasets.Dataset):
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    if key not in dataset.column_names:
        raise CotbalConfigError(
            f"cotbal_task_key {key!r}: the {split} dataset has no {key!r} column (columns: {dataset.column_names}). "
            "Add the task name of every example as a column, or set cotbal_task_key to the column that holds it."
        )
    column = dataset.select_columns([key]).with_format("arrow")[:].column(0)
    if column.null_count:
        row = pc.index(pc.is_null(column), True).as_py()
        raise CotbalConfigError(
            f"cotbal_task_key {key!r}: row {row} of the {split} dataset has no task ({column.null_count} row(s) are "
            "empty). Give every example its task name."
        )
    kind = column.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind)):
        raise CotbalConfigError(
            f"cotbal_task_key {key!r}: the {split} dataset's {key!r} column holds {kind} values; expected the task "
            "name of each example (strings)."
        )
    names = pc.unique(column).to_pylist()
    first_row = {name: pc.index(column, name).as_py() for name in names}
    return TaskColumn(split=split, names=names, first_row=first_row)


def _where(column: TaskColumn, name: Any) -> str:
    return f"row {column.first_row[name]} of the {column.split} dataset"


def _check_values(column: TaskColumn, key: str, known: Sequence[str], allow_index: bool, hint: str) -> None:
    """Every value of ``column`` names a task of ``known`` (or indexes it, when allowed)."""
    for name in column.names:
        if isinstance(name, str):
            if name not in known:
                raise CotbalConfigError(
                    f"cotbal_task_key {key!r}: task {name!r} ({_where(column, name)}) is not a known task "
                    f"({list(known)}). {hint}"
                )
        elif not allow_index:
            raise CotbalConfigError(
                f"cotbal_task_key {key!r}: {_where(column, name)} has task {name!r}, an integer; use task names, or "
                "pass cotbal_tasks=[...] so that integers index that list."
            )
        elif not 0 <= name < len(known):
            raise CotbalConfigError(
                f"cotbal_task_key {key!r}: {_where(column, name)} has task index {name}, outside cotbal_tasks "
                f"(0..{len(known) - 1}: {list(known)})."
            )


def resolve_tasks(
    *,
    key: str,
    weighting: str,
    weights: Mapping[str, float] | None,
    weights_source: str,
    tasks: Sequence[str] | None,
    eval_tasks: Sequence[str] | None,
    train: TaskColumn | None,
    evals: Sequence[TaskColumn],
    train_kind: str,
) -> tuple[list[str], list[str]]:
    """Return ``(training tasks, evaluation-only tasks)`` and check the data and the weights against them.

    Args:
        key: the task field (``cotbal_task_key``).
        weighting: the validated weighting name; ``weights`` its static weights (``static`` only).
        weights_source: where the weights came from (for messages).
        tasks / eval_tasks: ``cotbal_tasks`` / ``cotbal_eval_tasks`` as given (None: not given).
        train / evals: the scanned task columns of the training / evaluation datasets (None: not readable).
        train_kind: type name of the training dataset (for messages).
    """
    explicit = tasks is not None
    if explicit:
        if isinstance(tasks, str) or not isinstance(tasks, Sequence):
            raise CotbalConfigError(f"cotbal_tasks must be a list of task names, got {tasks!r}.")
        names = check_tasks(tasks, "cotbal_tasks")
        if not names:
            raise CotbalConfigError("cotbal_tasks is empty; name the training tasks.")
    elif weighting == "static":
        assert weights is not None
        if train is not None:
            names = [t for t in weights if t in train.names]
            missing = [t for t in train.names if isinstance(t, str) and t not in weights]
            if missing:
                raise CotbalConfigError(
                    f"cotbal_weights: {weights_source!r} has no weight for task(s) {missing} (first: "
                    f"{_where(train, missing[0])}). Tasks with a weight: {list(weights)}. Add the missing tasks to "
                    "the weights, or fix the task names in the data."
                )
            _check_values(train, key, list(weights), False, "")
        else:
            names = list(weights)
    elif train is not None:
        _check_values(train, key, [n for n in train.names if isinstance(n, str)], False, "")
        names = sorted(train.names)
    else:
        raise CotbalConfigError(
            f"cotbal_weighting: {weighting} needs the list of training tasks, and the training dataset (a "
            f"{train_kind}) cannot be read without loading every example; pass cotbal_tasks=[...]."
        )

    if weighting == "static":
        assert weights is not None
        missing = [t for t in names if t not in weights]
        if missing:
            raise CotbalConfigError(
                f"cotbal_weights: {weights_source!r} has no weight for task(s) {missing} (in cotbal_tasks). Tasks "
                f"with a weight: {list(weights)}. Add the missing tasks to the weights."
            )
        unused = [t for t in weights if t not in names]
        if unused:
            warnings.warn(
                f"cotbal_weights: {weights_source!r} gives weights for untrained tasks {unused} (ignored).",
                stacklevel=3,
            )

    extra: list[str] = []
    if eval_tasks is not None:
        if isinstance(eval_tasks, str) or not isinstance(eval_tasks, Sequence):
            raise CotbalConfigError(f"cotbal_eval_tasks must be a list of task names, got {eval_tasks!r}.")
        extra = check_tasks(eval_tasks, "cotbal_eval_tasks")
        both = [t for t in extra if t in names]
        if both:
            raise CotbalConfigError(f"cotbal_eval_tasks: {both} are training tasks; list only evaluation-only tasks.")

    if train is not None and explicit:
        _check_values(train, key, names, True, "Training examples must belong to cotbal_tasks (add it there).")
    for column in evals:
        if any(isinstance(n, int) for n in column.names):
            _check_values(column, key, [*names, *extra], explicit, "")
        new = sorted(n for n in column.names if isinstance(n, str) and n not in names and n not in extra)
        extra += new
    return names, extra
