"""``cotbal summary`` with one ``--table`` per seed: mean ± std table, JSON and figure (see probe/seeds.py)."""

from __future__ import annotations

import argparse


def run_seeds(args: argparse.Namespace, lower: list[str]) -> int:
    """Summarise several seeds' tables (or draw one table's figure with ``--plot``); prints the markdown table."""
    from cotbal_plugin.probe.errors import ProbeError
    from cotbal_plugin.probe.evaluate import write_json
    from cotbal_plugin.probe.seeds import markdown_seeds, summarize_seeds
    from cotbal_plugin.probe.summary import load_table

    if args.zero_shot:
        raise ProbeError("--zero-shot takes a single --table; leave out the other seeds' tables or --plot.")
    result = summarize_seeds([load_table(path) for path in args.table], args.baseline, lower)
    text = markdown_seeds(result, lower)
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    if args.json:
        write_json(args.json, result)
    if args.plot:
        from cotbal_plugin.probe.summary_plot import plot_seed_summary

        print(f"wrote {plot_seed_summary(result, args.plot, lower)}")
    return 0
