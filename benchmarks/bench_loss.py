"""Cost of the VITW loss vs the stock causal-LM loss: forward+backward time and peak memory, on this CPU.

    .venv/bin/python benchmarks/bench_loss.py [--quick] [--batch 4] [--length 512] [--vocab 32000]
                                              [--tasks 2 64] [--reps 15] [--threads 1] [--dtype float32]
                                              [--hidden 512] [--head-reps 8] [--no-head]

Two parts: the loss from given logits (below), and the loss HEAD from the last hidden states (``head-*``, at the
end of this docstring), where the fused path applies.

In-process, no LLaMA-Factory. Both variants get the same ``[batch, length, vocab]`` logits (a leaf tensor with
``requires_grad``) and the same labels (a packing-like layout: segments of ~64 tokens, the first ~30 % of each
segment is prompt = -100, each segment belongs to a random task):

- ``stock``: transformers' own ``ForCausalLMLoss`` (called, not copied) as the model runs it when the HF trainer
  passes ``num_items_in_batch``: ``logits.float()``, pad the labels by one and shift,
  ``cross_entropy(reduction='sum') / num_items``; ``num_items`` (the valid-token count the trainer computes in
  ``get_batch_samples``) is included.
- ``cotbal-N``: what ``CotbalSeq2SeqTrainer`` does per micro-batch with N tasks: ``task_token_counts`` (done once
  per step in ``get_batch_samples``), ``vitw_denominator``, ``weighted_nll_sum`` on the task-encoded labels,
  ``weighted_sum / denominator`` — then ``backward()``.

Time: the variants run interleaved in the same process (order rotated every repetition, one warm-up round);
each sample is one forward+backward with ``logits.grad`` reset to None. Reported: median seconds per variant,
the ratio of medians and the median of the per-repetition ratios (cotbal_i / stock_i of the same round).

Peak memory, two independent methods, each variant in a FRESH subprocess (inputs allocated first, then one
warm-up forward+backward of the same variant whose gradient is dropped, so first-call page faults of libtorch's
code and lazy initialisations are not counted as tensor memory):

- ``profiler``: ``torch.profiler.profile(profile_memory=True)`` around one forward+backward; the peak is the
  maximum of the ``Total Allocated`` counter of the ``[memory]`` events minus its value when the region started.
  This is torch's own CPU allocator accounting (exact bytes; ``tracemalloc`` does not see it).
- ``rss``: the process's RSS high-water mark after the forward+backward minus before it (after the inputs are
  allocated). Read from ``/proc/self/status`` ``VmHWM``, reset to the current RSS just before the measurement by
  writing ``5`` to ``/proc/self/clear_refs``; ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is only the fallback
  because on Linux it keeps the *parent's* high-water mark across fork+exec, which hides the child's peak.
  Tensors this big are mmap-ed by glibc and returned on free, so the RSS high-water mark follows the live
  tensors; granularity is pages, and it also counts the allocator's own overhead — a cross-check of the
  profiler figure.

Fixed (vocabulary-independent) overhead: the same interleaved timing with a vocabulary of 16, where the
cross-entropy itself costs almost nothing, isolates what cotbal adds on the ``[batch, length]`` label side
(decoding task ids, counts, weight gather, per-task sums). ``overhead_ms`` = median(cotbal) - median(stock)
there; ``1 + overhead_ms / stock_ms`` is the time ratio that overhead alone implies at the full vocabulary —
a low-noise reading of the real cost, since at the full vocabulary run-to-run noise is several percent.

Both memory figures are also given in units of one ``[batch, length, vocab]`` float32 tensor ("x logits").

Loss head (``--hidden``, skipped with ``--no-head``): the same labels, but from hidden states ``[batch, length,
hidden]`` (leaf) and an output weight ``[vocab, hidden]`` (trainable), gradients to both — the matmuls of the
output layer are included, as in training:

- ``head-stock``: ``F.linear`` then transformers' ``ForCausalLMLoss`` with ``num_items_in_batch``;
- ``head-cotbal-full``: ``F.linear`` then ``weighted_nll_sum`` / denominator (the full-logits path);
- ``head-cotbal-fused``: ``fused_weighted_nll_sum`` / denominator (chunked, no ``[tokens, vocab]`` logits).

Interleaved and rotated like the logits part; reported as paired ratios against ``head-stock``. Their memory is
measured by ``bench_memory.py`` (RSS of each variant in a fresh process).
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

import _common as C
import torch
from _head import loss_head_step
from transformers.loss.loss_utils import ForCausalLMLoss

from cotbal_plugin.fused_ce import auto_chunk_tokens
from cotbal_plugin.loss import task_token_counts, vitw_denominator, weighted_nll_sum
from cotbal_plugin.task_labels import IGNORE_INDEX, TASK_STRIDE

TIME_TARGET = 1.03
MEMORY_TARGET = 1.00


def make_inputs(
    batch: int, length: int, vocab: int, num_tasks: int, dtype: torch.dtype, seed: int = 0
) -> dict[str, Any]:
    """Logits (leaf, requires_grad), plain labels, task-encoded labels and task weights (deterministic)."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, length, vocab, generator=gen, dtype=torch.float32).to(dtype).requires_grad_(True)
    return {"logits": logits, **packed_labels(gen, batch, length, vocab, num_tasks)}


