"""The YAMLs and commands of the probe jobs: what ``cotbal plan`` changes in the base YAML, and why.

Every probe training and every prediction is an ordinary ``llamafactory-cli train <yaml>`` run. The base YAML is
copied with the data, output and evaluation keys replaced; what else changes is listed in each YAML's header:

* **Trainings** never set ``overwrite_output_dir`` and drop ``resume_from_checkpoint``, so that LLaMA-Factory's own
  last-checkpoint detection (``hparams/parser.py``: ``get_last_checkpoint(output_dir)`` when ``do_train`` and the
  folder exists) resumes an interrupted probe. They save resumable checkpoints (``save_strategy: steps``,
  ``save_steps`` from ``--save-steps``: a float < 1 is a fraction of the run, an integer a step count;
  ``save_only_model: false`` — a model-only checkpoint cannot restore the optimizer; ``save_total_limit``).
  A base YAML with ``loss: cotbal`` keeps the VITW loss with equal weights (``cotbal_weighting: ew``): probes are
  equal-weight runs (paper §3.2); ``cotbal_weights`` / another weighting of a final-training YAML is dropped.
* **Predictions** drop ``deepspeed``: LLaMA-Factory refuses ``predict_with_generate`` under ZeRO-3
  (``predict_with_generate is incompatible with DeepSpeed ZeRO-3``) and transformers refuses inference under
  ZeRO-1/2 (``ZeRO inference only makes sense with ZeRO Stage 3``). A prediction job therefore holds one full
  copy of the model per process (bf16 7B: ~15 GB), on one GPU or data-parallel under torchrun. Training-only
  keys (optimizer variants, checkpointing, ``report_to``) are dropped too. They write into ``<dir>.partial``,
  which ``cotbal run`` renames to ``<dir>`` once the job exited 0 (a job killed mid-file leaves no
  ``generated_predictions.jsonl`` that looks finished).
* **vLLM** (``--infer-backend vllm``): predictions run LLaMA-Factory's ``scripts/vllm_infer.py`` (in the
  LLaMA-Factory repository, not in the pip package; LLaMA-Factory refuses ``infer_backend: vllm`` in
  ``llamafactory-cli train``). It writes the same ``generated_predictions.jsonl``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import ProbeError

# keys of the base YAML that must not reach the probe trainings (data / evaluation of the original run, caches,
# and the keys cotbal plan sets itself for resumable probes)
DROP_FOR_TRAIN = (
    "eval_dataset", "val_size", "do_eval", "eval_strategy", "evaluation_strategy", "eval_steps",
    "load_best_model_at_end", "metric_for_best_model", "tokenized_path", "resume_from_checkpoint", "do_predict",
    "predict_with_generate", "overwrite_output_dir", "save_strategy", "save_steps", "save_total_limit",
    "save_only_model",
)  # fmt: skip
# and those that must not reach the predict jobs (training data, loss, checkpointing, DeepSpeed, loggers)
DROP_FOR_PREDICT = DROP_FOR_TRAIN + (
    "dataset", "do_train", "loss", "packing", "neat_packing", "deepspeed", "report_to", "run_name", "plot_loss",
    "optim", "pissa_init", "pissa_iter", "pissa_convert", "create_new_adapter",
)  # fmt: skip
# prefixes of training-only optimizer features (GaLore, APOLLO, BAdam, Adam-mini, Muon): refused by LLaMA-Factory
# in some distributed set-ups and meaningless for generation
TRAIN_ONLY_PREFIXES = ("galore_", "apollo_", "badam_", "use_galore", "use_apollo", "use_badam", "use_adam_mini",
                       "use_muon")  # fmt: skip
INFER_BACKENDS = ("hf", "vllm")
PARTIAL_SUFFIX = ".partial"
# max_lora_rank values vLLM accepts
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


@dataclass(frozen=True)
class SaveSettings:
    """Checkpointing of the probe trainings.

    Attributes:
        save_steps: ``0``: no intermediate checkpoint (a killed probe restarts from scratch); a float in (0, 1): a
            fraction of the run's optimizer steps (HF ``save_steps`` semantics); an integer >= 1: a step count.
        keep: ``save_total_limit``, the number of checkpoints kept (the newest).
    """

    save_steps: float = 0.25
    keep: int = 1

    def check(self) -> None:
        """Raise ProbeError for values HF would refuse or misread."""
        s = self.save_steps
        ok = isinstance(s, int | float) and math.isfinite(s) and s >= 0 and (s < 1 or float(s).is_integer())
        if not ok:
            raise ProbeError(
                f"--save-steps must be 0 (no checkpoints), a fraction in (0, 1) of the run, or a whole number of "
                f"steps; got {s}."
            )
        if not (isinstance(self.keep, int) and self.keep >= 1):
            raise ProbeError(f"--keep-checkpoints must be a whole number >= 1, got {self.keep}.")


def split_names(value: Any) -> list[str]:
    """``"a, b"`` or ``["a", "b"]`` → ``["a", "b"]``; ``None`` → ``[]``."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v).strip() for v in value]


