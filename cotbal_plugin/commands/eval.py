"""``cotbal eval``: LLaMA-Factory predictions → scores.json (+ a details file with every metric)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import examples, output_file, progress_of, say

NAME = "eval"
HELP = "score generated_predictions.jsonl files and write scores.json"
EPILOG = examples(
    "cotbal eval --manifest probe/manifest.json --out probe/scores.json",
    "cotbal eval --pred mini/vqa=preds/mini_vqa.jsonl --pred vqa+mini/vqa=preds/vqa_vqa.jsonl \\",
    "            --metric vqa=vqa,em --out scores.json",
    "cotbal eval --manifest probe/ --out - --details probe/details.json | jq .mini   # scores.json on stdout",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cotbal eval``."""
    from cotbal_plugin.probe.metrics import METRICS

    parser.epilog = EPILOG
    parser.add_argument(
        "--manifest", metavar="FILE", help="manifest.json of `cotbal plan` (or its folder): all its prediction files"
    )
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
    parser.add_argument(
        "--out", required=True, type=output_file, metavar="FILE", help="scores.json to write (- for stdout)"
    )
    parser.add_argument(
        "--details", type=output_file, metavar="FILE",
        help="every metric per run/task (default: <out>.details.json; with --out -, only when given)",
    )  # fmt: skip


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
        files += [
            PredictionFile(p["run"], p["task"], Path(p["file"]), p.get("dataset", "")) for p in manifest["predictions"]
        ]
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
    from cotbal_plugin.files import check_output_file, is_stdout, write_json
    from cotbal_plugin.probe.errors import ProbeError
    from cotbal_plugin.probe.evaluate import evaluate

    if is_stdout(args.out) and is_stdout(args.details):
        raise ProbeError("--out and --details cannot both be - (standard output carries one document).")
    details_path = args.details
    if details_path is None and not is_stdout(args.out):
        details_path = args.out.with_suffix(".details.json")
    check_output_file(args.out, "--out")
    if details_path is not None:
        check_output_file(details_path, "--details")
    files, metrics, dataset_metrics = _files(args)
    scores, details = evaluate(
        files,
        metrics,
        progress=progress_of(args),
        dataset_metrics=dataset_metrics,
        group_combine=args.group_combine,
    )
    write_json(args.out, scores, "--out")
    if details_path is not None:
        write_json(details_path, details, "--details")
    for run_name, per_task in scores.items():
        say(args, f"{run_name}: " + ", ".join(f"{t}={v:.4f}" for t, v in per_task.items()))
    unparsable = {
        f"{r}/{t}": d["unparsable"] for r, tasks in details.items() for t, d in tasks.items() if d["unparsable"]
    }
    if unparsable:
        say(args, f"unparsable predictions (counted as misses): {unparsable}")
    if details_path is None:
        say(args, "wrote scores.json to standard output; no details file (give --details FILE for one)")
    else:
        say(args, f"wrote {args.out} and {details_path}")
    return 0