def packed_labels(gen: torch.Generator, batch: int, length: int, vocab: int, num_tasks: int) -> dict[str, Any]:
    """Plain and task-encoded labels laid out like packed SFT data, plus random task weights."""
    labels = torch.randint(0, vocab, (batch, length), generator=gen)
    task_ids = torch.empty(batch, length, dtype=torch.long)
    for b in range(batch):  # packing-like segments: prompt (ignored) then answer, one task per segment
        pos = 0
        while pos < length:
            seg = int(torch.randint(32, 97, (1,), generator=gen))
            prompt = int(seg * 0.3)
            labels[b, pos : pos + prompt] = IGNORE_INDEX
            task_ids[b, pos : pos + seg] = int(torch.randint(0, num_tasks, (1,), generator=gen))
            pos += seg
    encoded = torch.where(labels >= 0, labels + (task_ids + 1) * TASK_STRIDE, labels)
    weights = (torch.rand(num_tasks, generator=gen) * 2 + 0.25).to(torch.float32)
    return {"labels": labels, "encoded": encoded, "weights": weights, "num_tasks": num_tasks}


def make_head_inputs(args: argparse.Namespace, num_tasks: int = 2) -> dict[str, Any]:
    """Last hidden states (leaf) and output weight (leaf) in ``--dtype``, plus the packed labels."""
    dtype = getattr(torch, args.dtype)
    gen = torch.Generator().manual_seed(args.seed)
    hidden = torch.randn(args.batch, args.length, args.hidden, generator=gen).to(dtype).requires_grad_(True)
    weight = torch.randn(args.vocab, args.hidden, generator=gen) / args.hidden**0.5
    out = {"hidden": hidden, "weight": weight.to(dtype).requires_grad_(True)}
    return {**out, **packed_labels(gen, args.batch, args.length, args.vocab, num_tasks)}


def head_step(name: str, inp: dict[str, Any]) -> torch.Tensor:
    """One forward+backward of the loss head (see the module docstring and ``_head.py``)."""
    return loss_head_step(name.removeprefix("head-"), inp, inp["num_tasks"])


HEAD_VARIANTS = ["head-stock", "head-cotbal-full", "head-cotbal-fused"]


