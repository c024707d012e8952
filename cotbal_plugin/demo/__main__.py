"""``python -m cotbal_plugin.demo [--quick] [--out DIR] [--overwrite] [--seeds 0,1,2] [--jobs N]``: CoTBal on CPU.

See :mod:`cotbal_plugin.demo.pipeline` and docs/demo.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    """Options of the demo."""
    parser = argparse.ArgumentParser(
        prog="python -m cotbal_plugin.demo",
        description="CoTBal end to end on a tiny LLaVA and a synthetic shapes benchmark, on CPU, over several seeds: "
        "probes, weights, report, final trainings with `loss: cotbal` (CoTBal, EW, TLA), STL baselines, and "
        "mean ± std of every metric and of ΔI%%/ΔE%%.",
    )
    parser.add_argument("--quick", action="store_true", help="1 seed, fewer samples (a few minutes instead of ~15)")
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (demo_out)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier demo run with other settings in --out"
    )
    parser.add_argument("--no-stl", action="store_true", help="skip the STL baselines (ΔI%%/ΔE%% are then against EW)")
    parser.add_argument(
        "--seeds", type=_seeds, help="comma-separated seeds of subsets and training (full: 0,1,2; quick: 0)"
    )
    parser.add_argument(
        "--jobs", type=int,
        help="training / prediction jobs run side by side, one thread each (default: the number of cores, at most 4)",
    )  # fmt: skip
    parser.add_argument(
        "--launcher", choices=["fork", "plain"], default="fork",
        help="fork: run the jobs through a fork server that imports LLaMA-Factory once (default); "
        "plain: `llamafactory-cli train` per job (same numbers, ~6 s slower per job)",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more distinct seeds, e.g. 0,1,2")
    return seeds


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns 0, 1 (a failed step) or 2 (a user error)."""
    from .pipeline import DemoError, run_demo, settings_for

    args = build_parser().parse_args(argv)
    try:
        settings = settings_for(args.quick, seeds=args.seeds, stl=False if args.no_stl else None)
        jobs = args.jobs if args.jobs is not None else max(1, min(os.cpu_count() or 1, 4))
        run_demo(args.out, settings, overwrite=args.overwrite, launcher=args.launcher, progress=not args.no_progress,
                 jobs=jobs)  # fmt: skip
    except DemoError as err:
        print(f"cotbal demo: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        print(f"cotbal demo: failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cotbal demo: interrupted (run the same command again to resume)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
