"""Peak memory of the loss head, forward+backward: stock full-logits cross-entropy vs cotbal (full logits, fused).

    .venv/bin/python benchmarks/bench_memory.py [--quick] [--batch 8] [--length 1024] [--hidden 1024]
                                                [--vocab 32000] [--dtype float32] [--chunk N] [--reps 2]

CPU, in-process, no LLaMA-Factory. Each variant starts from the same last hidden states ``[batch, length, hidden]``
(a leaf with ``requires_grad``, standing for the model's last layer) and the same output layer weight
``[vocab, hidden]`` (a trainable parameter), and computes the loss and its gradients to both:

- ``stock``: ``logits = F.linear(hidden, weight)`` then transformers' own ``ForCausalLMLoss`` with
  ``num_items_in_batch`` — what a HF causal LM does in its forward when the trainer passes labels;
- ``cotbal-full``: the same logits, then ``weighted_nll_sum`` / the step's denominator (the full-logits path);
- ``cotbal-fused``: ``fused_weighted_nll_sum`` / denominator — no ``[tokens, vocab]`` logits (chunk size automatic
  unless ``--chunk``).

Every variant runs in a FRESH subprocess (so one variant's freed pages never hide another's peak): inputs
allocated, one warm-up forward+backward whose gradients are dropped (first-call page faults of libtorch code and
lazy initialisations are not tensor memory), then the measured forward+backward. Reported per variant:

- ``delta``: RSS high-water mark during the measured forward+backward minus the RSS just before it — the memory
  the loss itself needs (``/proc/self/status`` ``VmHWM``, reset by writing ``5`` to ``/proc/self/clear_refs``);
- ``peak``: the process's absolute RSS high-water mark during that forward+backward (interpreter, torch, inputs
  and all) — the figure that decides whether a job fits.

Ratios are against ``stock``; target: fused ≤ 0.6 × stock (issue #10). Tensors this big are ``mmap``-ed by glibc
and returned on free, so the RSS follows the live tensors. The same run also checks that the three variants give
the same loss when all task weights are equal (cotbal = stock). Not a test: nothing is asserted on memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

import _common as C
import torch
from _head import loss_head_step

from cotbal_plugin.fused_ce import auto_chunk_tokens
from cotbal_plugin.task_labels import IGNORE_INDEX, TASK_STRIDE

TARGET = 0.6
VARIANTS = ["stock", "cotbal-full", "cotbal-fused"]


def make_inputs(args: argparse.Namespace, equal_weights: bool = False) -> dict[str, Any]:
    """Hidden states (leaf), output weight (leaf), plain and task-encoded labels, weights; deterministic."""
    dtype = getattr(torch, args.dtype)
    gen = torch.Generator().manual_seed(args.seed)
    hidden = torch.randn(args.batch, args.length, args.hidden, generator=gen).to(dtype).requires_grad_(True)
    weight = (torch.randn(args.vocab, args.hidden, generator=gen) / args.hidden**0.5).to(dtype).requires_grad_(True)
    labels = torch.randint(0, args.vocab, (args.batch, args.length), generator=gen)
    tasks = torch.randint(0, 2, (args.batch, 1), generator=gen).expand(args.batch, args.length)
    labels[:, : args.length // 4] = IGNORE_INDEX  # prompt
    encoded = torch.where(labels >= 0, labels + (tasks + 1) * TASK_STRIDE, labels)
    weights = torch.ones(2) if equal_weights else torch.tensor([2.0, 0.5])
    return {"hidden": hidden, "weight": weight, "labels": labels, "encoded": encoded, "weights": weights}


def run_variant(name: str, inp: dict[str, Any], chunk: int | None) -> torch.Tensor:
    """One forward+backward of the loss head (``_head.py``, 2 tasks); returns the detached loss."""
    return loss_head_step(name, inp, 2, chunk)


def _vm_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(args: argparse.Namespace) -> None:
    """One variant in a fresh process: RSS delta and absolute peak of one forward+backward."""
    torch.set_num_threads(args.threads)
    inp = make_inputs(args)
    run_variant(args.child, inp, args.chunk)  # warm-up
    inp["hidden"].grad = inp["weight"].grad = None
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")  # VmHWM := current RSS
    before = _vm_kib("VmRSS")
    loss = run_variant(args.child, inp, args.chunk)
    peak = _vm_kib("VmHWM")
    print(
        json.dumps(
            {"delta": (peak - before) * 1024, "peak": peak * 1024, "before": before * 1024, "loss": float(loss)}
        )
    )


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name]
    for key in ("batch", "length", "hidden", "vocab", "dtype", "threads", "seed"):
        cmd += [f"--{key}", str(getattr(args, key))]
    if args.chunk is not None:
        cmd += ["--chunk", str(args.chunk)]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONWARNINGS="ignore")
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one fresh process per variant (default 2)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--chunk", type=int, default=None, help="fused chunk size (default: automatic)")
    parser.add_argument("--reps", type=int, default=None, help="fresh processes per variant")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    reps = args.reps or (1 if args.quick else 2)
    tokens = args.batch * args.length
    logits_bytes = tokens * args.vocab * 4
    chunk = args.chunk or auto_chunk_tokens(args.vocab)
    machine = C.machine()
    print(
        f"bench_memory: hidden [{args.batch}, {args.length}, {args.hidden}], vocabulary {args.vocab}, {args.dtype}; "
        f"float32 logits would be {logits_bytes / 2**30:.2f} GiB; fused chunk {chunk} tokens "
        f"({chunk * args.vocab * 4 / 2**20:.0f} MiB of float32 logits); {reps} fresh process(es) per variant; "
        f"{machine['cpu']}, load {machine['load_average']}"
    )

    # correctness guard: equal weights → the three variants give the same loss
    small = argparse.Namespace(**{**vars(args), "batch": 2, "length": 64, "vocab": 500, "hidden": 32})
    losses = {v: float(run_variant(v, make_inputs(small, equal_weights=True), 16)) for v in VARIANTS}
    assert max(losses.values()) - min(losses.values()) < 1e-4 * abs(losses["stock"]), losses

    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for rep in range(reps):
        for v in C.rotate(VARIANTS, rep):
            runs[v].append(measure(v, args))
            print(f"  {v}: delta {runs[v][-1]['delta'] / 2**20:.0f} MiB, peak {runs[v][-1]['peak'] / 2**20:.0f} MiB")
    summary: dict[str, Any] = {}
    for v in VARIANTS:
        delta = C.median([r["delta"] for r in runs[v]])
        peak = C.median([r["peak"] for r in runs[v]])
        summary[v] = {"runs": runs[v], "delta_bytes": delta, "peak_bytes": peak}
    s_delta, s_peak = summary["stock"]["delta_bytes"], summary["stock"]["peak_bytes"]
    rows = []
    for v in VARIANTS:
        s = summary[v]
        s["delta_ratio"] = s["delta_bytes"] / s_delta
        s["peak_ratio"] = s["peak_bytes"] / s_peak
        s["delta_in_logits"] = s["delta_bytes"] / logits_bytes
        rows.append(
            [
                v,
                f"{s['delta_bytes'] / 2**20:.0f} MiB ({s['delta_in_logits']:.2f}× logits)",
                f"{s['delta_ratio']:.3f}",
                f"{s['peak_bytes'] / 2**20:.0f} MiB",
                f"{s['peak_ratio']:.3f}",
            ]
        )
    print()
    print(C.table(["variant", "loss fwd+bwd RSS delta", "delta ratio", "absolute peak RSS", "peak ratio"], rows))
    fused = summary["cotbal-fused"]
    print(
        f"\ncotbal-fused vs stock: delta {fused['delta_ratio']:.3f}, absolute peak {fused['peak_ratio']:.3f} "
        f"(target <= {TARGET}: {C.verdict(fused['peak_ratio'], TARGET, 0)})"
    )
    path = C.write_results(
        "bench_memory",
        {
            "config": {
                **{k: getattr(args, k) for k in ("batch", "length", "hidden", "vocab", "dtype", "threads")},
                "chunk": chunk,
                "reps": reps,
                "logits_bytes": logits_bytes,
            },
            "machine": machine,
            "load_average_end": C.load_average(),
            "target_peak_ratio": TARGET,
            "equal_weight_losses": losses,
            "variants": summary,
        },
    )
    print(f"\nresults: {path.relative_to(C.ROOT)}")


if __name__ == "__main__":
    main()