def time_head(args: argparse.Namespace, reps: int) -> dict[str, Any]:
    """Interleaved forward+backward timings of the three loss-head variants; paired ratios against head-stock."""
    inp = make_head_inputs(args)
    times: dict[str, list[float]] = {v: [] for v in HEAD_VARIANTS}
    for rep in range(reps + 1):  # round 0 is a warm-up
        for v in C.rotate(HEAD_VARIANTS, rep):
            inp["hidden"].grad = inp["weight"].grad = None
            t0 = time.perf_counter()
            head_step(v, inp)
            dt = time.perf_counter() - t0
            if rep > 0:
                times[v].append(dt)
    stock = times["head-stock"]
    summary = {}
    for v in HEAD_VARIANTS:
        paired = [x / s for x, s in zip(times[v], stock)]
        summary[v] = {
            "seconds": times[v],
            "median_s": C.median(times[v]),
            "spread": C.spread(times[v]),
            "time_ratio_of_medians": C.median(times[v]) / C.median(stock),
            "time_ratio_paired_median": C.median(paired),
            "time_ratio_paired_spread": C.spread(paired),
        }
    return summary


def stock_step(inp: dict[str, Any]) -> torch.Tensor:
    """transformers' own ``ForCausalLMLoss`` with ``num_items_in_batch`` (+ the trainer's count of valid tokens)."""
    logits, labels = inp["logits"], inp["labels"]
    num_items = (labels[..., 1:] != IGNORE_INDEX).sum()
    loss = ForCausalLMLoss(logits, labels, vocab_size=logits.size(-1), num_items_in_batch=num_items)
    loss.backward()
    return loss.detach()


def cotbal_step(inp: dict[str, Any]) -> torch.Tensor:
    """``CotbalSeq2SeqTrainer``: per-step counts and denominator, then the micro-batch's weighted sum / denominator."""
    encoded, weights, n = inp["encoded"], inp["weights"], inp["num_tasks"]
    denom = vitw_denominator(task_token_counts(encoded, n), weights)
    weighted_sum, _, _ = weighted_nll_sum(inp["logits"], encoded, weights, n)
    loss = (weighted_sum / denom).to(torch.float32)
    loss.backward()
    return loss.detach()


def variant_inputs(name: str, args: argparse.Namespace) -> dict[str, Any]:
    tasks = 2 if name == "stock" else int(name.split("-")[1])
    return make_inputs(args.batch, args.length, args.vocab, tasks, getattr(torch, args.dtype), seed=args.seed)


def step_fn(name: str):
    return stock_step if name == "stock" else cotbal_step


# ---------------------------------------------------------------- memory (child process)
def _profiler_peak(fn, inp: dict[str, Any]) -> int:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn(inp)
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        with open(path, encoding="utf-8") as f:
            events = json.load(f)["traceEvents"]
    finally:
        os.remove(path)
    mem = sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"])
    if not mem:
        return 0
    start = mem[0]["args"]["Total Allocated"] - mem[0]["args"]["Bytes"]
    return int(max(e["args"]["Total Allocated"] for e in mem) - start)


def _vm_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(args: argparse.Namespace) -> None:
    """One variant in a fresh process: RSS high-water delta, then (grad reset) the profiler's allocator peak."""
    import warnings

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    inp = variant_inputs(args.child, args)
    fn = step_fn(args.child)
    fn(inp)  # warm-up: first-call page faults of libtorch code and lazy initialisations are not tensor memory
    inp["logits"].grad = None
    if _reset_hwm() and _vm_kib("VmHWM") is not None:
        before = _vm_kib("VmHWM")
        fn(inp)
        rss = (_vm_kib("VmHWM") - before) * 1024
    else:  # pragma: no cover - non-Linux fallback (see the module docstring for its caveat)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        fn(inp)
        rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    inp["logits"].grad = None
    peak = _profiler_peak(fn, inp)
    print(json.dumps({"rss_delta": rss, "profiler_peak": peak}))


