"""A stand-in for ``llamafactory-cli train <yaml>`` used by the probe tests (no model is trained).

Training (``do_train``) writes ``trainer_state.json`` listing the training datasets and their sizes. Prediction
(``do_predict``) writes ``generated_predictions.jsonl`` for ``eval_dataset``: a validation sample k of task t is
answered correctly when k < n_val * skill(t), where skill grows with the amount of t's data in training (and a
little with the other tasks' data), so the probe scores behave like real ones. ``FAKE_FAIL=<substring>`` makes
the job whose YAML path contains the substring fail. ``FAKE_SLEEP=<seconds>`` makes every job take that long, and
``FAKE_TRACE=<file>`` appends one JSON line per job: its YAML, start and end times and the launch environment
(``CUDA_VISIBLE_DEVICES``, ``FORCE_TORCHRUN``, ``NPROC_PER_NODE``, ``MASTER_PORT``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import yaml


def records(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if text.lstrip().startswith("[") else [json.loads(x) for x in text.splitlines() if x]


ENV_KEYS = ("CUDA_VISIBLE_DEVICES", "FORCE_TORCHRUN", "NPROC_PER_NODE", "MASTER_PORT")


def main() -> int:
    started = time.time()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped by cotbal run: still write the trace row
    try:
        return run()
    finally:
        if os.environ.get("FAKE_TRACE"):
            row = {"yaml": sys.argv[1], "start": started, "end": time.time(),
                   "env": {k: os.environ.get(k) for k in ENV_KEYS}}  # fmt: skip
            with open(os.environ["FAKE_TRACE"], "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")


def run() -> int:
    yaml_path = sys.argv[1]
    print(f"fake llamafactory-cli train {yaml_path}", flush=True)
    time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
    if os.environ.get("FAKE_FAIL") and os.environ["FAKE_FAIL"] in yaml_path:
        print("Traceback (most recent call last):\nRuntimeError: fake failure for the test")
        return 3
    cfg = yaml.safe_load(Path(yaml_path).read_text(encoding="utf-8"))
    data_dir = Path(cfg["dataset_dir"])
    info = json.loads((data_dir / "dataset_info.json").read_text(encoding="utf-8"))
    out = Path(cfg["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    if cfg.get("do_train"):
        counts: dict[str, int] = {}
        for name in cfg["dataset"].split(","):
            entry = info[name]
            task = entry.get("cotbal_task", name)
            counts[task] = counts.get(task, 0) + len(records(data_dir / entry["file_name"]))
        (out / "trainer_state.json").write_text(json.dumps({"task_samples": counts}), encoding="utf-8")
        return 0
    assert cfg.get("do_predict") and cfg.get("predict_with_generate")
    counts = {}
    if cfg.get("adapter_name_or_path"):
        state = Path(cfg["adapter_name_or_path"].split(",")[-1]) / "trainer_state.json"
        counts = json.loads(state.read_text(encoding="utf-8"))["task_samples"]
    val_name = cfg["eval_dataset"]
    task = val_name.removesuffix("_val")
    rows = records(data_dir / info[val_name]["file_name"])
    own = counts.get(task, 0) + sum(v for k, v in counts.items() if k.startswith("g") and task == "grp")
    others = sum(counts.values()) - own
    skill = min(1.0, 0.05 + own / 300 + others / 3000 + (sum(map(ord, task)) % 7) / 100)
    with (out / "generated_predictions.jsonl").open("w", encoding="utf-8") as f:
        for k, row in enumerate(rows):
            pred = row["output"] if k < len(rows) * skill else "wrong"
            f.write(json.dumps({"prompt": row["instruction"], "predict": pred, "label": row["output"]}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
