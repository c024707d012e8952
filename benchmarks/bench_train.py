"""End-to-end training speed through the real ``llamafactory-cli train``: loss: cotbal (every weighting) vs stock.

    .venv/bin/python benchmarks/bench_train.py [--quick] [--reps 5] [--max-steps 48] [--methods static ew ...]

Builds once, in a temporary folder, a tiny Llama (2 layers, hidden 128, vocabulary 2,000; ``build_tiny_llama``)
and two alpaca tasks (``short``: 8-word answers, ``long``: 120-word answers, 256 samples each), then runs
``llamafactory-cli train`` in subprocesses exactly like ``cotbal_plugin.testing.workspace.run_train`` (CPU,
``OMP_NUM_THREADS=1``, fp32, SGD, ``sft_config``) with batch 8, ``cutoff_len`` 512, shuffled data (so every
step mixes both tasks), ``logging_steps`` 10, no checkpoints:

- ``stock``: no plugin key (LLaMA-Factory's own trainer and loss; the plugin is installed but inert);
- ``static``: ``loss: cotbal`` + ``cotbal_weights`` (short 2.0, long 0.5);
- ``ew``, ``tla``, ``rlw``, ``dwa``, ``igb``: ``loss: cotbal`` + ``cotbal_weighting: <method>``; ``dwa`` and ``igb``
  with a window of 4 steps (defaults 25 and 100 would keep every weight at 1 for the whole short run), so their
  weights change from step 9 on, as in a long run.

Speed is read from the run's ``train_results.json`` (``train_runtime``: the HF training loop only, so model
loading, data preprocessing and interpreter start-up are excluded; ``train_steps_per_second`` = steps / that).
The variants run interleaved — each repetition runs every variant once, in an order rotated from one repetition
to the next — and the ratio of a variant is the median over repetitions of its runtime divided by the stock
runtime of the same repetition (plus the ratio of the medians). Sanity check printed with the table: ``ew``
(equal weights) must give the stock ``train_loss``. Not a test: nothing is asserted on times.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as C

from cotbal_plugin.testing.workspace import all_text, run_train, sft_config, write_text_tasks, write_yaml

TARGET = 1.05
TASKS = {"short": 8, "long": 120}
SAMPLES = 256
METHODS = ["static", "ew", "tla", "rlw", "dwa", "igb"]
WINDOW = 4


def build_workspace(root: Path) -> None:
    """Tiny Llama (vocabulary 2,000, hidden 128) + the two tasks + weights.json."""
    from cotbal_plugin.testing.tiny import build_tiny_llama

    write_text_tasks(root / "data", TASKS, n=SAMPLES)
    rng = random.Random(0)  # extra pseudo-words so the BPE vocabulary reaches 2,000 entries
    letters = "abcdefghijklmnopqrstuvwxyz"
    filler = [
        " ".join("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(20))
        for _ in range(3000)
    ]
    build_tiny_llama(root / "model", all_text(TASKS, n=SAMPLES) + filler, vocab_size=2000, hidden_size=128)
    (root / "weights.json").write_text(json.dumps({"weights": {"short": 2.0, "long": 0.5}}), encoding="utf-8")


def variant_config(root: Path, variant: str, out: Path, max_steps: int) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if variant == "static":
        extra = {"loss": "cotbal", "cotbal_weights": str(root / "weights.json")}
    elif variant != "stock":
        extra = {"loss": "cotbal", "cotbal_weighting": variant}
        if variant in ("dwa", "igb"):  # short windows, so the weights really move within the run (from step 9)
            extra[f"cotbal_{variant}_window"] = WINDOW
    return sft_config(
        root / "model",
        root / "data",
        out,
        dataset=",".join(TASKS),
        max_steps=max_steps,
        per_device_train_batch_size=8,
        cutoff_len=512,
        disable_shuffling=False,
        logging_steps=10,
        **extra,
    )


def run_variant(root: Path, variant: str, rep: int, max_steps: int) -> dict[str, Any]:
    out = root / "runs" / f"{variant}-{rep}"
    yaml_path = write_yaml(root / "yaml" / f"{variant}-{rep}.yaml", variant_config(root, variant, out, max_steps))
    t0 = time.perf_counter()
    proc = run_train(yaml_path)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:])
        raise SystemExit(f"bench_train: {variant} (repetition {rep}) failed with exit code {proc.returncode}")
    results = json.loads((out / "train_results.json").read_text(encoding="utf-8"))
    shutil.rmtree(out, ignore_errors=True)  # the saved model is not needed
    return {
        "train_runtime": float(results["train_runtime"]),
        "train_steps_per_second": float(results["train_steps_per_second"]),
        "train_loss": float(results["train_loss"]),
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stock, static, dwa; 3 repetitions of 30 steps (< 2 min)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 5, --quick 3)")
    parser.add_argument("--max-steps", type=int, default=None, help="optimizer steps per run (default 48, --quick 30)")
    parser.add_argument("--methods", nargs="+", default=None, choices=METHODS, help="cotbal variants to compare")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    args = parser.parse_args()
    reps = args.reps or (3 if args.quick else 5)
    max_steps = args.max_steps or (30 if args.quick else 48)
    methods = args.methods or (["static", "dwa"] if args.quick else METHODS)
    variants = ["stock"] + methods
    machine = C.machine()
    print(
        f"bench_train: {len(variants)} variants x {reps} interleaved repetitions, {max_steps} steps each; "
        f"{machine['cpu']} ({machine['cpu_count']} cores), load {machine['load_average']}",
        flush=True,
    )
    root = Path(tempfile.mkdtemp(prefix="cotbal-bench-train-"))
    started = time.perf_counter()
    try:
        build_workspace(root)
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        for rep in range(reps):
            for v in C.rotate(variants, rep):
                r = run_variant(root, v, rep, max_steps)
                runs[v].append(r)
                print(
                    f"  rep {rep} {v:6s} train_runtime {r['train_runtime']:.2f} s "
                    f"({r['train_steps_per_second']:.2f} steps/s, wall {r['wall_s']:.1f} s)",
                    flush=True,
                )
    finally:
        if args.keep:
            print(f"workspace kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    stock_rt = [r["train_runtime"] for r in runs["stock"]]
    rows, summary = [], {}
    for v in variants:
        rt = [r["train_runtime"] for r in runs[v]]
        sps = [r["train_steps_per_second"] for r in runs[v]]
        paired = [x / s for x, s in zip(rt, stock_rt)]
        ratio = C.median(paired)
        noise = C.spread(paired)
        summary[v] = {
            "runs": runs[v],
            "median_train_runtime_s": C.median(rt),
            "median_steps_per_second": C.median(sps),
            "runtime_spread": C.spread(rt),
            "ratio_paired_median": ratio,
            "ratio_paired_spread": noise,
            "ratio_of_medians": C.median(rt) / C.median(stock_rt),
            "train_loss": runs[v][0]["train_loss"],
        }
        verdict = "—" if v == "stock" else C.verdict(ratio, TARGET, 2 * noise)
        rows.append(
            [
                v,
                f"{C.median(sps):.2f}",
                f"{C.median(rt) * 1000 / max_steps:.1f} ± {C.spread(rt) * 100:.1f} %",
                f"{ratio:.3f} ± {noise * 100:.1f} %",
                f"{summary[v]['ratio_of_medians']:.3f}",
                f"{summary[v]['train_loss']:.4f}",
                verdict,
            ]
        )
    print()
    print(
        C.table(
            [
                "variant",
                "steps/s (median)",
                "ms/step (median ± MAD)",
                "time ratio vs stock (paired)",
                "ratio of medians",
                "train_loss",
                f"target <= {TARGET}",
            ],
            rows,
        )
    )
    if "ew" in runs:
        same = abs(summary["ew"]["train_loss"] - summary["stock"]["train_loss"]) <= 1e-4 * abs(
            summary["stock"]["train_loss"]
        )
        print(
            f"\nsanity: ew train_loss {'==' if same else '!='} stock train_loss "
            f"({summary['ew']['train_loss']:.6f} vs {summary['stock']['train_loss']:.6f})"
        )
    total = time.perf_counter() - started
    print(f"total {total:.0f} s")
    path = C.write_results(
        "bench_train",
        {
            "config": {
                "reps": reps,
                "max_steps": max_steps,
                "variants": variants,
                "tasks": TASKS,
                "samples_per_task": SAMPLES,
                "model": {"hidden_size": 128, "num_layers": 2, "vocab_size": 2000},
                "batch": 8,
                "cutoff_len": 512,
                "logging_steps": 10,
                "dwa_igb_window": WINDOW,
            },
            "machine": machine,
            "load_average_end": C.load_average(),
            "target": TARGET,
            "total_seconds": total,
            "variants": summary,
        },
    )
    print(f"results: {path.relative_to(C.ROOT)}")


if __name__ == "__main__":
    main()
