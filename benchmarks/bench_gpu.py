"""GPU benchmark (issue #10): stock / stock+Liger / cotbal / cotbal+Liger through LLaMA-Factory, full and LoRA.

    python benchmarks/bench_gpu.py [--reps 3] [--steps 30] [--warmup 5] [--modes full lora]
                                   [--variants stock stock+liger cotbal cotbal+liger] [--work DIR] [--out-dir DIR]
    python benchmarks/bench_gpu.py --smoke        # CPU, tiny model, 2 steps per variant: checks the script end to end

What it builds (once, in ``--work``; reused when already there): a random-init Llama in the shape of Llama-3.2-1B
(hidden 2048, 16 layers, 32 heads / 8 KV heads, MLP 8192, vocabulary 128,256, tied embeddings, bf16; ~1.2 B
parameters), a byte-level BPE tokenizer trained on the benchmark's words (the model's vocabulary is larger than the
tokenizer's, so every logit row is still 128,256 wide), and two alpaca tasks with long answers (``task_a`` ~1,500
words, ``task_b`` ~800 words; rows are cut at ``cutoff_len`` 2048) plus ``weights.json`` (2.0 / 0.5).

What it runs: one LLaMA-Factory SFT training per (mode, variant, repetition), each in a FRESH subprocess calling
``llamafactory.train.tuner.run_exp(config_dict, callbacks=[StepTimer])`` in-process (so peak memory is per run).
Only the YAML interface is used — the keys a user writes:

- ``stock``: LLaMA-Factory's own trainer and loss;
- ``stock+liger``: ``enable_liger_kernel: true`` (Liger's RMSNorm / RoPE / SwiGLU and its fused linear
  cross-entropy, which never materialises the logits);
- ``cotbal``: ``loss: cotbal`` + ``cotbal_weights: weights.json`` (static weights 2.0 / 0.5);
- ``cotbal+liger``: both.

Modes: ``full`` (batch 4 × GA 2) and ``lora`` (rank 16, ``lora_target: all``, batch 8 × GA 2); bf16, cutoff 2048,
constant LR, same data order in every run (``disable_shuffling``). Variants are interleaved — each repetition runs
every (mode, variant) once, in an order rotated from one repetition to the next — because step times drift ±10 %
between runs and machines (DESIGN.md §6).

Measured by ``StepTimer`` (a ``TrainerCallback``): the wall time between consecutive ``on_step_end`` events with
``torch.cuda.synchronize()`` before each reading — one optimizer step including data loading, the plugin's
per-step work (``get_batch_samples``), all micro-batches and the optimizer; the first ``--warmup`` steps are
dropped; a run's figure is the median of its steps. Peak memory: ``torch.cuda.max_memory_allocated()`` over the
training (statistics reset at ``on_train_begin``, after the model is loaded; weights, optimizer states and
activations included). On CPU (``--smoke``) the peak is the process's RSS high-water mark instead.

Reported (JSON + markdown in ``--out-dir``, default ``benchmarks/results/``): per mode and variant, the median
step time, the paired ratio against ``stock`` of the same repetition (median and range over repetitions), the peak
memory and its ratios against ``stock`` and ``stock+liger``; plus each run's final ``train_loss`` (identical across
repetitions of a variant when the runs are deterministic). Targets (issue #10): cotbal step time ≤ 1.03 × stock;
peak memory cotbal ≤ stock (full) and cotbal+liger ≤ stock+liger (LoRA).

On the lent GPU machine (DESIGN.md §6; no network there): on the CPU machine download Python 3.12 wheels of
``llamafactory==0.9.5 transformers==5.5.4 datasets==4.0.0 trl==0.24.0 peft==0.18.1 accelerate==1.11.0
omegaconf==2.4.0 tokenizers==0.22.2 dill==0.3.8 multiprocess==0.70.16 liger-kernel==0.8.5`` and the project's
wheel (``pip wheel --no-deps .``) into an ignored ``.whl/``; on the device ``python3 -m pip install -q --no-index
--no-deps --no-compile .whl/*.whl`` (into the real site-packages, so the plugin's ``.pth`` start-up hook runs),
``export DISABLE_VERSION_CHECK=1``, then run this script (a 10-minute command fits ``--reps 1`` of all eight
(mode, variant) pairs with ``--steps 20``; ``--work /tmp/bench_gpu`` keeps the built model for the next command).
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _common as C

VARIANTS = ["stock", "stock+liger", "cotbal", "cotbal+liger"]
MODES = ["full", "lora"]
TASKS = {"task_a": 1500, "task_b": 800}
WEIGHTS = {"task_a": 2.0, "task_b": 0.5}
TIME_TARGET = 1.03

GPU_MODEL = {
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "tie_word_embeddings": True,
}
SMOKE_MODEL = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 2048,
    "tie_word_embeddings": True,
}


# ---------------------------------------------------------------- workspace
def build_workspace(work: Path, smoke: bool, samples: int) -> dict[str, Any]:
    """Model, tokenizer, the two tasks and weights.json in ``work`` (reused when ``work/ready.json`` matches)."""
    spec = {"model": SMOKE_MODEL if smoke else GPU_MODEL, "samples": samples, "tasks": TASKS if not smoke else None}
    marker = work / "ready.json"
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return spec
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from cotbal_plugin.testing.tiny import train_bpe_tokenizer
    from cotbal_plugin.testing.workspace import all_text, write_text_tasks

    tasks = {"task_a": 40, "task_b": 12} if smoke else TASKS
    write_text_tasks(work / "data", tasks, n=samples)
    rng = random.Random(0)
    filler = [" ".join(f"w{rng.randint(0, 99999)}" for _ in range(40)) for _ in range(200 if smoke else 2000)]
    tokenizer = train_bpe_tokenizer(all_text(tasks, n=min(samples, 64)) + filler, 1000 if smoke else 8000)
    config = LlamaConfig(
        **spec["model"],
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        rope_theta=500000.0,
    )
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() and not smoke else "cpu"
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.float32 if smoke else torch.bfloat16)
    model.save_pretrained(work / "model")
    tokenizer.save_pretrained(work / "model")
    (work / "weights.json").write_text(json.dumps({"weights": WEIGHTS}), encoding="utf-8")
    params = sum(p.numel() for p in model.parameters())
    del model
    marker.write_text(json.dumps(spec), encoding="utf-8")
    print(f"built a {params / 1e6:.1f} M-parameter model in {work / 'model'}", flush=True)
    return spec


def variant_config(work: Path, mode: str, variant: str, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The LLaMA-Factory config of one run: only keys a user would write in a YAML."""
    config: dict[str, Any] = {
        "model_name_or_path": str(work / "model"),
        "trust_remote_code": False,
        "stage": "sft",
        "do_train": True,
        "finetuning_type": mode,
        "dataset_dir": str(work / "data"),
        "dataset": ",".join(TASKS),
        "template": "default",
        "cutoff_len": args.cutoff,
        "overwrite_cache": True,
        "output_dir": str(out),
        "overwrite_output_dir": True,
        "save_strategy": "no",
        "logging_steps": 10,
        "report_to": "none",
        "per_device_train_batch_size": args.batch * (2 if mode == "lora" else 1),
        "gradient_accumulation_steps": args.ga,
        "learning_rate": 1.0e-4 if mode == "lora" else 1.0e-5,
        "lr_scheduler_type": "constant",
        "max_steps": args.steps,
        "seed": 0,
        "data_seed": 0,
        "disable_shuffling": True,
        "dataloader_num_workers": 0,
    }
    if mode == "lora":
        config.update({"lora_rank": 16, "lora_target": "all"})
    if args.smoke:
        config.update({"use_cpu": True, "bf16": False, "fp16": False, "optim": "sgd"})
    else:
        config.update({"bf16": True})
    if "liger" in variant:
        config["enable_liger_kernel"] = True
    if variant.startswith("cotbal"):
        config.update({"loss": "cotbal", "cotbal_weights": str(work / "weights.json")})
    return config


