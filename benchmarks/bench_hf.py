"""What ``cotbal_plugin.hf`` costs beside the stock HF ``Trainer``: the collator wrapper, and training steps.

    .venv/bin/python benchmarks/bench_hf.py [--quick] [--reps 5] [--max-steps 48]

1. **Collator** (in-process, no model): ``TaskLabelCollator`` around ``DataCollatorForSeq2Seq`` vs the bare
   collator, on batches of 16 examples of 64–1,024 tokens (prompt masked, random tasks out of 8), and around TRL's
   padding-free ``DataCollatorForLanguageModeling`` (one row, one task per token). Times per batch; the variants
   alternate batch by batch.
2. **Training** (in-process): ``CotbalTrainer`` (static weights) vs ``transformers.Trainer`` on a tiny Llama
   (2 layers, hidden 128, vocabulary 2,000; ``bench_train.build_workspace``: tasks ``short`` with 8-word and
   ``long`` with 120-word answers), batch 8, fp32 SGD, CPU, ``OMP_NUM_THREADS=1``, shuffled; speed from
   ``train_runtime`` (the HF loop only). Repetitions interleave the two variants in a rotated order; the ratio
   is the median of the per-repetition ratios. Sanity check printed: ``ew`` reproduces the stock ``train_loss``.

Not a test: nothing is asserted on times.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as C

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(C.ROOT))


def collator_figures(reps: int, batches: int) -> dict[str, Any]:
    """Per-batch time of the wrapped vs the bare collator (padded, and TRL padding-free)."""
    import torch
    from transformers import DataCollatorForSeq2Seq, PreTrainedTokenizerFast
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from cotbal_plugin.hf import TaskLabelCollator

    torch.set_num_threads(1)
    rng = random.Random(0)
    tasks = [f"task{i}" for i in range(8)]

    def example() -> dict[str, Any]:
        n = rng.randint(64, 1024)
        prompt = rng.randint(8, n // 2)
        ids = [rng.randrange(4, 2000) for _ in range(n)]
        return {"input_ids": ids, "labels": [-100] * prompt + ids[prompt:], "task": rng.choice(tasks)}

    from tokenizers import Tokenizer, models

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<pad>": 0}, unk_token="<pad>")))
    tok.pad_token = "<pad>"
    pools = [[example() for _ in range(16)] for _ in range(batches)]
    setups = {
        "padded": DataCollatorForSeq2Seq(tok, label_pad_token_id=-100),
        "padding_free": DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True),
    }
    out: dict[str, Any] = {}
    for name, inner in setups.items():
        wrapped = TaskLabelCollator(inner, "task", tasks)
        bare, ours = [], []
        for rep in range(reps):
            for feats in pools:
                plain = [{k: v for k, v in f.items() if k != "task"} for f in feats]
                order = [("bare", inner, plain), ("ours", wrapped, feats)]
                for label, fn, data in C.rotate(order, rep):
                    t0 = time.perf_counter()
                    fn(data)
                    (bare if label == "bare" else ours).append(time.perf_counter() - t0)
        paired = [o / b for o, b in zip(ours, bare)]
        out[name] = {
            "bare_ms": C.median(bare) * 1e3,
            "wrapped_ms": C.median(ours) * 1e3,
            "extra_ms": (C.median(ours) - C.median(bare)) * 1e3,
            "ratio_paired": C.median(paired),
            "ratio_spread": C.spread(paired),
            "tokens_per_batch": C.median([sum(len(f["input_ids"]) for f in p) for p in pools]),
        }
    return out


def training_figures(root: Path, reps: int, max_steps: int) -> dict[str, Any]:
    """train_runtime of CotbalTrainer (static, ew) vs the stock Trainer, interleaved."""
    import datasets
    from bench_train import build_workspace
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from cotbal_plugin.hf import CotbalTrainer
    from cotbal_plugin.testing.workspace import text_task_samples

    build_workspace(root)
    tok = AutoTokenizer.from_pretrained(root / "model")
    rows = []
    for task, length in (("short", 8), ("long", 120)):
        for s in text_task_samples(task, 256, length, seed=0):
            prompt = [tok.bos_token_id] + tok(s["instruction"] + " ->")["input_ids"]
            answer = tok(" " + s["output"])["input_ids"] + [tok.eos_token_id]
            rows.append({"input_ids": prompt + answer, "labels": [-100] * len(prompt) + answer, "task": task})
    data = datasets.Dataset.from_list(rows)

    def run(variant: str) -> dict[str, float]:
        args = TrainingArguments(
            output_dir=str(root / "out"), per_device_train_batch_size=8, learning_rate=0.1, optim="sgd",
            lr_scheduler_type="constant", max_grad_norm=0.0, max_steps=max_steps, seed=0, logging_steps=10,
            save_strategy="no", report_to="none", use_cpu=True, bf16=False, fp16=False, disable_tqdm=True,
        )  # fmt: skip
        kw: dict[str, Any] = {
            "model": AutoModelForCausalLM.from_pretrained(root / "model"),
            "args": args,
            "train_dataset": data,
            "data_collator": DataCollatorForSeq2Seq(tok, label_pad_token_id=-100),
        }
        if variant == "stock":
            trainer = Trainer(**kw)
        elif variant == "static":
            trainer = CotbalTrainer(**kw, cotbal_weights={"short": 2.0, "long": 0.5})
        else:
            trainer = CotbalTrainer(**kw, cotbal_weighting=variant)
        result = trainer.train()
        return {"train_runtime": result.metrics["train_runtime"], "train_loss": result.metrics["train_loss"]}

    variants = ["stock", "static", "ew"]
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for rep in range(reps):
        for v in C.rotate(variants, rep):
            runs[v].append(run(v))
            print(f"  rep {rep} {v:6s} train_runtime {runs[v][-1]['train_runtime']:.2f} s", flush=True)
    stock = [r["train_runtime"] for r in runs["stock"]]
    out: dict[str, Any] = {}
    for v in variants:
        rt = [r["train_runtime"] for r in runs[v]]
        paired = [x / s for x, s in zip(rt, stock)]
        out[v] = {
            "runs": runs[v],
            "ms_per_step": C.median(rt) * 1e3 / max_steps,
            "ratio_paired": C.median(paired),
            "ratio_spread": C.spread(paired),
            "train_loss": runs[v][0]["train_loss"],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and steps (~2 min)")
    parser.add_argument("--reps", type=int, default=None, help="training repetitions (default 5, --quick 3)")
    parser.add_argument("--max-steps", type=int, default=None, help="steps per training run (default 48, --quick 24)")
    args = parser.parse_args()
    reps = args.reps or (3 if args.quick else 5)
    max_steps = args.max_steps or (24 if args.quick else 48)
    machine = C.machine()
    print(f"bench_hf: {machine['cpu']} ({machine['cpu_count']} cores), load {machine['load_average']}", flush=True)
    collate = collator_figures(reps=3 if args.quick else 10, batches=20)
    root = Path(tempfile.mkdtemp(prefix="cotbal-bench-hf-"))
    try:
        train = training_figures(root, reps, max_steps)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(
        C.table(
            ["collator (16 examples, 64–1,024 tokens)", "bare ms/batch", "wrapped ms/batch", "extra ms", "ratio"],
            [
                [k, f"{v['bare_ms']:.2f}", f"{v['wrapped_ms']:.2f}", f"{v['extra_ms']:.2f}",
                 f"{v['ratio_paired']:.3f} ± {v['ratio_spread'] * 100:.1f} %"]
                for k, v in collate.items()
            ],
        )
    )  # fmt: skip
    print()
    print(
        C.table(
            ["training variant", "ms/step (median)", "time ratio vs stock (paired ± MAD)", "train_loss"],
            [
                [k, f"{v['ms_per_step']:.1f}", f"{v['ratio_paired']:.3f} ± {v['ratio_spread'] * 100:.1f} %",
                 f"{v['train_loss']:.6f}"]
                for k, v in train.items()
            ],
        )
    )  # fmt: skip
    path = C.write_results("bench_hf", {"machine": machine, "collator": collate, "training": train})
    print(f"\nresults: {path}  (load at the end: {C.load_average()})")


if __name__ == "__main__":
    main()
