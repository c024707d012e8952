"""``cotbal run``: run the jobs of a plan on this machine (one at a time, or side by side), resumably."""

from __future__ import annotations

import argparse

from ._common import examples, progress_of, say

NAME = "run"
HELP = "run the plan's trainings and predictions (llamafactory-cli train <yaml>), in parallel on --gpus, resumable"
EPILOG = (
    examples(
        "cotbal run --manifest probe/manifest.json                 # one job at a time, every GPU per job",
        "cotbal run --manifest probe/ --gpus 0,1,2,3,4,5,6,7 --gpus-per-job 4",
        "cotbal run --manifest probe/ --parallel 2                 # CPU-only, or devices placed elsewhere",
        "cotbal run --manifest probe/ --only train --dry-run",
        "cotbal run --manifest probe/ --dry-run --format slurm --gpus-per-job 8 --sbatch-arg=--time=24:00:00",
        "COTBAL_LAUNCHER='srun llamafactory-cli train' cotbal run --manifest probe/",
    )
    + """

A finished job is skipped; an interrupted training resumes from its last checkpoint; a failed job does not stop
the others. Exit code 1 when any job failed (the summary names each one and its log)."""
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cotbal run``."""
    parser.epilog = EPILOG
    parser.add_argument("--manifest", required=True, help="manifest.json written by `cotbal plan` (or its folder)")
    parser.add_argument(
        "--launcher", help="command run as `<launcher> <yaml>` (default: $COTBAL_LAUNCHER or 'llamafactory-cli train')"
    )
    parser.add_argument("--only", action="append", metavar="KIND", help="run only jobs of kind train, predict or stl")
    parser.add_argument(
        "--jobs",
        action="append",
        metavar="NAME",
        help="run only these jobs (names or shell patterns: 'predict:mini:*')",
    )
    parser.add_argument(
        "--force", action="store_true", help="re-run jobs whose outputs exist (deleting those outputs)"
    )
    parser.add_argument("--dry-run", action="store_true", help="list the jobs and whether they are done; run nothing")
    parser.add_argument(
        "--format", choices=["text", "slurm"], default="text",
        help="with --dry-run: text (list the jobs) or slurm (write submit_slurm.sh next to the manifest)",
    )  # fmt: skip
    group = parser.add_argument_group("parallel jobs")
    group.add_argument(
        "--gpus", metavar="ID[,ID...]", help="devices to spread the jobs over (CUDA_VISIBLE_DEVICES per job)"
    )
    group.add_argument("--gpus-per-job", type=int, metavar="K", help="devices per training (torchrun when K > 1)")
    group.add_argument(
        "--predict-gpus-per-job", type=int, metavar="K", help="devices per prediction (default 1 with --gpus)"
    )
    group.add_argument("--parallel", type=int, metavar="N", help="jobs at a time without --gpus (default 1)")
    group.add_argument(
        "--sbatch-arg", action="append", default=[], metavar="ARG",
        help="extra sbatch option for --format slurm, e.g. --sbatch-arg=--partition=gpu (repeat)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Run (or list, or write a Slurm script for) the jobs."""
    from pathlib import Path

    from cotbal_plugin.probe.cliargs import names
    from cotbal_plugin.probe.errors import ProbeError
    from cotbal_plugin.probe.plan import load_manifest
    from cotbal_plugin.probe.runner import is_done, resolve_launcher, run_jobs, select_jobs
    from cotbal_plugin.probe.scheduler import make_pool

    manifest = load_manifest(args.manifest)
    jobs = select_jobs(manifest["jobs"], names(args.only), args.jobs)
    if args.format != "text" and not args.dry_run:
        raise ProbeError("--format slurm writes a script and runs nothing: add --dry-run.")
    if args.sbatch_arg and args.format != "slurm":
        raise ProbeError("--sbatch-arg is for --dry-run --format slurm.")
    if args.dry_run and args.format == "slurm":
        from cotbal_plugin.probe.slurm import write_slurm

        if args.gpus or args.parallel:
            raise ProbeError("--gpus / --parallel place jobs on this machine; Slurm places them: use --gpus-per-job.")
        path = Path(args.manifest)
        path = path / "manifest.json" if path.is_dir() else path
        submit = write_slurm(
            path, manifest, jobs, gpus_per_job=1 if args.gpus_per_job is None else args.gpus_per_job,
            predict_gpus_per_job=args.predict_gpus_per_job, sbatch_args=args.sbatch_arg,
        )  # fmt: skip
        say(args, f"wrote {submit} and {submit.parent / 'slurm'}/; submit with: bash {submit}")
        return 0
    if args.dry_run:
        for job in jobs:
            print(f"{'done   ' if is_done(job) else 'pending'}  {job['name']}  {job['yaml']}")
        return 0
    gpus = [g.strip() for g in args.gpus.split(",")] if args.gpus is not None else None
    make_pool(args.parallel, gpus, args.gpus_per_job, args.predict_gpus_per_job)  # bad options before anything runs
    launcher = resolve_launcher(args.launcher) if any(not j.get("argv") for j in jobs) else []
    summary = run_jobs(
        jobs, launcher, force=args.force, progress=progress_of(args), parallel=args.parallel, gpus=gpus,
        gpus_per_job=args.gpus_per_job, predict_gpus_per_job=args.predict_gpus_per_job, all_jobs=manifest["jobs"],
    )  # fmt: skip
    say(args, summary.format())
    return 0