# ---------------------------------------------------------------- one run (child process)
def child(config_path: str, result_path: str) -> None:
    """Run one training in this process with a step timer; write the measurements as JSON."""
    import torch
    from transformers import TrainerCallback

    import cotbal_plugin

    cotbal_plugin.install()  # also when the plugin is used from a source tree without its .pth start-up hook
    from llamafactory.train.tuner import run_exp

    cuda = torch.cuda.is_available()

    def rss_hwm() -> int:
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.step_s: list[float] = []
            self.prev = 0.0
            self.peak = 0
            self.losses: list[float] = []

        def _now(self) -> float:
            if cuda:
                torch.cuda.synchronize()
            return time.perf_counter()

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001 - HF callback signature
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            else:
                with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
                    f.write("5")
            self.prev = self._now()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            now = self._now()
            self.step_s.append(now - self.prev)
            self.prev = now

        def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
            self.peak = torch.cuda.max_memory_allocated() if cuda else rss_hwm()
            self.losses = [h["loss"] for h in state.log_history if "loss" in h]

    config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    timer = StepTimer()
    run_exp(config, callbacks=[timer])
    results = json.loads((Path(config["output_dir"]) / "train_results.json").read_text(encoding="utf-8"))
    payload = {
        "step_s": timer.step_s,
        "peak_bytes": timer.peak,
        "peak_kind": "cuda max_memory_allocated" if cuda else "RSS high-water mark",
        "train_loss": results.get("train_loss"),
        "logged_losses": timer.losses,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
    }
    Path(result_path).write_text(json.dumps(payload), encoding="utf-8")


