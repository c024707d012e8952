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
        "--weights", required=True, type=Path, metavar="FILE", help="weights.json (from `cotbal weights` or by hand)"
    )
    parser.add_argument(
        "--out",
        required=True,
        type=output_dir,
        metavar="DIR",
        help="output folder (report.md and PNG figures; created)",
    )


def run(args: argparse.Namespace) -> int:
    """Write the report."""
    from cotbal_plugin.files import make_dir
    from cotbal_plugin.probe.report import load_weights_report, write_report

    data = load_weights_report(args.weights, "--weights")
    make_dir(args.out, "--out")
    for path in write_report(data, args.out):
        say(args, f"wrote {path}")
    return 0
