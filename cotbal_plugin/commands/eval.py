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
        "--pred", action="append", metavar="RUN/TASK=FILE",
        help="a prediction file of run RUN on task TASK (repeatable; several per RUN/TASK are averaged)",
    )  # fmt: skip
    parser.add_argument(
        "--metric", action="append", metavar="TASK=METRIC[,METRIC]",
        help=f"metric(s) of a task, first = primary (overrides the manifest); one of: {', '.join(METRICS)}",
    )  # fmt: skip
    parser.add_argument("--out", required=True, type=Path, help="scores.json to write")
    parser.add_argument("--details", type=Path, help="all metrics per run/task (default: <out>.details.json)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _files(args: argparse.Namespace):
    from cotbal_plugin.probe.cliargs import key_values
    from cotbal_plugin.probe.errors import ProbeError
    from cotbal_plugin.probe.evaluate import PredictionFile
    from cotbal_plugin.probe.plan import load_manifest

    files: list[PredictionFile] = []
    metrics: dict[str, list[str]] = {}
    if args.manifest:
        manifest = load_manifest(args.manifest)
        metrics.update({t: list(spec["metrics"]) for t, spec in manifest["tasks"].items()})
        files += [PredictionFile(p["run"], p["task"], Path(p["file"]), p["dataset"]) for p in manifest["predictions"]]
    for key, paths in key_values(args.pred, "--pred").items():
        run, sep, task = key.partition("/")
        if not sep or not run or not task or "/" in task:
            raise ProbeError(f"--pred expects RUN/TASK=FILE, got key {key!r}.")
        files += [PredictionFile(run, task, Path(p)) for p in paths]
    if not files:
        raise ProbeError("nothing to evaluate: pass --manifest <plan>/manifest.json or --pred RUN/TASK=FILE.")
    metrics.update(key_values(args.metric, "--metric"))
    return files, metrics


def run(args: argparse.Namespace) -> int:
    """Score every prediction file and write scores.json and its details."""
    from cotbal_plugin.probe.evaluate import evaluate, write_json

    files, metrics = _files(args)
    scores, details = evaluate(files, metrics, progress=not args.no_progress)
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
