"""``cotbal weights``: scores.json → weights.json (C, C_out, C_in, D and every λ, eqs. 3-11)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import examples, output_file, positive_float, say

NAME = "weights"
HELP = "compute CoTBal task weights from probe scores (scores.json → weights.json)"
EPILOG = examples(
    "cotbal weights --scores probe/scores.json --out weights.json",
    "cotbal weights --scores probe/scores.json --temperature 1.0 --fixed sharegpt --out weights.json",
    "cotbal weights --scores scores.json --difficulty precise --strategy C --clip --out -   # JSON on stdout",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cotbal weights``."""
    parser.epilog = EPILOG
    parser.add_argument(
        "--scores", required=True, type=Path, metavar="FILE", help="scores.json ({run: {task: score}})"
    )
    parser.add_argument(
        "--temperature", type=positive_float, default=0.5, metavar="T", help="softmax temperature T > 0 (default 0.5)"
    )
    parser.add_argument(
        "--out", required=True, type=output_file, metavar="FILE", help="weights.json to write (- for stdout)"
    )
    parser.add_argument(
        "--strategy", default="cotbal", choices=["out", "in", "C", "D", "cotbal"], help="which λ to train with"
    )
    parser.add_argument(
        "--difficulty", default="real", choices=["real", "precise", "chat"],
        help="real (eq. 9), precise (eq. 17: runs TASK, mini_TASK) or chat form (eqs. 15-16: base, TASK, mini_TASK)",
    )  # fmt: skip
    parser.add_argument("--tasks", action="append", metavar="TASK[,TASK]", help="balanced tasks (default: all scored)")
    parser.add_argument(
        "--fixed", action="append", metavar="TASK[=WEIGHT]",
        help="task with a fixed weight, not balanced (WEIGHT defaults to 1.0; e.g. --fixed sharegpt), as in "
        "`cotbal plan --fixed`",
    )  # fmt: skip
    parser.add_argument("--clip", action="store_true", help="clip balanced weights to [0.5, 2.0]")


def run(args: argparse.Namespace) -> int:
    """Compute and write the weights, print them."""
    from cotbal_plugin.files import check_output_file, is_stdout, write_json
    from cotbal_plugin.probe.balance import compute_weights
    from cotbal_plugin.probe.cliargs import fixed_tasks, names
    from cotbal_plugin.probe.errors import ProbeError
    from cotbal_plugin.probe.scores import load_scores

    check_output_file(args.out, "--out")
    scores = load_scores(args.scores, "--scores")
    tasks = names(args.tasks)
    scored = sorted({t for per_task in scores.values() for t in per_task})
    unknown = [t for t in tasks if t not in scored]
    if unknown:
        raise ProbeError(
            f"--tasks names task(s) {unknown} that no run of --scores {str(args.scores)!r} scored; "
            f"scored tasks: {scored}."
        )
    result = compute_weights(
        scores,
        temperature=args.temperature,
        strategy=args.strategy,
        variant=args.difficulty,
        tasks=tasks or None,
        fixed=fixed_tasks(args.fixed, "--fixed"),
        clip=args.clip,
    )
    write_json(args.out, result, "--out")
    width = max(len(t) for t in result["weights"])
    for task, weight in result["weights"].items():
        note = "  (fixed)" if task in result["fixed"] else ""
        say(args, f"{task:<{width}}  {weight:.4f}{note}")
    target = "standard output" if is_stdout(args.out) else args.out
    say(args, f"wrote {target} (method {result['method']}, T={result['temperature']})")
    return 0
