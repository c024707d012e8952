"""LLaMA-Factory's data preprocessing with the plugin's task-id hook (loss: cotbal) vs without (stock).

    .venv/bin/python benchmarks/bench_preprocess.py [--quick] [--samples 5000] [--reps 5] [--packing]

In-process: the plugin is installed (``cotbal_plugin.install()``; the ``.pth`` file does it too), a tiny Llama
tokenizer and two alpaca tasks (``short``: 8-word answers, ``long``: 40-word answers, ``--samples`` each) are
written to a temporary folder, then each variant parses its arguments with
``llamafactory.hparams.get_train_args(dict)`` — ``stock`` without any plugin key (the hooks stay installed but
inert), ``cotbal`` with ``loss: cotbal`` + ``cotbal_weights`` (this activates the hook) — loads the tokenizer and
template, and calls ``llamafactory.data.get_dataset(..., stage="sft")`` with ``overwrite_cache: true`` (no
``datasets`` map cache is reused) and ``preprocessing_num_workers`` unset (one process). Only ``get_dataset`` is
timed: reading the JSON files (the JSON→Arrow conversion is cached by ``datasets`` in the temporary
``cache_dir`` after the first warm-up call, for both variants alike), aligning, the plugin's ``_cotbal_task``
column, tokenisation and — for cotbal — folding task ids into the labels.

Variants alternate (stock, cotbal, cotbal, stock, ...: the order is rotated each repetition) after one warm-up
call of each; reported for the wall clock and for this process's CPU time (``time.process_time()``: less
sensitive to other processes competing for the 2 cores, since preprocessing runs in this one process):
median seconds, the ratio of medians, the median of the per-repetition ratios and the ratio of the fastest runs
(the minimum is the least disturbed run of deterministic CPU-bound work).
Low-noise reading of the real cost: the hook's own work (``encode_labels`` of every row and the ``add_column``
of the task column) is also timed directly, in CPU time, on the stock rows; ``1 + that / stock`` is the ratio
it implies (it leaves out the per-batch lookup dict, which is O(rows) dictionary inserts).
Sanity check: the cotbal dataset, with task ids stripped from its labels, equals the stock dataset.
Not a test: nothing is asserted on times.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LLAMAFACTORY_VERBOSITY", "WARN")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DISABLE_VERSION_CHECK", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import _common as C  # noqa: E402

TARGET = 1.05
TASKS = {"short": 8, "long": 40}


def build_workspace(root: Path, samples: int) -> None:
    from cotbal_plugin.testing.tiny import build_tiny_llama
    from cotbal_plugin.testing.workspace import all_text, write_text_tasks

    write_text_tasks(root / "data", TASKS, n=samples)
    build_tiny_llama(root / "model", all_text(TASKS, n=200), vocab_size=1000)
    (root / "weights.json").write_text(json.dumps({"weights": {"short": 2.0, "long": 0.5}}), encoding="utf-8")


def config(root: Path, variant: str, packing: bool) -> dict[str, Any]:
    from cotbal_plugin.testing.workspace import sft_config

    extra: dict[str, Any] = (
        {"loss": "cotbal", "cotbal_weights": str(root / "weights.json")} if variant == "cotbal" else {}
    )
    if packing:
        extra["packing"] = True
    return sft_config(
        root / "model",
        root / "data",
        root / "out",
        dataset=",".join(TASKS),
        cutoff_len=256,
        overwrite_cache=True,
        cache_dir=str(root / "hf_cache"),
        **extra,
    )


def prepare(root: Path, variant: str, packing: bool) -> tuple[float, float, Any]:
    """Parse the arguments of ``variant`` and time ``get_dataset``; returns (wall s, CPU s, train dataset)."""
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    from cotbal_plugin.llamafactory import state

    model_args, data_args, training_args, finetuning_args, _ = get_train_args(config(root, variant, packing))
    assert (state.active() is not None) == (variant == "cotbal"), "the hook is not in the expected state"
    tokenizer_module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    with contextlib.redirect_stdout(io.StringIO()):  # get_dataset prints one example
        start, cpu_start = time.perf_counter(), time.process_time()
        module = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer_module)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return seconds, cpu, module["train_dataset"]


def same_data(stock: Any, cotbal: Any) -> bool:
    from cotbal_plugin.task_labels import decode_label_list

    if len(stock) != len(cotbal) or stock["input_ids"] != cotbal["input_ids"]:
        return False
    return all(decode_label_list(b)[0] == a for a, b in zip(stock["labels"], cotbal["labels"]))


def hook_work(stock: Any, reps: int) -> dict[str, float]:
    """Direct timing of the work the hook adds, on the stock dataset's rows (low-noise; min over ``reps``).

    ``encode_labels`` of every row's labels (what ``_encode_data_example`` adds per example) and
    ``Dataset.add_column`` of a task column as long as the data (what ``add_task_column`` adds per dataset).
    """
    from cotbal_plugin.task_labels import encode_labels

    labels = [list(row) for row in stock["labels"]]  # materialise first: a datasets Column converts lazily
    encode = []
    column = []
    for _ in range(reps):
        start = time.process_time()
        for i, row in enumerate(labels):
            encode_labels(row, i & 1)
        encode.append(time.process_time() - start)
        plain = stock.select_columns(["input_ids"])
        start = time.process_time()
        plain.add_column("_cotbal_task", ["short"] * len(plain))
        column.append(time.process_time() - start)
    return {"encode_labels_s": min(encode), "add_column_s": min(column)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 samples per task, 6 repetitions")
    parser.add_argument("--samples", type=int, default=None, help="samples per task (default 5000, --quick 1000)")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (default 12, --quick 6)")
    parser.add_argument("--packing", action="store_true", help="packing: true (the packed processor)")
    args = parser.parse_args()
    samples = args.samples or (1000 if args.quick else 5000)
    reps = args.reps or (6 if args.quick else 12)

    import datasets
    import transformers

    import cotbal_plugin

    cotbal_plugin.install()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()

    machine = C.machine()
    print(
        f"bench_preprocess: 2 tasks x {samples} samples{', packing' if args.packing else ''}, {reps} interleaved "
        f"repetitions; {machine['cpu']} ({machine['cpu_count']} cores), load {machine['load_average']}",
        flush=True,
    )
    variants = ["stock", "cotbal"]
    root = Path(tempfile.mkdtemp(prefix="cotbal-bench-preprocess-"))
    started = time.perf_counter()
    try:
        build_workspace(root, samples)
        warm = {v: prepare(root, v, args.packing) for v in variants}  # warm-up (JSON→Arrow cache, imports)
        identical = same_data(warm["stock"][2], warm["cotbal"][2])
        direct = hook_work(warm["stock"][2], reps=5)
        rows_out = len(warm["stock"][2])
        del warm
        times: dict[str, list[float]] = {v: [] for v in variants}
        cpu_times: dict[str, list[float]] = {v: [] for v in variants}
        for rep in range(reps):
            for v in variants if rep % 2 == 0 else variants[::-1]:
                seconds, cpu, _ = prepare(root, v, args.packing)
                times[v].append(seconds)
                cpu_times[v].append(cpu)
                print(f"  rep {rep} {v:6s} {seconds:.2f} s (CPU {cpu:.2f} s)", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    summary: dict[str, Any] = {}
    rows = []
    for clock, data in (("wall", times), ("cpu", cpu_times)):
        paired = [c / s for c, s in zip(data["cotbal"], data["stock"])]
        ratio, noise = C.median(paired), C.spread(paired)
        summary[clock] = {
            "seconds": data,
            "ratio_paired_median": ratio,
            "ratio_paired_spread": noise,
            "ratio_of_medians": C.median(data["cotbal"]) / C.median(data["stock"]),
            "ratio_of_minima": min(data["cotbal"]) / min(data["stock"]),
        }
        for v in variants:
            med = C.median(data[v])
            rows.append([
                v,
                clock,
                f"{med:.2f} ± {C.spread(data[v]) * 100:.1f} %",
                f"{2 * samples / med:,.0f}",
                "1.000" if v == "stock" else f"{ratio:.3f} ± {noise * 100:.1f} %",
                f"{med / C.median(data['stock']):.3f}",
                f"{min(data[v]) / min(data['stock']):.3f}",
                "—" if v == "stock" else C.verdict(ratio, TARGET, 2 * noise),
            ])  # fmt: skip
    print()
    print(C.table(["variant", "clock", "get_dataset s (median ± MAD)", "samples/s", "ratio (paired)",
                   "ratio of medians", "ratio of minima", f"target <= {TARGET}"], rows))  # fmt: skip
    direct_s = direct["encode_labels_s"] + direct["add_column_s"]
    implied = 1 + direct_s / C.median(cpu_times["stock"])
    print(
        f"\nhook work timed directly (CPU, min of 5): encode_labels on all rows "
        f"{direct['encode_labels_s'] * 1000:.1f} ms"
        f" + add_column {direct['add_column_s'] * 1000:.1f} ms = {direct_s * 1000:.1f} ms, i.e. an implied ratio of "
        f"{implied:.3f} on the stock CPU median"
    )
    print(f"\nsanity: {rows_out} training rows; cotbal data with task ids stripped "
          f"{'==' if identical else '!='} stock data")  # fmt: skip
    total = time.perf_counter() - started
    print(f"total {total:.0f} s")
    path = C.write_results("bench_preprocess", {
        "config": {"samples_per_task": samples, "tasks": TASKS, "reps": reps, "packing": args.packing,
                   "cutoff_len": 256},
        "machine": machine,
        "load_average_end": C.load_average(),
        "target": TARGET,
        "total_seconds": total,
        "identical_after_strip": identical,
        "rows": rows_out,
        "hook_work": {**direct, "implied_ratio": implied},
        "wall": summary["wall"],
        "cpu": summary["cpu"],
    })  # fmt: skip
    print(f"results: {path.relative_to(C.ROOT)}")


if __name__ == "__main__":
    main()
