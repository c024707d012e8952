"""Helpers of the plain-HF front-end tests: tokenized multi-task rows, deterministic training arguments, runs."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

from cotbal_plugin.task_labels import IGNORE_INDEX
from cotbal_plugin.testing.workspace import text_task_samples

TASKS = {"short": 1, "long": 12}  # answer length in words: the weights matter
WEIGHTS = {"short": 2.0, "long": 0.5}
TOL = 1e-5  # float32 SGD, a few steps: observed ~1e-7 (tests/llamafactory/test_exactness.py uses the same)
SCRIPT = Path(__file__).with_name("_train_script.py")


def tokenized_rows(tokenizer: Any, n: int = 8, tasks: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Rows ``{"input_ids", "labels", "task"}`` interleaving the tasks; the prompt is masked (-100)."""
    per_task = [text_task_samples(task, n, length, seed=0) for task, length in (tasks or TASKS).items()]
    rows = []
    for group in zip(*per_task):
        for sample in group:
            prompt = [tokenizer.bos_token_id] + tokenizer(sample["instruction"] + " ->")["input_ids"]
            answer = tokenizer(" " + sample["output"])["input_ids"] + [tokenizer.eos_token_id]
            rows.append(
                {
                    "input_ids": prompt + answer,
                    "labels": [IGNORE_INDEX] * len(prompt) + answer,
                    "task": sample["task"],
                }
            )
    return rows


def prompt_completion_rows(n: int = 8, tasks: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """TRL prompt-completion rows with a task field (TRL tokenizes them and masks the prompt itself)."""
    per_task = [text_task_samples(task, n, length, seed=0) for task, length in (tasks or TASKS).items()]
    return [
        {"prompt": s["instruction"] + " ->", "completion": " " + s["output"], "task": s["task"]}
        for group in zip(*per_task)
        for s in group
    ]


def training_args(output_dir: str | Path, **overrides: Any) -> Any:
    """Deterministic SGD arguments (constant LR, no clipping, fp32, CPU, sequential order, no saving)."""
    from transformers import TrainingArguments

    return TrainingArguments(**args_dict(output_dir, **overrides))


def args_dict(output_dir: str | Path, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`training_args` (also used by the torchrun script, as JSON)."""
    kw: dict[str, Any] = {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "learning_rate": 0.5,
        "lr_scheduler_type": "constant",
        "optim": "sgd",
        "max_grad_norm": 0.0,
        "max_steps": 4,
        "seed": 0,
        "data_seed": 0,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "bf16": False,
        "fp16": False,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        "train_sampling_strategy": "sequential",
    }
    kw.update(overrides)
    return kw


def losses(trainer: Any) -> list[dict[str, Any]]:
    """Training log lines (those with a ``loss``)."""
    return [h for h in trainer.state.log_history if "loss" in h]


def params(model: Any) -> dict[str, Any]:
    """Detached copies of the model's parameters."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as JSON and return the path."""
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def build(ws: dict[str, Any], trainer_class: Any = None, rows: Any = None, **kw: Any) -> Any:
    """A trainer on the tiny Llama of ``ws``; ``kw`` are ``cotbal_*`` options, ``eval_dataset`` /
    ``data_collator`` / ``compute_loss_func``, and ``TrainingArguments`` overrides."""
    import datasets
    from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq

    from cotbal_plugin.hf import CotbalTrainer

    cotbal = {k: kw.pop(k) for k in list(kw) if k.startswith("cotbal")}
    extra = {k: kw.pop(k) for k in ("eval_dataset", "data_collator", "compute_loss_func", "model") if k in kw}
    extra.setdefault("data_collator", DataCollatorForSeq2Seq(ws["tokenizer"], label_pad_token_id=-100))
    extra.setdefault("model", AutoModelForCausalLM.from_pretrained(ws["model"]))
    data = datasets.Dataset.from_list(ws["rows"]) if rows is None else rows
    output_dir = kw.pop("output_dir", ws["tmp"] / "out")
    return (trainer_class or CotbalTrainer)(
        args=training_args(output_dir, **kw), train_dataset=data, **extra, **cotbal
    )


def launch(tmp: Path, name: str, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """Run ``_train_script.py`` with ``jobs`` under ``torchrun --nproc_per_node 2``; return job kind →
    (final parameters, loss logs)."""
    from cotbal_plugin.testing.workspace import cli_env, load_params

    spec_path = write_json(tmp / f"{name}.json", {"jobs": jobs})
    exe = Path(sys.executable).parent / "torchrun"
    for attempt in range(2):
        env = cli_env(1, MASTER_PORT=cli_env(2)["MASTER_PORT"])
        cmd = [str(exe), "--nproc_per_node", "2", "--master_port", env["MASTER_PORT"], str(SCRIPT), str(spec_path)]
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
        # A gloo rank occasionally aborts in C++ before training on the 2-core CI machine (see
        # tests/llamafactory/_runs.py): retry once then, and only then.
        if proc.returncode == 0 or "SIGABRT" not in proc.stdout or attempt:
            break
        warnings.warn(f"torchrun launch {name} aborted (SIGABRT); retrying once", stacklevel=2)
    if proc.returncode != 0:
        (tmp / f"{name}.log").write_text(proc.stdout)
        raise AssertionError(f"torchrun launch {name} failed:\n{proc.stdout[-4000:]}")
    out = {}
    for job in jobs:
        history = json.loads((Path(job["out"]) / "log_history.json").read_text())
        out[job["kind"]] = (load_params(job["out"]), [h for h in history if "loss" in h])
    return out
