"""``cotbal report``: heatmap of C, bars of D and of the λs, and a markdown table, from weights.json."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "report"
HELP = "figures (PNG) and a markdown table from weights.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cotbal report``."""
    parser.add_argument("--weights", required=True, type=Path, help="weights.json")
    parser.add_argument("--out", required=True, type=Path, help="output folder")


def run(args: argparse.Namespace) -> int:
    """Write the report."""
    from cotbal_plugin.probe.report import load_weights_report, write_report

    for path in write_report(load_weights_report(args.weights), args.out):
        print(f"wrote {path}")
    return 0
