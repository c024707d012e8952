"""``cotbal eval``: LLaMA-Factory predictions → scores.json (+ a details file with every metric)."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "eval"
HELP = "score generated_predictions.jsonl files and write scores.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cotbal eval``."""
    from cotbal_plugin.probe.metrics import METRICS

    parser.add_argument("--manifest", help="manifest.json of `cotbal plan`: evaluates all its prediction files")
    parser.add_argument(
        "--pred", action="append", metavar="RUN/TASK[/DATASET]=FILE",
        help="a prediction file of run RUN on task TASK (validation dataset DATASET); repeatable, several per "
        "RUN/TASK are combined (--group-combine)",
    )  # fmt: skip
    parser.add_argument(
        "--metric", action="append", metavar="KEY=METRIC[,METRIC]",
        help="metric(s) of a task or of one validation dataset (KEY), first = primary; overrides the manifest and "
        f"dataset_info.json; one of: {', '.join(METRICS)}",
    )  # fmt: skip
    parser.add_argument(
        "--group-combine", choices=["mean", "size"], default="mean",
        help="score of a task with several validation datasets: mean of their scores (default) or weighted by "
        "their number of predictions",
    )  # fmt: skip
    parser.add_argument("--out", required=True, type=Path, help="scores.json to write")
    parser.add_argument("--details", type=Path, help="all metrics per run/task (default: <out>.details.json)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _files(args: argparse.Namespace):
    from cotbal_plugin.probe.cliargs import key_values
    from cotbal_plugin.probe.errors import ProbeError
    from cotbal_plugin.probe.evaluate import PredictionFile, metrics_from_manifest, resolve_metrics
    from cotbal_plugin.probe.plan import load_manifest

    files: list[PredictionFile] = []
    metrics: dict[str, list[str]] = {}
    dataset_metrics: dict[str, list[str]] = {}
    if args.manifest:
        manifest = load_manifest(args.manifest)
        metrics, dataset_metrics = metrics_from_manifest(manifest)
        files += [PredictionFile(p["run"], p["task"], Path(p["file"]), p["dataset"]) for p in manifest["predictions"]]
    for key, paths in key_values(args.pred, "--pred").items():
        parts = key.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ProbeError(f"--pred expects RUN/TASK=FILE or RUN/TASK/DATASET=FILE, got key {key!r}.")
        files += [PredictionFile(parts[0], parts[1], Path(p), parts[2] if len(parts) == 3 else "") for p in paths]
    if not files:
        raise ProbeError("nothing to evaluate: pass --manifest <plan>/manifest.json or --pred RUN/TASK=FILE.")
    metrics, dataset_metrics = resolve_metrics(files, metrics, dataset_metrics, key_values(args.metric, "--metric"))
    return files, metrics, dataset_metrics


def run(args: argparse.Namespace) -> int:
    """Score every prediction file and write scores.json and its details."""
    from cotbal_plugin.probe.evaluate import evaluate, write_json

    files, metrics, dataset_metrics = _files(args)
    scores, details = evaluate(
        files,
        metrics,
        progress=not args.no_progress,
        dataset_metrics=dataset_metrics,
        group_combine=args.group_combine,
    )
    details_path = args.details or args.out.with_suffix(".details.json")
    write_json(args.out, scores)
    write_json(details_path, details)
    for run_name, per_task in scores.items():
        print(f"{run_name}: " + ", ".join(f"{t}={v:.4f}" for t, v in per_task.items()))
    unparsable = {
        f"{r}/{t}": d["unparsable"] for r, tasks in details.items() for t, d in tasks.items() if d["unparsable"]
    }
    if unparsable:
        print(f"unparsable predictions (counted as misses): {unparsable}")
    print(f"wrote {args.out} and {details_path}")
    return 0
