"""``cotbal plan`` at the paper's scale: time and memory for the Academic Benchmark's 475k training samples.

    .venv/bin/python benchmarks/bench_plan.py [--scale 1.0] [--check] [--keep DIR]

Writes synthetic sharegpt files with the task sizes of the paper's Table 8 (ShareGPT 41k, ShareGPT4V 98k,
RefCOCO-caption 41k, VQAv2 83k, GQA 72k, ChartQA 18k, OCRVQA 80k, RefCOCO-bbox 41k; ``--scale`` multiplies them)
and text lengths of the kind each task has (one-word VQA answers, ~150-word ShareGPT4V captions, multi-turn
ShareGPT chats, box coordinates), validation sets of 2k (ShareGPT4V, ChartQA, RefCOCO) and 20k (VQAv2, GQA,
OCRVQA), and a base YAML like ``examples/probe/llava1_5_7b_probe_base.yaml``. Then times ``make_plan`` in this
process (1/32 mini subsets, ShareGPT fixed: 8 probe trainings, 56 predictions), wall clock and CPU, and reads the
peak resident memory of the process (``ru_maxrss``) before and after. With ``--check``, also times
``cotbal plan --check``'s LLaMA-Factory validation of every YAML (a subprocess: LLaMA-Factory import + one fork per
YAML). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from _common import ROOT, machine, write_results

sys.path.insert(0, str(ROOT))

SIZES = {"ShareGPT": 41_000, "ShareGPT4V": 98_000, "RefCOCO-caption": 41_000, "VQAv2": 83_000, "GQA": 72_000,
         "ChartQA": 18_000, "OCRVQA": 80_000, "RefCOCO-bbox": 41_000}  # fmt: skip
VAL = {"ShareGPT4V": 2_000, "RefCOCO-caption": 2_000, "VQAv2": 20_000, "GQA": 20_000, "ChartQA": 2_000,
       "OCRVQA": 20_000, "RefCOCO-bbox": 2_000}  # fmt: skip
WORDS = "the a of on in with red blue man woman dog cat car tree sky table chart bar value year left right".split()


def _text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def _record(task: str, k: int, rng: random.Random) -> dict:
    if task == "ShareGPT":
        turns = []
        for _ in range(rng.randint(1, 4)):
            turns += [{"from": "human", "value": _text(rng, rng.randint(10, 60))},
                      {"from": "gpt", "value": _text(rng, rng.randint(80, 300))}]  # fmt: skip
        return {"id": f"{task}-{k}", "conversations": turns, "images": []}
    if task == "ShareGPT4V":
        pairs = [("<image>\nDescribe the image in detail.", _text(rng, rng.randint(100, 200)))]
    elif task == "RefCOCO-bbox":
        pairs = [(f"<image>\n{_text(rng, 4)}\nProvide the bounding box coordinate of the region this sentence "
                  "describes.", "[0.12, 0.31, 0.58, 0.87]")] + [
            (f"{_text(rng, 4)}\nProvide the bounding box coordinate of the region this sentence describes.",
             "[0.2, 0.1, 0.4, 0.6]") for _ in range(rng.randint(0, 6))]  # fmt: skip
    elif task == "RefCOCO-caption":
        pairs = [("<image>\n[0.12, 0.31, 0.58, 0.87]\nProvide a short description for this region.", _text(rng, 4))]
        pairs += [("[0.2, 0.1, 0.4, 0.6]\nProvide a short description for this region.", _text(rng, 4))
                  for _ in range(rng.randint(0, 6))]  # fmt: skip
    else:
        q = "Answer the question using a single word or phrase."
        pairs = [(f"<image>\n{_text(rng, 8)}?\n{q}", _text(rng, 1))]
        pairs += [(f"{_text(rng, 8)}?\n{q}", _text(rng, 1)) for _ in range(rng.randint(0, 5))]
    turns = [t for q, a in pairs for t in ({"from": "human", "value": q}, {"from": "gpt", "value": a})]
    return {"id": f"{task}-{k}", "conversations": turns, "images": [f"images/{task}/{k}.jpg"]}


def write_data(root: Path, scale: float) -> Path:
    cols = {"messages": "conversations", "images": "images"}
    tags = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}
    info = {}
    rng = random.Random(0)
    for task, size in SIZES.items():
        for split, n in (("train", size), ("val", VAL.get(task, 0))):
            n = max(1, round(n * scale)) if n else 0
            if not n:
                continue
            name = f"{task}_{split}"
            with (root / f"{name}.json").open("w", encoding="utf-8") as f:  # a JSON array, as the authors' files
                f.write("[\n")
                for k in range(n):
                    f.write(("" if k == 0 else ",\n") + json.dumps(_record(task, k, rng)))
                f.write("\n]\n")
            info[name] = {"file_name": f"{name}.json", "formatting": "sharegpt", "columns": cols, "tags": tags}
            if split == "train":
                info[name]["cotbal_task"] = task
            else:
                info[name]["cotbal_metric"] = "em"
    (root / "dataset_info.json").write_text(json.dumps(info, indent=1))
    return root / "dataset_info.json"


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the dataset sizes (1.0: the paper's)")
    parser.add_argument("--check", action="store_true", help="also time the LLaMA-Factory validation (--check)")
    parser.add_argument("--keep", type=Path, help="write the data and the plan here and keep them")
    args = parser.parse_args()

    from cotbal_plugin.probe.errors import ProbeWarning
    from cotbal_plugin.probe.plan import PlanConfig, make_plan

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_plan-"))
    (root / "data").mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        info = write_data(root / "data", args.scale)
        data_s = time.perf_counter() - t0
        data_mb = sum(p.stat().st_size for p in (root / "data").glob("*.json")) / 2**20
        base = {k: v for k, v in __import__("yaml").safe_load(
            (ROOT / "examples" / "probe" / "llava1_5_7b_probe_base.yaml").read_text()).items()}  # fmt: skip
        base["deepspeed"] = str(ROOT / "examples" / "deepspeed" / "ds_z3_config.json")
        (root / "base.yaml").write_text(__import__("yaml").safe_dump(base))
        rss_before = maxrss_mb()
        cfg = PlanConfig(base_yaml=root / "base.yaml", out_dir=root / "plan", dataset_info=info, fixed=["ShareGPT"],
                         validation={}, metrics={}, tasks=[t for t in SIZES if t != "ShareGPT"], progress=False,
                         throughput=3000.0)  # fmt: skip
        wall, cpu = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ProbeWarning)
            manifest = make_plan(cfg)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rss_after = maxrss_mb()  # before machine(), which imports torch
        result = {
            "machine": machine(),
            "scale": args.scale,
            "train_samples": sum(round(s * args.scale) for s in SIZES.values()),
            "data_mb": round(data_mb, 1),
            "data_write_s": round(data_s, 1),
            "plan_wall_s": round(wall, 2),
            "plan_cpu_s": round(cpu, 2),
            "maxrss_mb_before_plan": round(rss_before, 1),
            "maxrss_mb_after_plan": round(rss_after, 1),
            "jobs": len(manifest["jobs"]),
            "train_tokens": manifest["cost"]["train"]["tokens"],
            "gpu_hours_at_3000_tokens_per_s": manifest["cost"]["train"]["gpu_hours"],
        }
        if args.check:
            from cotbal_plugin.llamafactory.check_yaml import check_yamls
            from cotbal_plugin.testing.workspace import cli_env

            items = [(j["yaml"], "torchrun") for j in manifest["jobs"]]
            t0 = time.perf_counter()
            verdicts = check_yamls(items, env=cli_env())
            result["check_s"] = round(time.perf_counter() - t0, 1)
            result["check_yamls"] = len(items)
            result["check_ok"] = all(v.ok for v in verdicts)
        print(json.dumps(result, indent=2))
        print(f"results: {write_results('bench_plan', result)}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
