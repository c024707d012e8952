"""``cotbal summary`` with one ``--table`` per seed: mean ± std table, JSON and figure (see probe/seeds.py)."""

from __future__ import annotations

import argparse


def run_seeds(args: argparse.Namespace, lower: list[str]) -> int:
    """Summarise several seeds' tables (or draw one table's figure with ``--plot``); the table goes to ``--out``."""
    from cotbal_plugin.files import STDOUT, is_stdout, write_json, write_text
    from cotbal_plugin.probe.errors import ProbeError
    from cotbal_plugin.probe.seeds import markdown_seeds, summarize_seeds
    from cotbal_plugin.probe.summary import load_table

    from ._common import say

    if args.zero_shot:
        raise ProbeError("--zero-shot takes a single --table; leave out the other seeds' tables or --plot.")
    if args.format != "markdown" or args.decimals is not None:
        raise ProbeError("--format plain and --decimals apply to a single --table; drop them for several seeds.")
    if is_stdout(args.plot):
        raise ProbeError("--plot writes a PNG: give a file name, not -.")
    result = summarize_seeds([load_table(path, "--table") for path in args.table], args.baseline, lower)
    text = markdown_seeds(result, lower)
    if args.json is not None:
        write_json(args.json, result, "--json")
    if args.out is None and not is_stdout(args.json):
        write_text(STDOUT, text, "--out")
    elif args.out is not None:
        write_text(args.out, text, "--out")
        if not is_stdout(args.out):
            say(args, text.rstrip("\n"))
    else:
        say(args, text.rstrip("\n"))
    if args.plot is not None:
        from cotbal_plugin.probe.summary_plot import plot_seed_summary

        say(args, f"wrote {plot_seed_summary(result, args.plot, lower)}")
    return 0
