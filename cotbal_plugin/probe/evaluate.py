"""LLaMA-Factory predictions → ``scores.json``.

``llamafactory-cli train predict.yaml`` (``do_predict: true``, ``predict_with_generate: true``) writes
``<output_dir>/generated_predictions.jsonl`` with one ``{"prompt": ..., "predict": ..., "label": ...}`` per line.
Each (run, task) may have several prediction files (a task with several validation datasets, e.g. a task group):
every metric is computed per file and averaged over the files; the task's score in ``scores.json`` is its first
(primary) metric. All metrics go to the details file ``{run: {task: {metric: value, ...}}}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..progress import bar
from .errors import ProbeError
from .metrics import METRICS, MetricResult, get_metric, score


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


def evaluate(
    files: Iterable[PredictionFile], metrics: Mapping[str, Sequence[str]], progress: bool | None = None
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, dict[str, Any]]]]:
    """Score every prediction file; return (scores, details).

    Args:
        files: the prediction files (several per (run, task) are averaged).
        metrics: task → metric names; the first is the primary metric that goes to ``scores.json``.
        progress: tqdm bar: True always, False never, None only when stderr is a terminal.

    Returns:
        ``scores`` = ``{run: {task: primary metric}}`` and ``details`` = ``{run: {task: {metric: value,
        "n": predictions, "unparsable": count, "files": [...]}}}``.
    """
    files = list(files)
    if not files:
        raise ProbeError("no prediction files to evaluate.")
    missing = sorted({f.task for f in files if not metrics.get(f.task)})
    if missing:
        raise ProbeError(
            f"no metric for task(s) {missing}; give one with --metric TASK=METRIC (valid: {', '.join(METRICS)})."
        )
    per_key: dict[tuple[str, str], list[dict[str, MetricResult]]] = {}
    paths: dict[tuple[str, str], list[str]] = {}
    for f in bar(files, desc="cotbal eval", unit="file", progress=progress):
        per_key.setdefault((f.run, f.task), []).append(evaluate_file(f.path, metrics[f.task]))
        paths.setdefault((f.run, f.task), []).append(str(f.path))
    scores: dict[str, dict[str, float]] = {}
    details: dict[str, dict[str, dict[str, Any]]] = {}
    for (run, task), results in per_key.items():
        names = list(metrics[task])
        entry: dict[str, Any] = {name: sum(r[name].value for r in results) / len(results) for name in names}
        for name in names:
            for extra in results[0][name].extra:
                entry.setdefault(extra, sum(r[name].extra[extra] for r in results) / len(results))
        entry["n"] = sum(r[names[0]].n for r in results)
        entry["unparsable"] = sum(max(r[name].unparsable for name in names) for r in results)
        entry["files"] = paths[(run, task)]
        details.setdefault(run, {})[task] = entry
        scores.setdefault(run, {})[task] = entry[names[0]]
    return scores, details


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