def run_one(work: Path, mode: str, variant: str, rep: int, args: argparse.Namespace) -> dict[str, Any]:
    tag = f"{mode}-{variant.replace('+', '_')}-{rep}"
    out = work / "runs" / tag
    config_path = work / "configs" / f"{tag}.json"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(variant_config(work, mode, variant, out, args), indent=1), encoding="utf-8")
    result_path = work / "configs" / f"{tag}.result.json"
    env = dict(os.environ)
    env.update(
        {
            "DISABLE_VERSION_CHECK": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "WANDB_DISABLED": "true",
            "PYTHONWARNINGS": "ignore",
            "PYTHONPATH": os.pathsep.join([str(C.ROOT), env.get("PYTHONPATH", "")]),
        }
    )
    if args.smoke:
        env.update({"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1")})
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", str(config_path), str(result_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if proc.returncode != 0:
        log = work / "configs" / f"{tag}.log"
        log.write_text(proc.stdout, encoding="utf-8")
        sys.stderr.write(proc.stdout[-4000:])
        raise SystemExit(f"bench_gpu: {mode} {variant} (repetition {rep}) failed (exit {proc.returncode}); log: {log}")
    result = json.loads(result_path.read_text(encoding="utf-8"))
    result["wall_s"] = time.perf_counter() - t0
    timed = result["step_s"][args.warmup :]
    if not timed:
        raise SystemExit(f"bench_gpu: {mode} {variant}: no step left after --warmup {args.warmup}")
    result["median_step_s"] = C.median(timed)
    result["timed_steps"] = len(timed)
    return result


# ---------------------------------------------------------------- report
def summarise(runs: dict[tuple[str, str], list[dict[str, Any]]], modes: list[str], variants: list[str]) -> dict:
    summary: dict[str, dict[str, Any]] = {}
    for mode in modes:
        stock = runs.get((mode, "stock"), [])
        liger = runs.get((mode, "stock+liger"), [])
        summary[mode] = {}
        for v in variants:
            rs = runs.get((mode, v))
            if not rs:
                continue
            steps = [r["median_step_s"] for r in rs]
            peaks = [r["peak_bytes"] for r in rs]
            entry: dict[str, Any] = {
                "median_step_s": C.median(steps),
                "step_spread": C.spread(steps),
                "peak_bytes": C.median(peaks),
                "train_loss": [r["train_loss"] for r in rs],
                "runs": rs,
            }
            if stock:
                paired = [r["median_step_s"] / s["median_step_s"] for r, s in zip(rs, stock)]
                entry["time_ratio_paired_median"] = C.median(paired)
                entry["time_ratio_range"] = [min(paired), max(paired)]
                entry["memory_ratio_vs_stock"] = entry["peak_bytes"] / C.median([s["peak_bytes"] for s in stock])
            if liger:
                entry["memory_ratio_vs_stock_liger"] = entry["peak_bytes"] / C.median([s["peak_bytes"] for s in liger])
            summary[mode][v] = entry
    return summary


