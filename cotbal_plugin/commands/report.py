"""``cotbal report``: heatmap of C, bars of D and of the λs, and a markdown table, from weights.json."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "report"
HELP = "figures (PNG) and a markdown table from weights.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cotbal report``."""
    parser.add_argument("--weights", type=Path, help="weights.json (required unless --trainer-state is given)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--trainer-state", type=Path, metavar="OUTPUT_DIR",
        help="output_dir of a finished `loss: cotbal` training (or its trainer_state.json): adds task_curves.png, "
        "its per-task loss and weight curves (cotbal_plugin/probe/curves.py)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Write the report."""
    from cotbal_plugin.probe.curves import add_task_curves
    from cotbal_plugin.probe.errors import ProbeError
    from cotbal_plugin.probe.report import load_weights_report, write_report

    if args.weights is None and args.trainer_state is None:
        raise ProbeError("cotbal report needs --weights weights.json, --trainer-state <output_dir>, or both.")
    written = write_report(load_weights_report(args.weights), args.out) if args.weights is not None else []
    if args.trainer_state is not None:
        written += add_task_curves(args.trainer_state, args.out)
    for path in written:
        print(f"wrote {path}")
    return 0
