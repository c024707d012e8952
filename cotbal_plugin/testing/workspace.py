"""Small multi-task datasets, YAML files and ``llamafactory-cli`` runs for tests and benchmarks."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

DS_Z2: dict[str, Any] = {  # DeepSpeed ZeRO-2 on CPU over gloo (DESIGN.md §5): the tests' config
    "train_batch_size": "auto",
    "train_micro_batch_size_per_gpu": "auto",
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
    "zero_allow_untested_optimizer": True,
    "fp16": {"enabled": False},
    "bf16": {"enabled": False},
    "zero_optimization": {"stage": 2, "overlap_comm": False, "contiguous_gradients": True},
}

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()


def text_task_samples(task: str, n: int, answer_words: int, seed: int) -> list[dict[str, Any]]:
    """``n`` alpaca-format samples whose answers have ``answer_words`` words (deterministic)."""
    rng = random.Random(f"{task}-{seed}")
    samples = []
    for i in range(n):
        question = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 6)))
        answer = " ".join(rng.choice(WORDS) for _ in range(answer_words))
        samples.append({"instruction": f"{task} {i}: {question}", "input": "", "output": answer, "task": task})
    return samples


def write_text_tasks(
    data_dir: str | Path,
    tasks: dict[str, int] | None = None,
    n: int = 16,
    seed: int = 0,
    extra_info: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write one alpaca JSON file per task (task → answer length in words) and their ``dataset_info.json``."""
    tasks = tasks or {"short": 1, "long": 12}
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {}
    for task, length in tasks.items():
        path = data_dir / f"{task}.json"
        path.write_text(json.dumps(text_task_samples(task, n, length, seed), indent=1), encoding="utf-8")
        info[task] = {"file_name": path.name}
        info[task].update((extra_info or {}).get(task, {}))
    (data_dir / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info


def all_text(tasks: dict[str, int] | None = None, n: int = 16, seed: int = 0) -> list[str]:
    """Every string of the text tasks (to train a tokenizer that covers them)."""
    out = []
    for task, length in (tasks or {"short": 1, "long": 12}).items():
        for s in text_task_samples(task, n, length, seed):
            out += [s["instruction"], s["output"]]
    return out


def sft_config(model: str | Path, data_dir: str | Path, output_dir: str | Path, **overrides: Any) -> dict[str, Any]:
    """A deterministic SGD SFT config for a tiny model (constant LR, no clipping, no shuffling, fp32 on CPU)."""
    config: dict[str, Any] = {
        "model_name_or_path": str(model),
        "trust_remote_code": False,
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "full",
        "dataset_dir": str(data_dir),
        "template": "default",
        "cutoff_len": 128,
        "overwrite_cache": True,
        "preprocessing_num_workers": None,
        "output_dir": str(output_dir),
        "overwrite_output_dir": True,
        "save_strategy": "no",
        "logging_steps": 1,
        "report_to": "none",
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "learning_rate": 0.5,
        "lr_scheduler_type": "constant",
        "optim": "sgd",
        "max_grad_norm": 0.0,
        "max_steps": 3,
        "seed": 0,
        "data_seed": 0,
        "disable_shuffling": True,
        "dataloader_num_workers": 0,
        "use_cpu": True,
        "bf16": False,
        "fp16": False,
    }
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


def write_yaml(path: str | Path, config: dict[str, Any]) -> Path:
    """Write a YAML config file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def cli_env(nproc: int = 1, **extra: str) -> dict[str, str]:
    """Environment for a CPU ``llamafactory-cli`` run (torchrun over gloo when ``nproc`` > 1)."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env.update(
        {
            "CUDA_VISIBLE_DEVICES": "",
            "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "DISABLE_VERSION_CHECK": "1",
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "WANDB_DISABLED": "true",
            "PYTHONWARNINGS": "ignore",
        }
    )
    if nproc > 1:
        env.update({"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": str(nproc), "MASTER_PORT": str(_free_port())})
    env.update(extra)
    return env


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_train(yaml_path: str | Path, nproc: int = 1, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    """Run ``llamafactory-cli train yaml_path``; returns the completed process (stdout+stderr in ``.stdout``)."""
    exe = Path(sys.executable).parent / "llamafactory-cli"
    return subprocess.run(
        [str(exe), "train", str(yaml_path)],
        env=cli_env(nproc, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def load_params(folder: str | Path) -> dict[str, Any]:
    """All tensors of the ``*.safetensors`` files in ``folder`` (final weights of a run)."""
    from safetensors.torch import load_file

    params: dict[str, Any] = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        params.update(load_file(str(file)))
    if not params:
        raise FileNotFoundError(f"no *.safetensors in {folder}")
    return params


def max_abs_diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Largest absolute difference between two parameter dicts with the same keys."""
    if set(a) != set(b):
        raise ValueError(f"parameter names differ: {sorted(set(a) ^ set(b))[:5]}")
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def log_history(output_dir: str | Path) -> list[dict[str, Any]]:
    """``log_history`` of ``trainer_state.json`` in ``output_dir``."""
    return json.loads((Path(output_dir) / "trainer_state.json").read_text())["log_history"]
