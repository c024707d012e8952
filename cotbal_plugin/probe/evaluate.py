"""LLaMA-Factory predictions → ``scores.json``.

``llamafactory-cli train predict.yaml`` (``do_predict: true``, ``predict_with_generate: true``) writes
``<output_dir>/generated_predictions.jsonl`` with one ``{"prompt": ..., "predict": ..., "label": ...}`` per line.
Each (run, task) may have several prediction files: a task group validated on several datasets (the Large
Benchmark's groups), each dataset possibly with its own metric.

* **Metric of a file**: the metrics named for its validation dataset (``--metric DATASET=...``, or the dataset's
  ``cotbal_metric`` in dataset_info.json) if any, else those of its task; the first is the file's primary metric.
* **Score of a task** (``scores.json``): the primary scores of its files combined by ``group_combine``: ``"mean"``
  (default: every validation dataset counts the same) or ``"size"`` (weighted by the number of predictions;
  for ``em`` / ``vqa`` / ``iou_acc`` this is the score of the pooled predictions).
* **Details** (``{run: {task: {...}}}``): every metric that all files of the task were scored with (combined the
  same way), the task score, the combine mode, and ``per_file``: each file's dataset, metric(s), score and counts.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..progress import bar
from .errors import ProbeError, ProbeWarning
from .metrics import METRICS, UNBOUNDED_METRICS, MetricResult, get_metric, score


@dataclass(frozen=True)
class PredictionFile:
    """One prediction file of run ``run`` on a validation dataset of task ``task``."""

    run: str
    task: str
    path: Path
    dataset: str = ""


def read_predictions(path: str | Path) -> tuple[list[str], list[str]]:
    """Read ``generated_predictions.jsonl`` into (predictions, labels).

    Raises:
        ProbeError: missing or empty file, a line that is not a JSON object with string ``predict`` and ``label``.
    """
    path = Path(path)
    if not path.is_file():
        raise ProbeError(
            f"prediction file {str(path)!r} does not exist. Run the matching predict job (`cotbal run`) or "
            "`llamafactory-cli train <predict yaml>` first."
        )
    preds, labels = [], []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ProbeError(f"{str(path)!r} line {lineno}: not valid JSON ({err}).") from None
            if not isinstance(row, dict):
                raise ProbeError(f"{str(path)!r} line {lineno}: expected a JSON object, got {type(row).__name__}.")
            for key in ("predict", "label"):
                if not isinstance(row.get(key), str):
                    raise ProbeError(
                        f"{str(path)!r} line {lineno}: key {key!r} is missing or not a string; expected "
                        'LLaMA-Factory\'s {"prompt": ..., "predict": ..., "label": ...}.'
                    )
            preds.append(row["predict"])
            labels.append(row["label"])
    if not preds:
        raise ProbeError(
            f"prediction file {str(path)!r} is empty. The predict job probably failed or its validation set is "
            "empty; re-run it."
        )
    return preds, labels


COMBINE_MODES = ("mean", "size")
DEFAULT_COMBINE = "mean"


def evaluate_file(path: str | Path, metrics: Sequence[str]) -> dict[str, MetricResult]:
    """Score one prediction file with every metric in ``metrics``."""
    if not metrics:
        raise ProbeError(f"no metric given for {str(path)!r}.")
    for name in metrics:
        get_metric(name)
    preds, labels = read_predictions(path)
    out = {}
    for name in metrics:
        try:
            out[name] = score(name, preds, labels)
        except ProbeError as err:
            raise ProbeError(f"{str(path)!r}, metric {name!r}: {err}") from None
    return out


def file_metrics(
    file: PredictionFile, metrics: Mapping[str, Sequence[str]], dataset_metrics: Mapping[str, Sequence[str]]
) -> list[str]:
    """The metrics of one file: its dataset's if named, else its task's (first = primary); may be empty."""
    if file.dataset and dataset_metrics.get(file.dataset):
        return list(dataset_metrics[file.dataset])
    return list(metrics.get(file.task) or [])


def combine(values: Sequence[float], sizes: Sequence[int], mode: str = DEFAULT_COMBINE) -> float:
    """Combine per-file values: plain ``mean``, or weighted by the number of predictions (``size``)."""
    if mode not in COMBINE_MODES:
        raise ProbeError(f"unknown group combine mode {mode!r}; use one of: {', '.join(COMBINE_MODES)}.")
    if mode == "size":
        return sum(v * n for v, n in zip(values, sizes, strict=True)) / sum(sizes)
    return sum(values) / len(values)


def resolve_metrics(
    files: Sequence[PredictionFile],
    task_metrics: Mapping[str, Sequence[str]],
    dataset_metrics: Mapping[str, Sequence[str]],
    overrides: Mapping[str, Sequence[str]],
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Apply ``--metric KEY=...`` overrides (KEY a task or a validation dataset) to metrics read from a manifest.

    A task override replaces the task's metrics and those its datasets carried; a dataset override replaces
    that dataset's. Returns ``(task_metrics, dataset_metrics)``.

    Raises:
        ProbeError: a KEY that names neither a task nor a dataset of the prediction files, an unknown metric.
    """
    tasks = {f.task for f in files}
    datasets = {f.dataset for f in files if f.dataset}
    by_task = dict(task_metrics)
    by_dataset = {k: list(v) for k, v in dataset_metrics.items()}
    unknown = sorted(set(overrides) - tasks - datasets)
    if unknown:
        raise ProbeError(
            f"--metric names {unknown}, neither a task nor a validation dataset of the prediction files; "
            f"tasks: {sorted(tasks)}, datasets: {sorted(datasets) or 'none named'}."
        )
    for key, names in overrides.items():
        for name in names:
            try:
                get_metric(name)
            except ProbeError as err:
                raise ProbeError(f"--metric {key}={','.join(names)}: {err}") from None
    for key, names in overrides.items():
        if key in tasks:
            by_task[key] = list(names)
            for f in files:
                if f.task == key:
                    by_dataset.pop(f.dataset, None)
    for key, names in overrides.items():
        if key in datasets and key not in tasks:
            by_dataset[key] = list(names)
    return {k: list(v) for k, v in by_task.items()}, by_dataset


