"""``cotbal plan``: write the probe subsets, YAMLs, manifest and run script."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import examples, output_dir, progress_of, say

NAME = "plan"
HELP = "write mini / large-enough subsets, probe and predict YAMLs, a manifest and run_all.sh"
EPILOG = examples(
    "cotbal plan --base-yaml train.yaml --out probe/ --val vqa=vqa_val --val cap=cap_val \\",
    "            --metric vqa=em --metric cap=cider --fixed sharegpt --mini-fraction 1/32",
    "cotbal plan --base-yaml train.yaml --out probe/ --tasks vqa,cap --val vqa=vqa_val --val cap=cap_val \\",
    "            --metric vqa=em --metric cap=cider --difficulty precise --stl",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cotbal plan``."""
    parser.epilog = EPILOG
    from cotbal_plugin.probe.cliargs import fraction_arg

    parser.add_argument("--base-yaml", required=True, type=Path, help="LLaMA-Factory SFT training YAML to copy")
    parser.add_argument("--out", required=True, type=output_dir, help="plan directory (created)")
    parser.add_argument(
        "--dataset-info", type=Path, help="LLaMA-Factory dataset_info.json (default: <dataset_dir of base YAML>/...)"
    )
    parser.add_argument(
        "--tasks", action="append", metavar="NAME[,NAME]",
        help="training datasets or task-group names (default: `dataset:` of the base YAML); datasets sharing a "
        '"cotbal_task" in dataset_info.json form one task',
    )  # fmt: skip
    parser.add_argument("--val", action="append", metavar="TASK=DATASET[,DATASET]", help="validation set(s) of a task")
    parser.add_argument("--metric", action="append", metavar="TASK=METRIC[,METRIC]", help="metric(s); first = primary")
    parser.add_argument(
        "--fixed", action="append", metavar="TASK[=WEIGHT]",
        help="task with a fixed weight (e.g. sharegpt, or sharegpt=1.0; WEIGHT defaults to 1.0 and goes to the "
        "`cotbal weights` line of run_all.sh): its mini subset joins every probe, no probe of its own",
    )  # fmt: skip
    parser.add_argument("--large-fraction", type=fraction_arg, default=1.0, help="large-enough subset rate (1)")
    parser.add_argument("--mini-fraction", type=fraction_arg, default=1 / 32, help="mini subset rate (1/32)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    parser.add_argument(
        "--difficulty", choices=["real", "precise", "chat"], default="real",
        help="real: runs mini and TASK+mini (eqs. 3, 9); precise: also TASK and mini_TASK (eq. 17); "
        "chat: base model, TASK and mini_TASK (appendix F)",
    )  # fmt: skip
    parser.add_argument("--stl", action="store_true", help="also write single-task (STL) baseline training YAMLs")
    parser.add_argument("--saves-dir", type=Path, help="where models and predictions go (default: <out>/saves)")


def run(args: argparse.Namespace) -> int:
    """Write the plan and print where everything is."""
    from cotbal_plugin.files import check_output_dir
    from cotbal_plugin.probe.cliargs import fixed_tasks, key_values, names
    from cotbal_plugin.probe.plan import PlanConfig, make_plan

    check_output_dir(args.out, "--out")
    fixed = fixed_tasks(args.fixed, "--fixed")
    cfg = PlanConfig(
        base_yaml=args.base_yaml,
        out_dir=args.out,
        validation=key_values(args.val, "--val"),
        metrics=key_values(args.metric, "--metric"),
        dataset_info=args.dataset_info,
        tasks=names(args.tasks) or None,
        fixed=list(fixed),
        fixed_weights=fixed,
        large_fraction=args.large_fraction,
        mini_fraction=args.mini_fraction,
        seed=args.seed,
        difficulty=args.difficulty,
        stl=args.stl,
        saves_dir=args.saves_dir,
        progress=progress_of(args),
    )
    manifest = make_plan(cfg)
    out = args.out.resolve()
    n_train = sum(j["kind"] == "train" for j in manifest["jobs"])
    n_pred = sum(j["kind"] == "predict" for j in manifest["jobs"])
    say(
        args,
        f"tasks: {', '.join(manifest['tasks'])}"
        + (f"; fixed: {', '.join(manifest['fixed'])}" if manifest["fixed"] else ""),
    )
    for name, sub in manifest["subsets"].items():
        say(args, f"  {name}: {sub['size']} of {sub['source_size']} samples")
    say(args, f"runs: {', '.join(manifest['runs'])}")
    say(args, f"jobs: {n_train} trainings, {n_pred} predictions")
    say(args, f"manifest: {out / 'manifest.json'}")
    say(args, f"next: cotbal run --manifest {out / 'manifest.json'}   (or bash {out / 'run_all.sh'})")
    return 0