def _is_lora(base: Mapping[str, Any]) -> bool:
    return str(base.get("finetuning_type", "lora")) == "lora"


def _drop_train_only(cfg: dict[str, Any]) -> list[str]:
    gone = [k for k in cfg if k.startswith(TRAIN_ONLY_PREFIXES)]
    for key in gone:
        cfg.pop(key)
    return gone


def train_config(
    base: Mapping[str, Any],
    datasets: Sequence[str],
    data_dir: Path,
    media_dir: str,
    out: Path,
    run: str,
    save: SaveSettings,
) -> tuple[dict[str, Any], list[str]]:
    """The probe training YAML of ``run`` and the header notes that explain what differs from the base YAML."""
    cfg = {k: v for k, v in base.items() if k not in DROP_FOR_TRAIN}
    notes: list[str] = []
    if base.get("overwrite_output_dir"):
        notes.append("overwrite_output_dir dropped: it would delete the checkpoints an interrupted probe resumes from")
    cfg.update(stage="sft", do_train=True, dataset=",".join(datasets), dataset_dir=str(data_dir),
               media_dir=media_dir, output_dir=str(out))  # fmt: skip
    if save.save_steps:
        steps = save.save_steps if save.save_steps < 1 else int(save.save_steps)
        cfg.update(save_strategy="steps", save_steps=steps, save_total_limit=save.keep, save_only_model=False)
        every = f"every {steps:g} of the run" if steps < 1 else f"every {steps} steps"
        notes.append(
            f"resumable: checkpoints {every} (save_only_model: false, newest {save.keep} kept); LLaMA-Factory "
            "resumes from the last one when this YAML is run again (cotbal plan --save-steps 0: no checkpoints)"
        )
    else:
        cfg.update(save_strategy="no")
        notes.append("no intermediate checkpoints (--save-steps 0): an interrupted probe restarts from scratch")
    if "run_name" in base:
        cfg["run_name"] = f"cotbal-{run}"
    if base.get("loss") == "cotbal":
        dropped = [k for k in ("cotbal_weights", "cotbal_weighting") if k in cfg]
        for key in dropped + [k for k in cfg if k.startswith(("cotbal_dwa_", "cotbal_igb_"))]:
            cfg.pop(key)
        cfg["cotbal_weighting"] = "ew"
        if base.get("cotbal_weights") or base.get("cotbal_weighting") not in (None, "ew"):
            notes.append(
                "probes train with equal task weights (cotbal_weighting: ew); the base YAML's "
                f"{' / '.join(dropped)} belong to the final training"
            )
    return cfg, notes