def metrics_from_manifest(manifest: Mapping[str, Any]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Task metrics of a ``cotbal plan`` manifest, and the validation datasets' own metrics where they differ.

    ``cotbal plan`` gives a task without ``--metric`` the ``cotbal_metric`` values of its validation datasets (in
    order, without repeats). When those differ (a group mixing e.g. ``em`` and ``gleu``), each dataset is scored
    with its own metric, read from the plan's ``data/dataset_info.json``. A task whose metrics were chosen with
    ``cotbal plan --metric`` keeps them for all its datasets.
    """
    tasks = manifest.get("tasks") or {}
    task_metrics = {t: list(spec.get("metrics") or []) for t, spec in tasks.items()}
    info_path = Path(str(manifest.get("dataset_dir") or "")) / "dataset_info.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8")) if manifest.get("dataset_dir") else {}
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        info = {}
    dataset_metrics: dict[str, list[str]] = {}
    for task, spec in tasks.items():
        named = {}
        for ds in spec.get("validation") or []:
            entry = info.get(ds) if isinstance(info, dict) else None
            if isinstance(entry, dict) and entry.get("cotbal_metric"):
                named[ds] = str(entry["cotbal_metric"])
        if len(set(named.values())) > 1 and list(dict.fromkeys(named.values())) == task_metrics[task]:
            dataset_metrics.update({ds: [m] for ds, m in named.items()})
    return task_metrics, dataset_metrics


def _warn_mixed_scales(primaries: Mapping[str, Mapping[str, str]], mode: str) -> None:
    """Warn once per task whose files mix CIDEr-D (0-10) with fraction metrics (0-1) in one score."""
    for task, by_file in primaries.items():
        kinds = set(by_file.values())
        if len(kinds) > 1 and kinds & UNBOUNDED_METRICS and kinds - UNBOUNDED_METRICS:
            listing = ", ".join(f"{name} ({metric})" for name, metric in by_file.items())
            warnings.warn(
                f"task {task!r} combines CIDEr-D (0-10) with fraction metrics (0-1) into one score ({mode} of "
                f"{listing}): the CIDEr-D datasets dominate it. Score the group's datasets with metrics of one scale "
                "(--metric DATASET=...) or split the group into tasks.",
                ProbeWarning,
                stacklevel=3,
            )


def evaluate(
    files: Iterable[PredictionFile],
    metrics: Mapping[str, Sequence[str]],
    progress: bool | None = None,
    dataset_metrics: Mapping[str, Sequence[str]] | None = None,
    group_combine: str = DEFAULT_COMBINE,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, dict[str, Any]]]]:
    """Score every prediction file; return (scores, details).

    Args:
        files: the prediction files (several per (run, task) are combined).
        metrics: task → metric names; the first is the primary metric that goes to ``scores.json``.
        progress: tqdm bar: True always, False never, None only when stderr is a terminal.
        dataset_metrics: validation dataset → metric names, for files whose dataset is named here (these win).
        group_combine: how the files of one (run, task) combine: ``mean`` or ``size`` (module docstring).

    Returns:
        ``scores`` = ``{run: {task: score}}`` and ``details`` = ``{run: {task: {metric: value, "score": ...,
        "combine": ..., "n": predictions, "unparsable": count, "files": [...], "per_file": [...]}}}``.
    """
    files = list(files)
    dataset_metrics = dataset_metrics or {}
    if group_combine not in COMBINE_MODES:
        raise ProbeError(f"unknown group combine mode {group_combine!r}; use one of: {', '.join(COMBINE_MODES)}.")
    if not files:
        raise ProbeError("no prediction files to evaluate.")
    missing = sorted({f.task for f in files if not file_metrics(f, metrics, dataset_metrics)})
    if missing:
        raise ProbeError(
            f"no metric for task(s) {missing}; give one with --metric TASK=METRIC (valid: {', '.join(METRICS)})."
        )
    per_key: dict[tuple[str, str], list[tuple[PredictionFile, list[str], dict[str, MetricResult]]]] = {}
    for f in bar(files, desc="cotbal eval", unit="file", progress=progress):
        names = file_metrics(f, metrics, dataset_metrics)
        per_key.setdefault((f.run, f.task), []).append((f, names, evaluate_file(f.path, names)))
    scores: dict[str, dict[str, float]] = {}
    details: dict[str, dict[str, dict[str, Any]]] = {}
    primaries: dict[str, dict[str, str]] = {}
    for (run, task), results in per_key.items():
        sizes = [r[names[0]].n for _, names, r in results]
        entry: dict[str, Any] = {}
        shared = [m for m in results[0][1] if all(m in names for _, names, _ in results)]
        for name in shared:
            entry[name] = combine([r[name].value for _, _, r in results], sizes, group_combine)
            for extra in results[0][2][name].extra:
                if all(extra in r[name].extra for _, _, r in results):
                    values = [r[name].extra[extra] for _, _, r in results]
                    entry.setdefault(extra, combine(values, sizes, group_combine))
        task_score = combine([r[names[0]].value for _, names, r in results], sizes, group_combine)
        per_file = []
        for f, names, r in results:
            item: dict[str, Any] = {"dataset": f.dataset, "file": str(f.path), "metric": names[0]}
            item["score"] = r[names[0]].value
            item.update({name: r[name].value for name in names})
            item.update({k: v for name in names for k, v in r[name].extra.items() if k not in item})
            item["n"] = r[names[0]].n
            item["unparsable"] = max(r[name].unparsable for name in names)
            per_file.append(item)
            primaries.setdefault(task, {})[f.dataset or str(f.path)] = names[0]
        entry.update(
            score=task_score,
            combine=group_combine,
            n=sum(sizes),
            unparsable=sum(item["unparsable"] for item in per_file),
            files=[str(f.path) for f, _, _ in results],
            per_file=per_file,
        )
        details.setdefault(run, {})[task] = entry
        scores.setdefault(run, {})[task] = task_score
    _warn_mixed_scales(primaries, group_combine)
    return scores, details


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
