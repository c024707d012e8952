"""``cotbal summary``: ΔI%, ΔE% against STL (eqs. 12-14) and ΔI_zero% against EW, as a markdown table."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "summary"
HELP = "ΔI%, ΔE% (vs STL) and ΔI_zero% (vs EW) from per-method metric tables"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cotbal summary``."""
    parser.add_argument(
        "--table", required=True, type=Path, action="append",
        help="JSON {method: {task: {metric: value}}}; one per seed (repeat it) for mean ± std over seeds",
    )  # fmt: skip
    parser.add_argument("--baseline", default="STL", help="baseline method of ΔI%% / ΔE%% (STL)")
    parser.add_argument("--zero-shot", type=Path, help="JSON table of zero-shot tasks, for ΔI_zero%%")
    parser.add_argument("--zero-shot-baseline", default="EW", help="baseline of ΔI_zero%% (EW)")
    parser.add_argument(
        "--lower-better", action="append", metavar="METRIC",
        help="metric names where lower is better (besides known ones: loss, wer, cer, ter, perplexity, error, ...)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    parser.add_argument("--plot", type=Path, help="also draw ΔI%%/ΔE%% and every metric (mean ± std over seeds) here")


def run(args: argparse.Namespace) -> int:
    """Compute and print the summary table."""
    from cotbal_plugin.probe.cliargs import names
    from cotbal_plugin.probe.evaluate import write_json
    from cotbal_plugin.probe.summary import load_table, markdown, summarize

    lower = names(args.lower_better)
    if len(args.table) > 1 or args.plot:  # several seeds: mean ± std (probe/seeds.py)
        from ._summary_seeds import run_seeds

        return run_seeds(args, lower)
    table = load_table(args.table[0])
    result = summarize(table, args.baseline, lower)
    zero = None
    if args.zero_shot:
        zero = summarize(load_table(args.zero_shot), args.zero_shot_baseline, lower)
    text = markdown(table, result, args.baseline, zero, lower)
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    if args.json:
        write_json(args.json, {"summary": result, "zero_shot": zero})
    return 0
