"""Time every ``cotbal eval`` metric on N synthetic predictions (default 10,000), and CIDEr-D against pycocoevalcap.

    .venv/bin/python benchmarks/bench_metrics.py [--n 10000] [--long-words 100] [--reps 3] [--vocab 0] [--quick]

Part 1, CIDEr-D side by side: cotbal's vectorised ``cider`` and pycocoevalcap's ``Cider().compute_score`` on the
same 100-word captions (``--long-words``), interleaved over ``--reps`` rounds; both scores are printed and must
agree (the script stops otherwise). Part 2: one row per metric, short answers for em / vqa (vqa with 10
reference answers), ~12-word captions for the text metrics and ``--long-words`` captions for CIDEr-D / BLEU /
ROUGE-L / GLEU, boxes for iou_acc / miou. ``--vocab N`` draws words from a Zipf-distributed vocabulary of N
synthetic words instead of the 40 everyday words (more distinct n-grams). Wall-clock and CPU seconds (CPU time
of this process and its Java child, less sensitive to other jobs on a shared machine). Writes
``benchmarks/results/bench_metrics.json``. Not a test: nothing asserts on a time.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import time
from collections.abc import Callable

from _common import machine, median, table, write_results

from cotbal_plugin.probe.metrics import METRICS, caption, score

WORDS = (
    "a the man woman dog cat red blue green small large sits runs on in near under table street grass car bike "
    "holding wearing two three white black young old standing next to building tree water sky field room"
).split()
ANSWERS = ["yes", "no", "2", "3", "red", "blue", "dog", "cat", "left", "right", "table", "1"]


class Words:
    """Word sampler: the 40 everyday words, or a Zipf(1) vocabulary of ``size`` synthetic words."""

    def __init__(self, rng: random.Random, size: int) -> None:
        self.rng = rng
        self.vocab = WORDS if size <= 0 else [f"w{k}" for k in range(size)]
        self.weights = None if size <= 0 else [1.0 / (k + 1) for k in range(size)]

    def sentence(self, n: int) -> str:
        if self.weights is None:
            words = [self.rng.choice(self.vocab) for _ in range(n)]
        else:
            words = self.rng.choices(self.vocab, weights=self.weights, k=n)
        return " ".join(words).capitalize() + "."


def box(rng: random.Random) -> str:
    x, y = rng.random() * 0.6, rng.random() * 0.6
    return f"[{x:.2f}, {y:.2f}, {x + rng.random() * 0.4:.2f}, {y + rng.random() * 0.4:.2f}]"


def data(metric: str, n: int, rng: random.Random, words: int, vocab: int) -> tuple[list[str], list[str]]:
    if metric == "em":
        return [rng.choice(ANSWERS) for _ in range(n)], [rng.choice(ANSWERS) for _ in range(n)]
    if metric == "vqa":
        labels = [json.dumps([rng.choice(ANSWERS) for _ in range(10)]) for _ in range(n)]
        return [rng.choice(ANSWERS) for _ in range(n)], labels
    if metric in ("iou_acc", "miou"):
        preds = [box(rng) if rng.random() > 0.02 else "no box" for _ in range(n)]
        return preds, [box(rng) for _ in range(n)]
    w = Words(rng, vocab)
    return [w.sentence(words) for _ in range(n)], [w.sentence(words) for _ in range(n)]


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the Java PTB tokenizer of the *_coco metrics)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(fn: Callable[[], float]) -> tuple[float, float, float]:
    caption._PTB_CACHE.clear()  # every *_coco row pays its own Java run
    wall, cpu = time.perf_counter(), cpu_seconds()
    value = fn()
    return value, time.perf_counter() - wall, cpu_seconds() - cpu


def cider_side_by_side(n: int, words: int, vocab: int, reps: int) -> dict:
    from pycocoevalcap.cider.cider import Cider

    preds, labels = data("cider", n, random.Random(0), words, vocab)
    gts = {i: [label] for i, label in enumerate(labels)}
    res = {i: [p] for i, p in enumerate(preds)}
    variants = {
        "cotbal cider": lambda: score("cider", preds, labels).value,
        "pycocoevalcap Cider": lambda: float(Cider().compute_score(gts, res)[0]),
    }
    samples: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": [], "value": []} for k in variants}
    order = list(variants)
    for rep in range(reps):
        for name in order[rep % 2 :] + order[: rep % 2]:  # alternate which one runs first
            value, wall, cpu = timed(variants[name])
            samples[name]["wall"].append(wall)
            samples[name]["cpu"].append(cpu)
            samples[name]["value"].append(value)
    ours, ref = samples["cotbal cider"]["value"][0], samples["pycocoevalcap Cider"]["value"][0]
    if abs(ours - ref) > 1e-9:
        raise SystemExit(f"CIDEr-D differs: cotbal {ours!r} vs pycocoevalcap {ref!r}")
    rows = []
    for name, s in samples.items():
        rows.append([name, f"{s['value'][0]:.12f}", f"{median(s['wall']):.2f}", f"{min(s['wall']):.2f}",
                     f"{median(s['cpu']):.2f}"])  # fmt: skip
    speedup = median(samples["pycocoevalcap Cider"]["cpu"]) / median(samples["cotbal cider"]["cpu"])
    print(f"\nCIDEr-D, {n} predictions of {words}-word captions, 1 reference each, {reps} interleaved rounds")
    print(table(["implementation", "score", "wall s (median)", "wall s (min)", "CPU s (median)"], rows))
    print(f"speed-up (CPU medians): {speedup:.1f}x; |difference of scores| = {abs(ours - ref):.1e}")
    return {"samples": samples, "speedup_cpu": speedup, "abs_difference": abs(ours - ref)}


def all_metrics(n: int, words: int, vocab: int) -> list[dict]:
    cases = [(m, 12) for m in METRICS] + [(m, words) for m in ("cider", "cider_words", "bleu", "rouge_l", "gleu")]
    if shutil.which("java"):
        cases.append(("cider_coco", words))
    else:
        cases = [(m, w) for m, w in cases if not m.endswith("_coco")]
        print("(no Java: cider_coco / bleu_coco not timed)")
    out, rows = [], []
    for metric, w in cases:
        preds, labels = data(metric, n, random.Random(0), w, vocab)
        value, wall, cpu = timed(lambda m=metric, p=preds, lab=labels: score(m, p, lab).value)
        kind = {"em": "short answers", "vqa": "short answers, 10 refs", "iou_acc": "boxes", "miou": "boxes"}.get(
            metric, f"{w}-word captions"
        )
        rows.append([metric, kind, f"{wall:.2f}", f"{cpu:.2f}", f"{n / wall:,.0f}"])
        out.append({"metric": metric, "input": kind, "wall_s": wall, "cpu_s": cpu, "value": value})
    print(f"\nEvery metric, {n} predictions")
    print(table(["metric", "input", "wall s", "CPU s", "predictions/s"], rows))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--long-words", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--vocab", type=int, default=0, help="Zipf vocabulary size (0: the 40 everyday words)")
    parser.add_argument("--quick", action="store_true", help="n = 2000, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.n, args.reps = 2000, 1
    info = machine()
    print(f"{info['cpu']} ({info['cpu_count']} cores), Python {info['python']}, load {info['load_average']}")
    side = cider_side_by_side(args.n, args.long_words, args.vocab, args.reps)
    rows = all_metrics(args.n, args.long_words, args.vocab)
    info["load_average_end"] = machine()["load_average"]
    path = write_results("bench_metrics", {"machine": info, "cider_side_by_side": side, "metrics": rows})
    print(f"\nload average at the end: {info['load_average_end']}; raw samples: {path}")


if __name__ == "__main__":
    main()
