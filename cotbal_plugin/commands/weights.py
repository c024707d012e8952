"""``cotbal weights``: scores.json → weights.json (C, C_out, C_in, D and every λ, eqs. 3-11)."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "weights"
HELP = "compute CoTBal task weights from probe scores (scores.json → weights.json)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cotbal weights``."""
    parser.add_argument("--scores", required=True, type=Path, help="scores.json ({run: {task: score}})")
    parser.add_argument("--temperature", type=float, default=0.5, help="softmax temperature T (0.5)")
    parser.add_argument("--out", required=True, type=Path, help="weights.json to write")
    parser.add_argument(
        "--strategy", default="cotbal", choices=["out", "in", "C", "D", "cotbal"], help="which λ to train with"
    )
    parser.add_argument(
        "--difficulty", default="real", choices=["real", "precise", "chat"],
        help="real (eq. 9), precise (eq. 17: runs TASK, mini_TASK) or chat form (eqs. 15-16: base, TASK, mini_TASK)",
    )  # fmt: skip
    parser.add_argument("--tasks", action="append", metavar="TASK[,TASK]", help="balanced tasks (default: all scored)")
    parser.add_argument(
        "--fixed", action="append", metavar="TASK=WEIGHT", help="task with a fixed weight, not balanced (sharegpt=1.0)"
    )
    parser.add_argument("--clip", action="store_true", help="clip balanced weights to [0.5, 2.0]")


def run(args: argparse.Namespace) -> int:
    """Compute and write the weights, print them."""
    from cotbal_plugin.probe.balance import compute_weights
    from cotbal_plugin.probe.cliargs import key_floats, names
    from cotbal_plugin.probe.evaluate import write_json
    from cotbal_plugin.probe.scores import load_scores

    result = compute_weights(
        load_scores(args.scores),
        temperature=args.temperature,
        strategy=args.strategy,
        variant=args.difficulty,
        tasks=names(args.tasks) or None,
        fixed=key_floats(args.fixed, "--fixed"),
        clip=args.clip,
    )
    write_json(args.out, result)
    width = max(len(t) for t in result["weights"])
    for task, weight in result["weights"].items():
        note = "  (fixed)" if task in result["fixed"] else ""
        print(f"{task:<{width}}  {weight:.4f}{note}")
    print(f"wrote {args.out} (method {result['method']}, T={result['temperature']})")
    return 0
