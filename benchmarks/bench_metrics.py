"""Time every ``cotbal eval`` metric on N synthetic predictions (default 10,000) on this CPU.

    .venv/bin/python benchmarks/bench_metrics.py [--n 10000] [--long-words 100]

Short answers for em / vqa (vqa with 10 reference answers per question), ~12-word captions for the text metrics
(plus one run on long captions, ``--long-words`` words, for ShareGPT4V-like tasks), boxes for iou_acc / miou.
Prints one markdown row per metric: seconds and predictions per second. Not a test: no assertion.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time

from cotbal_plugin.probe.metrics import METRICS, score

WORDS = (
    "a the man woman dog cat red blue green small large sits runs on in near under table street grass car bike "
    "holding wearing two three white black young old standing next to building tree water sky field room"
).split()
ANSWERS = ["yes", "no", "2", "3", "red", "blue", "dog", "cat", "left", "right", "table", "1"]


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def box(rng: random.Random) -> str:
    x, y = rng.random() * 0.6, rng.random() * 0.6
    return f"[{x:.2f}, {y:.2f}, {x + rng.random() * 0.4:.2f}, {y + rng.random() * 0.4:.2f}]"


def data(metric: str, n: int, rng: random.Random, words: int) -> tuple[list[str], list[str]]:
    if metric == "em":
        return [rng.choice(ANSWERS) for _ in range(n)], [rng.choice(ANSWERS) for _ in range(n)]
    if metric == "vqa":
        labels = [json.dumps([rng.choice(ANSWERS) for _ in range(10)]) for _ in range(n)]
        return [rng.choice(ANSWERS) for _ in range(n)], labels
    if metric in ("iou_acc", "miou"):
        preds = [box(rng) if rng.random() > 0.02 else "no box" for _ in range(n)]
        return preds, [box(rng) for _ in range(n)]
    return [sentence(rng, words) for _ in range(n)], [sentence(rng, words) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--long-words", type=int, default=100)
    args = parser.parse_args()
    cpu = platform.processor() or platform.machine()
    print(f"{args.n} predictions per metric; {cpu}, Python {platform.python_version()}")
    print("| metric | input | seconds | predictions/s |")
    print("|---|---|---|---|")
    cases = [(m, 12) for m in METRICS] + [(m, args.long_words) for m in ("cider", "bleu", "rouge_l", "gleu")]
    for metric, words in cases:
        rng = random.Random(0)
        preds, labels = data(metric, args.n, rng, words)
        start = time.perf_counter()
        score(metric, preds, labels)
        seconds = time.perf_counter() - start
        kind = {"em": "short answers", "vqa": "short answers, 10 refs", "iou_acc": "boxes", "miou": "boxes"}.get(
            metric, f"{words}-word captions"
        )
        print(f"| {metric} | {kind} | {seconds:.2f} | {args.n / seconds:,.0f} |")


if __name__ == "__main__":
    main()
