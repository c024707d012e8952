"""``cotbal run``: run the jobs of a plan locally, one after another, resuming finished ones."""

from __future__ import annotations

import argparse

from ._common import examples, progress_of, say

NAME = "run"
HELP = "run the plan's trainings and predictions locally (llamafactory-cli train <yaml>), resumable"
EPILOG = examples(
    "cotbal run --manifest probe/manifest.json",
    "cotbal run --manifest probe/ --only train --dry-run",
    "COTBAL_LAUNCHER='srun llamafactory-cli train' cotbal run --manifest probe/",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cotbal run``."""
    parser.epilog = EPILOG
    parser.add_argument("--manifest", required=True, help="manifest.json written by `cotbal plan` (or its folder)")
    parser.add_argument(
        "--launcher", help="command run as `<launcher> <yaml>` (default: $COTBAL_LAUNCHER or 'llamafactory-cli train')"
    )
    parser.add_argument("--only", action="append", metavar="KIND", help="run only jobs of kind train, predict or stl")
    parser.add_argument("--force", action="store_true", help="re-run jobs whose outputs already exist")
    parser.add_argument("--dry-run", action="store_true", help="list the jobs and whether they are done; run nothing")


def run(args: argparse.Namespace) -> int:
    """Run (or list) the jobs."""
    from cotbal_plugin.probe.cliargs import names
    from cotbal_plugin.probe.plan import load_manifest
    from cotbal_plugin.probe.runner import is_done, resolve_launcher, run_jobs, select_jobs

    manifest = load_manifest(args.manifest)
    jobs = select_jobs(manifest["jobs"], names(args.only))
    if args.dry_run:
        for job in jobs:
            print(f"{'done   ' if is_done(job) else 'pending'}  {job['name']}  {job['yaml']}")
        return 0
    summary = run_jobs(jobs, resolve_launcher(args.launcher), force=args.force, progress=progress_of(args))
    say(args, f"ran {len(summary.ran)} job(s), skipped {len(summary.skipped)} finished job(s).")
    return 0
