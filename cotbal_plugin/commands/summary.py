"""``cotbal summary``: ΔI%, ΔE% against STL (eqs. 12-14) and ΔI_zero% against EW, as a markdown or plain table."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import examples, output_file, say

NAME = "summary"
HELP = "ΔI%, ΔE% (vs STL) and ΔI_zero% (vs EW) from per-method metric tables"
EPILOG = examples(
    "cotbal summary --table results.json                       # markdown table on stdout",
    "cotbal summary --table results.json --format plain --decimals 2",
    "cotbal summary --table results.json --zero-shot zero_shot.json --out summary.md --json summary.json",
    "cotbal summary --table results.json --json - | jq .summary.CoTBal",
) + (
    "\n\nresults.json: {method: {task: {metric: value}}} (a bare number per task is one metric). Each metric column"
    "\nhas one number format, from its scale (3 significant digits of its largest value, more when two different"
    "\nvalues would print alike); ΔI%/ΔE% have 2 decimals."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cotbal summary``."""
    parser.epilog = EPILOG
    parser.add_argument(
        "--table", required=True, type=Path, action="append", metavar="FILE",
        help="JSON {method: {task: {metric: value}}}; one per seed (repeat it) for mean ± std over seeds",
    )  # fmt: skip
    parser.add_argument("--baseline", default="STL", help="baseline method of ΔI%% / ΔE%% (STL)")
    parser.add_argument("--zero-shot", type=Path, metavar="FILE", help="JSON table of zero-shot tasks, for ΔI_zero%%")
    parser.add_argument("--zero-shot-baseline", default="EW", help="baseline of ΔI_zero%% (EW)")
    parser.add_argument(
        "--lower-better", action="append", metavar="METRIC",
        help="metric names where lower is better (besides known ones: loss, wer, cer, ter, perplexity, error, ...)",
    )  # fmt: skip
    parser.add_argument("--format", choices=["markdown", "plain"], default="markdown", help="table format (markdown)")
    parser.add_argument(
        "--decimals", type=_decimals, metavar="N", help="decimals of every metric column (default: chosen per column)"
    )
    parser.add_argument(
        "--out",
        type=output_file,
        metavar="FILE",
        help="write the table here (default: standard output; - is standard output)",
    )
    parser.add_argument(
        "--json", type=output_file, metavar="FILE", help="also write the numbers as JSON here (- for stdout)"
    )
    parser.add_argument(
        "--plot", type=output_file, metavar="FILE",
        help="also draw ΔI%%/ΔE%% and every metric (mean ± std over seeds) as a PNG here",
    )  # fmt: skip


def _decimals(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value <= 10:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 10")
    return value


def run(args: argparse.Namespace) -> int:
    """Compute and print (or write) the summary table."""
    from cotbal_plugin.files import STDOUT, check_output_file, is_stdout, write_json, write_text
    from cotbal_plugin.probe.cliargs import names
    from cotbal_plugin.probe.errors import ProbeError
    from cotbal_plugin.probe.summary import load_table, markdown, plain, summarize

    if is_stdout(args.out) and is_stdout(args.json):
        raise ProbeError("--out and --json cannot both be - (standard output carries one document).")
    for option, path in (("--out", args.out), ("--json", args.json)):
        if path is not None:
            check_output_file(path, option)
    lower = names(args.lower_better)
    if len(args.table) > 1 or args.plot:  # several seeds: mean ± std (probe/seeds.py)
        from ._summary_seeds import run_seeds

        return run_seeds(args, lower)
    table = load_table(args.table[0], "--table")
    result = summarize(table, args.baseline, lower)
    zero = None
    if args.zero_shot:
        zero = summarize(load_table(args.zero_shot, "--zero-shot"), args.zero_shot_baseline, lower)
    render = plain if args.format == "plain" else markdown
    text = render(table, result, args.baseline, zero, lower, args.decimals)
    if args.json is not None:
        write_json(args.json, {"summary": result, "zero_shot": zero}, "--json")
    if args.out is None and not is_stdout(args.json):
        write_text(STDOUT, text, "--out")  # the table is the command's output
    elif args.out is not None:
        write_text(args.out, text, "--out")
        if not is_stdout(args.out):
            say(args, text.rstrip("\n"))
    else:  # --json - and no --out: the table is only a status message (on stderr)
        say(args, text.rstrip("\n"))
    return 0
