"""``cotbal plan``: write the probe subsets, YAMLs, manifest and run script."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "plan"
HELP = "write mini / large-enough subsets, probe and predict YAMLs, a manifest and run_all.sh"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cotbal plan``."""
    from cotbal_plugin.probe.cliargs import fraction_arg

    parser.add_argument("--base-yaml", required=True, type=Path, help="LLaMA-Factory SFT training YAML to copy")
    parser.add_argument("--out", required=True, type=Path, help="plan directory (created)")
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
        "--fixed", action="append", metavar="NAME",
        help="task with a fixed weight (e.g. sharegpt): its mini subset joins every probe, no probe of its own",
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
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Write the plan and print where everything is."""
    from cotbal_plugin.probe.cliargs import key_values, names
    from cotbal_plugin.probe.plan import PlanConfig, make_plan

    cfg = PlanConfig(
        base_yaml=args.base_yaml,
        out_dir=args.out,
        validation=key_values(args.val, "--val"),
        metrics=key_values(args.metric, "--metric"),
        dataset_info=args.dataset_info,
        tasks=names(args.tasks) or None,
        fixed=names(args.fixed),
        large_fraction=args.large_fraction,
        mini_fraction=args.mini_fraction,
        seed=args.seed,
        difficulty=args.difficulty,
        stl=args.stl,
        saves_dir=args.saves_dir,
        progress=not args.no_progress,
    )
    manifest = make_plan(cfg)
    out = args.out.resolve()
    n_train = sum(j["kind"] == "train" for j in manifest["jobs"])
    n_pred = sum(j["kind"] == "predict" for j in manifest["jobs"])
    print(
        f"tasks: {', '.join(manifest['tasks'])}"
        + (f"; fixed: {', '.join(manifest['fixed'])}" if manifest["fixed"] else "")
    )
    for name, sub in manifest["subsets"].items():
        print(f"  {name}: {sub['size']} of {sub['source_size']} samples")
    print(f"runs: {', '.join(manifest['runs'])}")
    print(f"jobs: {n_train} trainings, {n_pred} predictions")
    print(f"manifest: {out / 'manifest.json'}")
    print(f"next: cotbal run --manifest {out / 'manifest.json'}   (or bash {out / 'run_all.sh'})")
    return 0
