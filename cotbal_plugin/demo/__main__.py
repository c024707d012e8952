"""``python -m cotbal_plugin.demo [--quick] [--out DIR] [--overwrite]``: the whole CoTBal pipeline on CPU.

See :mod:`cotbal_plugin.demo.pipeline` and docs/demo.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    """Options of the demo."""
    parser = argparse.ArgumentParser(
        prog="python -m cotbal_plugin.demo",
        description="CoTBal end to end on a tiny LLaVA and a synthetic shapes benchmark, on CPU: probes, weights, "
        "report, a `loss: cotbal` training, an EW training, STL baselines and the ΔI%/ΔE% summary.",
    )
    parser.add_argument("--quick", action="store_true", help="3 tasks, fewer samples (about 2 min instead of about 8)")
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (demo_out)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier demo run with other settings in --out"
    )
    parser.add_argument("--no-stl", action="store_true", help="skip the STL baselines (ΔI%%/ΔE%% are then against EW)")
    parser.add_argument("--seed", type=int, help="seed of data, model, subsets and training (0)")
    parser.add_argument(
        "--launcher", choices=["fork", "plain"], default="fork",
        help="fork: run the jobs through a fork server that imports LLaMA-Factory once (default); "
        "plain: `llamafactory-cli train` per job (same numbers, ~6 s slower per job)",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns 0, 1 (a failed step) or 2 (a user error)."""
    from .pipeline import DemoError, run_demo, settings_for

    args = build_parser().parse_args(argv)
    try:
        settings = settings_for(args.quick, seed=args.seed, stl=False if args.no_stl else None)
        run_demo(args.out, settings, overwrite=args.overwrite, launcher=args.launcher, progress=not args.no_progress)
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