def markdown(summary: dict, meta: dict[str, Any]) -> str:
    unit = "GiB" if not meta["smoke"] else "MiB"
    scale = 2**30 if unit == "GiB" else 2**20
    lines = [
        f"# bench_gpu ({'smoke, CPU' if meta['smoke'] else meta['device']})",
        "",
        f"{meta['reps']} repetition(s), {meta['steps']} steps per run ({meta['warmup']} warm-up steps dropped); "
        f"peak memory = {meta['peak_kind']}.",
    ]
    if meta.get("skipped"):
        lines += ["", f"Skipped: {meta['skipped']}"]
    for mode, entries in summary.items():
        rows = []
        for v, e in entries.items():
            ratio = e.get("time_ratio_paired_median")
            rng = e.get("time_ratio_range")
            rows.append(
                [
                    v,
                    f"{e['median_step_s'] * 1000:.1f} ± {e['step_spread'] * 100:.1f} %",
                    "—" if ratio is None else f"{ratio:.3f} ({rng[0]:.3f}–{rng[1]:.3f})",
                    f"{e['peak_bytes'] / scale:.2f} {unit}",
                    "—" if "memory_ratio_vs_stock" not in e else f"{e['memory_ratio_vs_stock']:.3f}",
                    "—" if "memory_ratio_vs_stock_liger" not in e else f"{e['memory_ratio_vs_stock_liger']:.3f}",
                ]
            )
        lines += [
            "",
            f"## {mode}",
            "",
            C.table(
                [
                    "variant",
                    "step ms (median ± MAD)",
                    "time / stock (paired median, range)",
                    "peak memory",
                    "memory / stock",
                    "memory / stock+liger",
                ],
                rows,
            ),
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny model, 2 steps per run, 1 repetition")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3; --smoke 1)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default 30; --smoke 2)")
    parser.add_argument("--warmup", type=int, default=None, help="steps dropped per run (default 5; --smoke 0)")
    parser.add_argument("--modes", nargs="+", default=MODES, choices=MODES)
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument("--batch", type=int, default=None, help="full-FT batch per device (LoRA: twice); default 4")
    parser.add_argument("--ga", type=int, default=2, help="gradient accumulation steps")
    parser.add_argument("--cutoff", type=int, default=None, help="cutoff_len (default 2048; --smoke 256)")
    parser.add_argument("--work", default=None, help="folder for the model and data (reused); default: temporary")
    parser.add_argument("--out-dir", default=None, help="where the JSON and markdown go (default benchmarks/results)")
    parser.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    smoke = args.smoke
    args.reps = args.reps or 1 if smoke else args.reps or 3
    args.steps = args.steps or (2 if smoke else 30)
    args.warmup = args.warmup if args.warmup is not None else (0 if smoke else 5)
    args.batch = args.batch or (2 if smoke else 4)
    args.cutoff = args.cutoff or (256 if smoke else 2048)

    import torch

    variants = list(args.variants)
    skipped = []
    if any("liger" in v for v in variants):
        if importlib.util.find_spec("liger_kernel") is None:
            skipped.append("Liger variants (liger-kernel is not installed)")
        elif not torch.cuda.is_available() or smoke:
            skipped.append("Liger variants (Liger's Triton kernels need a GPU)")
        if skipped:
            variants = [v for v in variants if "liger" not in v]
    if not smoke and not torch.cuda.is_available():
        raise SystemExit("bench_gpu: no CUDA device; use --smoke for the CPU check of the script")
    if "stock" not in variants:
        raise SystemExit("bench_gpu: the ratios need the 'stock' variant")
    for s in skipped:
        print(f"bench_gpu: skipping {s}", flush=True)

    import tempfile

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="cotbal-bench-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    per_step = args.batch * 2 * args.ga  # LoRA's batch is the larger
    samples = max(32, per_step * args.steps // 2 + per_step)  # each task gives half of the rows
    build_workspace(work, smoke, samples)
    machine = C.machine()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() and not smoke else machine["cpu"]
    print(
        f"bench_gpu: {len(args.modes)} mode(s) × {len(variants)} variant(s) × {args.reps} repetition(s), "
        f"{args.steps} steps each, on {device}",
        flush=True,
    )
    pairs = [(m, v) for m in args.modes for v in variants]
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {p: [] for p in pairs}
    started = time.perf_counter()
    for rep in range(args.reps):
        for mode, v in C.rotate(pairs, rep):
            r = run_one(work, mode, v, rep, args)
            runs[(mode, v)].append(r)
            print(
                f"  rep {rep} {mode:4s} {v:12s} step {r['median_step_s'] * 1000:.1f} ms, peak "
                f"{r['peak_bytes'] / 2**30:.2f} GiB, train_loss {r['train_loss']:.6f} (wall {r['wall_s']:.0f} s)",
                flush=True,
            )
    summary = summarise(runs, args.modes, variants)
    peak_kind = next(iter(runs.values()))[0]["peak_kind"]
    meta = {
        "smoke": smoke,
        "device": device,
        "reps": args.reps,
        "steps": args.steps,
        "warmup": args.warmup,
        "peak_kind": peak_kind,
        "skipped": "; ".join(skipped),
    }
    text = markdown(summary, meta)
    print()
    print(text)
    out_dir = Path(args.out_dir) if args.out_dir else C.RESULTS
    name = "bench_gpu_smoke" if smoke else "bench_gpu"
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "argv": sys.argv[1:],
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "config": {k: getattr(args, k) for k in ("reps", "steps", "warmup", "modes", "batch", "ga", "cutoff")},
        "variants": variants,
        "meta": meta,
        "machine": machine,
        "targets": {"time_ratio": TIME_TARGET},
        "total_s": time.perf_counter() - started,
        "summary": summary,
    }
    (out_dir / f"{name}.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    (out_dir / f"{name}.md").write_text(text, encoding="utf-8")
    print(f"results: {out_dir / (name + '.json')}, {out_dir / (name + '.md')}")


if __name__ == "__main__":
    main()