def predict_config(
    base: Mapping[str, Any],
    model_dir: Path | None,
    dataset: str,
    data_dir: Path,
    media_dir: str,
    out: Path,
    batch_size: int | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The HF predict YAML of one (model, validation dataset) and its header notes.

    ``model_dir`` is the probe's output folder, or ``None`` to predict with the base model itself.
    """
    cfg = {k: v for k, v in base.items() if k not in DROP_FOR_PREDICT and not k.startswith("cotbal_")}
    notes: list[str] = []
    if base.get("deepspeed"):
        notes.append(
            "deepspeed dropped: LLaMA-Factory refuses predict_with_generate under ZeRO-3 and transformers refuses "
            "inference under ZeRO-1/2; each process holds one full model copy (data-parallel under torchrun)"
        )
    gone = _drop_train_only(cfg)
    if gone:
        notes.append(f"training-only keys dropped: {', '.join(gone)}")
    if model_dir is not None:
        if _is_lora(base):
            previous = split_names(base.get("adapter_name_or_path"))
            cfg["adapter_name_or_path"] = ",".join([*previous, str(model_dir)])
        else:
            cfg["model_name_or_path"] = str(model_dir)
            cfg.pop("adapter_name_or_path", None)
    cfg.update(
        stage="sft", do_predict=True, predict_with_generate=True, eval_dataset=dataset, dataset_dir=str(data_dir),
        media_dir=media_dir, output_dir=str(out), report_to="none",
    )  # fmt: skip
    if batch_size is not None:
        cfg["per_device_eval_batch_size"] = batch_size
    cfg.setdefault("do_sample", False)
    return cfg, notes


def _vllm_lora_rank(rank: int) -> int:
    for allowed in VLLM_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise ProbeError(f"lora_rank {rank} is above vLLM's largest max_lora_rank ({VLLM_LORA_RANKS[-1]}).")


def vllm_command(
    base: Mapping[str, Any],
    model_dir: Path | None,
    dataset: str,
    dataset_dir: Path,
    save_name: Path,
    script: Path,
    vllm_config: Mapping[str, Any] | None = None,
    batch_size: int | None = None,
    python: str = "python",
) -> list[str]:
    """The ``scripts/vllm_infer.py`` command of one prediction (greedy decoding, like the HF predict YAMLs).

    Raises:
        ProbeError: a setting ``vllm_infer.py`` cannot honour (several adapters, a sampling base YAML).
    """
    model = str(base["model_name_or_path"])
    adapters = split_names(base.get("adapter_name_or_path"))
    config = dict(vllm_config or {})
    if model_dir is not None:
        if _is_lora(base):
            adapters = [*adapters, str(model_dir)]
        else:
            model, adapters = str(model_dir), []
    if len(adapters) > 1:
        raise ProbeError(
            f"--infer-backend vllm: the probes would need {len(adapters)} LoRA adapters ({', '.join(adapters)}); "
            "vLLM loads one. Merge the base YAML's adapter_name_or_path into the model (llamafactory-cli export) "
            "or use --infer-backend hf."
        )
    if adapters and int(base.get("lora_rank", 8)) > 16 and "max_lora_rank" not in config:
        config["max_lora_rank"] = _vllm_lora_rank(int(base.get("lora_rank", 8)))
    if base.get("do_sample"):
        raise ProbeError(
            "--infer-backend vllm: the base YAML sets do_sample: true; probe predictions decode greedily. Remove it."
        )
    args: dict[str, str] = {"model_name_or_path": model}
    if adapters:
        args["adapter_name_or_path"] = adapters[0]
    args.update(dataset=dataset, dataset_dir=str(dataset_dir), template=str(base.get("template", "default")))
    for key in ("cutoff_len", "max_new_tokens", "image_max_pixels", "image_min_pixels", "video_fps", "video_maxlen",
                "default_system", "enable_thinking", "max_samples"):  # fmt: skip
        if base.get(key) is not None:
            args[key] = str(base[key])
    # greedy decoding, like do_sample: false in the HF predict YAMLs (the script's defaults sample)
    args.update(temperature="0", top_p="1.0", top_k="-1", seed=str(base.get("seed", 42)))
    if batch_size is not None:
        args["batch_size"] = str(batch_size)
    if config:
        args["vllm_config"] = json.dumps(config, sort_keys=True)
    args["save_name"] = str(save_name)
    # --key=value: python-fire (the script's parser) would read a separate "-1" as a flag
    argv = [python, str(script)] + [f"--{k}={v}" for k, v in args.items()]
    return argv


def dump_yaml(path: Path, data: Mapping[str, Any], notes: Sequence[str] = ()) -> None:
    """Write a generated YAML with a header naming its origin and every deliberate change from the base YAML."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ["# generated by `cotbal plan`; edit the base YAML and re-plan rather than this file"]
    header += [f"# - {note}" for note in notes]
    path.write_text(
        "\n".join(header) + "\n" + yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