def measure_memory(name: str, args: argparse.Namespace) -> dict[str, int]:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        name,
        "--batch",
        str(args.batch),
        "--length",
        str(args.length),
        "--vocab",
        str(args.vocab),
        "--threads",
        str(args.threads),
        "--dtype",
        args.dtype,
        "--seed",
        str(args.seed),
    ]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONWARNINGS="ignore")
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (about 30 s)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--tasks", type=int, nargs="+", default=[2, 64], help="numbers of tasks for cotbal")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (default 15, --quick 6)")
    parser.add_argument(
        "--mem-reps", type=int, default=None, help="fresh processes per variant (default 2, --quick 1)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (training uses OMP_NUM_THREADS=1)"
    )
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=512, help="hidden size of the loss-head part")
    parser.add_argument("--no-head", action="store_true", help="skip the loss-head part")
    parser.add_argument("--head-reps", type=int, default=None, help="loss-head repetitions (default 8, --quick 3)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    reps = args.reps or (6 if args.quick else 15)
    mem_reps = args.mem_reps or (1 if args.quick else 2)
    small_reps = 100 if args.quick else 300
    torch.set_num_threads(args.threads)
    variants = ["stock"] + [f"cotbal-{n}" for n in args.tasks]
    logits_bytes = args.batch * args.length * args.vocab * 4
    machine = C.machine()
    print(
        f"bench_loss: logits [{args.batch}, {args.length}, {args.vocab}] {args.dtype}, {args.threads} thread(s), "
        f"{reps} interleaved repetitions; {machine['cpu']} ({machine['cpu_count']} cores), "
        f"load {machine['load_average']}"
    )

    # ---- correctness guard: with equal weights the VITW loss is the stock loss
    inp = make_inputs(2, 64, 1000, 3, torch.float32)
    inp["weights"] = torch.ones(3)
    a, b = stock_step(inp), cotbal_step(inp)
    assert torch.allclose(a, b, rtol=1e-5), (a, b)

    # ---- time
    inputs = {v: variant_inputs(v, args) for v in variants}
    times: dict[str, list[float]] = {v: [] for v in variants}
    for rep in range(reps + 1):  # round 0 is a warm-up
        for v in C.rotate(variants, rep):
            inputs[v]["logits"].grad = None
            fn = step_fn(v)
            t0 = time.perf_counter()
            fn(inputs[v])
            dt = time.perf_counter() - t0
            if rep > 0:
                times[v].append(dt)
    del inputs

    # ---- fixed overhead at a tiny vocabulary (label-side work only)
    small = argparse.Namespace(**{**vars(args), "vocab": 16})
    small_inputs = {v: variant_inputs(v, small) for v in variants}
    small_times: dict[str, list[float]] = {v: [] for v in variants}
    for rep in range(small_reps + 1):
        for v in C.rotate(variants, rep):
            small_inputs[v]["logits"].grad = None
            fn = step_fn(v)
            t0 = time.perf_counter()
            fn(small_inputs[v])
            dt = time.perf_counter() - t0
            if rep > 0:
                small_times[v].append(dt)
    del small_inputs

    # ---- memory (fresh processes, alternating)
    mem: dict[str, list[dict[str, int]]] = {v: [] for v in variants}
    for rep in range(mem_reps):
        for v in C.rotate(variants, rep):
            mem[v].append(measure_memory(v, args))

    stock_t = times["stock"]
    stock_prof = C.median([m["profiler_peak"] for m in mem["stock"]])
    stock_rss = C.median([m["rss_delta"] for m in mem["stock"]])
    rows, summary = [], {}
    for v in variants:
        t = times[v]
        paired = [x / s for x, s in zip(t, stock_t)]
        overhead = C.median(small_times[v]) - C.median(small_times["stock"])
        prof = C.median([m["profiler_peak"] for m in mem[v]])
        rss = C.median([m["rss_delta"] for m in mem[v]])
        summary[v] = {
            "seconds": t,
            "median_s": C.median(t),
            "spread": C.spread(t),
            "time_ratio_of_medians": C.median(t) / C.median(stock_t),
            "time_ratio_paired_median": C.median(paired),
            "time_ratio_paired_spread": C.spread(paired),
            "small_vocab_seconds": small_times[v],
            "fixed_overhead_ms": overhead * 1000,
            "implied_time_ratio": 1 + overhead / C.median(stock_t),
            "memory": mem[v],
            "profiler_peak_bytes": prof,
            "rss_delta_bytes": rss,
            "profiler_peak_ratio": prof / stock_prof if stock_prof else None,
            "rss_delta_ratio": rss / stock_rss if stock_rss else None,
        }
        s = summary[v]
        rows.append(
            [
                v,
                f"{s['median_s'] * 1000:.1f} ± {s['spread'] * 100:.1f} %",
                f"{s['time_ratio_of_medians']:.3f}",
                f"{s['time_ratio_paired_median']:.3f} ± {s['time_ratio_paired_spread'] * 100:.1f} %",
                f"{s['fixed_overhead_ms']:+.3f} ms → {s['implied_time_ratio']:.4f}",
                f"{prof / 2**20:.2f} MiB ({prof / logits_bytes:.3f}x)",
                f"{rss / 2**20:.1f} MiB ({rss / logits_bytes:.2f}x)",
                f"{s['profiler_peak_ratio']:.4f}",
            ]
        )
    print()
    print(
        C.table(
            [
                "variant",
                "fwd+bwd ms (median ± MAD)",
                "time ratio (medians)",
                "time ratio (paired)",
                "fixed overhead (vocab 16) → implied ratio",
                "peak, profiler",
                "peak, RSS delta",
                "memory ratio (profiler)",
            ],
            rows,
        )
    )
    print()
    for v in variants[1:]:
        s = summary[v]
        noise = 2 * max(s["time_ratio_paired_spread"], 0.005)
        print(
            f"{v}: time {s['time_ratio_paired_median']:.3f} ± {s['time_ratio_paired_spread'] * 100:.1f} % (target <= "
            f"{TIME_TARGET}: {C.verdict(s['time_ratio_paired_median'], TIME_TARGET, noise)}; fixed overhead alone "
            f"implies {s['implied_time_ratio']:.4f}), memory {s['profiler_peak_ratio']:.4f} "
            f"(target <= {MEMORY_TARGET:.2f}: {C.verdict(round(s['profiler_peak_ratio'], 3), MEMORY_TARGET, 0)})"
        )
    head: dict[str, Any] = {}
    if not args.no_head:
        # correctness guard: equal weights → the three head variants give the same loss
        guard = argparse.Namespace(**{**vars(args), "batch": 2, "length": 64, "vocab": 500, "hidden": 32})
        g_inp = make_head_inputs(guard)
        g_inp["weights"] = torch.ones(2)
        losses = [float(head_step(v, g_inp)) for v in HEAD_VARIANTS]
        assert max(losses) - min(losses) < 1e-5 * abs(losses[0]), losses
        head = time_head(args, args.head_reps or (3 if args.quick else 8))
        chunk = auto_chunk_tokens(args.vocab)
        print(
            f"\nloss head: hidden [{args.batch}, {args.length}, {args.hidden}] -> vocabulary {args.vocab}, "
            f"{args.dtype}, fused chunk {chunk} tokens"
        )
        print(
            C.table(
                ["variant", "fwd+bwd ms (median ± MAD)", "time ratio (medians)", "time ratio (paired)"],
                [
                    [
                        v,
                        f"{h['median_s'] * 1000:.1f} ± {h['spread'] * 100:.1f} %",
                        f"{h['time_ratio_of_medians']:.3f}",
                        f"{h['time_ratio_paired_median']:.3f} ± {h['time_ratio_paired_spread'] * 100:.1f} %",
                    ]
                    for v, h in head.items()
                ],
            )
        )
    path = C.write_results(
        "bench_loss",
        {
            "config": {
                "batch": args.batch,
                "length": args.length,
                "vocab": args.vocab,
                "dtype": args.dtype,
                "threads": args.threads,
                "tasks": args.tasks,
                "reps": reps,
                "mem_reps": mem_reps,
                "logits_bytes": logits_bytes,
            },
            "machine": machine,
            "load_average_end": C.load_average(),
            "targets": {"time_ratio": TIME_TARGET, "memory_ratio": MEMORY_TARGET},
            "variants": summary,
            "head": {"hidden": None if args.no_head else args.hidden, "variants": head},
        },
    )
    print(f"\nresults: {path.relative_to(C.ROOT)}")


if __name__ == "__main__":
    main()
