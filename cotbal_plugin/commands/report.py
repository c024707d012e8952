"""``cotbal report``: heatmap of C, bars of D and of the λs, and a markdown table, from weights.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import examples, output_dir, say

NAME = "report"
HELP = "figures (PNG) and a markdown table from weights.json"
EPILOG = examples(
    "cotbal report --weights weights.json --out probe/report/",
    'cotbal report --weights hand_written.json --out report/   # only {"weights": {...}}: weight bars and table',
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cotbal report``."""
    parser.epilog = EPILOG
    parser.add_argument(
        "--weights", type=Path, metavar="FILE",
        help="weights.json (from `cotbal weights` or by hand); required unless --trainer-state is given",
    )  # fmt: skip
    parser.add_argument(
        "--out",
        required=True,
        type=output_dir,
        metavar="DIR",
        help="output folder (report.md and PNG figures; created)",
    )
    parser.add_argument(
        "--trainer-state", type=Path, metavar="OUTPUT_DIR",
        help="output_dir of a finished `loss: cotbal` training (or its trainer_state.json): adds task_curves.png, "
        "its per-task loss and weight curves",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Write the report."""
    from cotbal_plugin.files import make_dir
    from cotbal_plugin.probe.curves import add_task_curves
    from cotbal_plugin.probe.errors import ProbeError
    from cotbal_plugin.probe.report import load_weights_report, write_report

    if args.weights is None and args.trainer_state is None:
        raise ProbeError("cotbal report needs --weights weights.json, --trainer-state <output_dir>, or both.")
    data = load_weights_report(args.weights, "--weights") if args.weights is not None else None
    make_dir(args.out, "--out")
    written = write_report(data, args.out) if data is not None else []
    if args.trainer_state is not None:
        written += add_task_curves(args.trainer_state, args.out)
    for path in written:
        say(args, f"wrote {path}")
    return 0
