"""``cotbal plan``: subsets, dataset_info entries, probe / predict / STL YAMLs, a manifest and a shell script.

Layout written under ``out_dir``::

    data/dataset_info.json      original entries (file paths made absolute) + the subset entries
    data/<dataset>__cotbal_large.jsonl, data/<dataset>__cotbal_mini.jsonl
    yaml/train_<run>.yaml       one LLaMA-Factory SFT YAML per probe run (and per STL baseline)
    yaml/predict_<run>__<val dataset>.yaml
    manifest.json               everything above, and the job list `cotbal run` executes
    run_all.sh                  the same jobs as a shell script (resumable), then `cotbal eval` and `cotbal weights`

Model outputs go to ``saves_dir`` (default ``out_dir/saves``): ``saves/<run>/`` and
``saves/predict/<run>/<val dataset>/generated_predictions.jsonl``.

Dataset files are streamed twice (count, then write), never loaded whole.
"""

from __future__ import annotations

import json
import math
import random
import shlex
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..progress import bar
from .errors import ProbeError, ProbeWarning
from .jsonstream import count_records, iter_records
from .manifest import MANIFEST_VERSION, read_manifest
from .metrics import get_metric
from .scores import BASE_RUN, MINI_RUN, alone_run, check_task_names, mini_alone_run, plus_mini_run

MIN_MINI_SAMPLES = 1000
TRAIN_DONE_FILE = "trainer_state.json"
PREDICTIONS_FILE = "generated_predictions.jsonl"
# keys of the base YAML that must not reach the probe trainings (data / evaluation of the original run, caches)
DROP_FOR_TRAIN = (
    "eval_dataset", "val_size", "do_eval", "eval_strategy", "evaluation_strategy", "eval_steps",
    "load_best_model_at_end", "metric_for_best_model", "tokenized_path", "resume_from_checkpoint", "do_predict",
    "predict_with_generate",
)  # fmt: skip
# and those that must not reach the predict jobs
DROP_FOR_PREDICT = DROP_FOR_TRAIN + (
    "dataset", "do_train", "loss", "packing", "neat_packing", "resume_from_checkpoint", "save_steps", "save_strategy",
)  # fmt: skip
DIFFICULTY_CHOICES = ("real", "precise", "chat")
PATH_KEYS = ("model_name_or_path", "adapter_name_or_path", "deepspeed", "media_dir", "tokenizer_name_or_path")


@dataclass
class PlanConfig:
    """Inputs of ``cotbal plan`` (see :func:`make_plan`)."""

    base_yaml: Path
    out_dir: Path
    validation: dict[str, list[str]]
    metrics: dict[str, list[str]]
    dataset_info: Path | None = None
    tasks: list[str] | None = None
    fixed: list[str] = field(default_factory=list)
    fixed_weights: dict[str, float] = field(default_factory=dict)  # name in `fixed` → weight (default 1.0)
    large_fraction: float = 1.0
    mini_fraction: float = 1 / 32
    seed: int = 0
    difficulty: str = "real"
    stl: bool = False
    saves_dir: Path | None = None
    progress: bool | None = None  # None: a bar only when stderr is a terminal (cotbal_plugin.progress)


# ------------------------------------------------------------------------------------------------ inputs


def _load_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ProbeError(f"base YAML {str(path)!r} does not exist; pass your LLaMA-Factory SFT training YAML.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ProbeError(f"base YAML {str(path)!r} is not valid YAML ({err}).") from None
    if not isinstance(data, dict):
        raise ProbeError(f"base YAML {str(path)!r} must be a mapping of LLaMA-Factory arguments.")
    if data.get("stage", "sft") != "sft":
        raise ProbeError(
            f"base YAML {str(path)!r} has stage {data['stage']!r}; CoTBal probes are SFT runs (stage: sft)."
        )
    if "model_name_or_path" not in data:
        raise ProbeError(f"base YAML {str(path)!r} has no model_name_or_path.")
    for key in PATH_KEYS:  # local paths relative to the working directory become absolute (jobs may run elsewhere)
        names = _split_names(data.get(key))
        if names and all(Path(n).exists() for n in names):
            data[key] = ",".join(str(Path(n).resolve()) for n in names)
    return data


def _split_names(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v).strip() for v in value]


def _load_dataset_info(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        raise ProbeError(f"dataset_info {str(path)!r} does not exist; pass --dataset-info <dir>/dataset_info.json.")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ProbeError(f"{str(path)!r} is not valid JSON ({err}).") from None
    if not isinstance(info, dict) or not all(isinstance(v, dict) for v in info.values()):
        raise ProbeError(f"{str(path)!r} must map dataset names to entries (LLaMA-Factory dataset_info.json).")
    return info


def _resolve_tasks(names: Sequence[str], info: Mapping[str, Mapping[str, Any]], what: str) -> dict[str, list[str]]:
    """Map task/dataset names to {task: [datasets]}; a dataset's task is its ``cotbal_task`` or its own name."""
    tasks: dict[str, list[str]] = {}
    for name in names:
        if name in info:
            datasets = [name]
        else:
            datasets = [d for d, e in info.items() if e.get("cotbal_task") == name]
            if not datasets:
                raise ProbeError(
                    f"{what} {name!r} is neither a dataset in dataset_info.json nor a task named by a "
                    f'"cotbal_task" entry there; known datasets: {sorted(info)}.'
                )
        for ds in datasets:
            task = str(info[ds].get("cotbal_task", ds))
            if ds not in tasks.setdefault(task, []):
                tasks[task].append(ds)
    return tasks


def _source_file(name: str, entry: Mapping[str, Any], dataset_dir: Path) -> Path:
    if any(k in entry for k in ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")):
        raise ProbeError(
            f"dataset {name!r} is not a local file (hub/script/cloud entry); `cotbal plan` subsamples local "
            ".json/.jsonl files. Download it and point its dataset_info entry to the file with file_name."
        )
    if "file_name" not in entry:
        raise ProbeError(f"dataset {name!r} in dataset_info.json has no file_name.")
    path = dataset_dir / str(entry["file_name"])
    if not path.is_file():
        raise ProbeError(f"dataset {name!r}: file {str(path)!r} does not exist (file_name in dataset_info.json).")
    return path


def _check_fraction(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and 0 < value <= 1):
        raise ProbeError(f"{name} must be in (0, 1], got {value}.")


def _round(x: float) -> int:
    return math.floor(x + 0.5)


# ----------------------------------------------------------------------------------------------- subsets


def subset_indices(
    n: int, large_fraction: float, mini_fraction: float, seed: int, key: str
) -> tuple[list[int], list[int]]:
    """Deterministic (large, mini) index lists for a dataset of ``n`` records; mini is drawn from large.

    Both fractions are of the entire dataset. Raises ProbeError when the dataset is too small.
    """
    large_n, mini_n = _round(large_fraction * n), _round(mini_fraction * n)
    if mini_n < 1 or large_n < 1:
        raise ProbeError(
            f"dataset {key!r} has {n} samples: a mini fraction of {mini_fraction:g} gives {mini_fraction * n:.2f} "
            "samples (< 1). Use a larger --mini-fraction, more data, or leave this dataset out."
        )
    rng = random.Random(f"cotbal/{seed}/{key}")
    large = list(range(n)) if large_n == n else sorted(rng.sample(range(n), large_n))
    mini = sorted(rng.sample(large, mini_n))
    return large, mini


def _write_subsets(
    source: Path, large_path: Path | None, mini_path: Path, large: Sequence[int], mini: Sequence[int]
) -> None:
    large_set, mini_set = set(large) if large_path else set(), set(mini)
    large_f = large_path.open("w", encoding="utf-8") if large_path else None
    try:
        with mini_path.open("w", encoding="utf-8") as mini_f:
            for i, record in enumerate(iter_records(source)):
                if i in mini_set or i in large_set:
                    line = json.dumps(record, ensure_ascii=False) + "\n"
                    if i in mini_set:
                        mini_f.write(line)
                    if large_f is not None and i in large_set:
                        large_f.write(line)
    finally:
        if large_f is not None:
            large_f.close()


# --------------------------------------------------------------------------------------------------- YAML


def _train_yaml(
    base: Mapping[str, Any], datasets: Sequence[str], data_dir: Path, media_dir: str, out: Path, run: str
) -> dict:
    cfg = {k: v for k, v in base.items() if k not in DROP_FOR_TRAIN}
    cfg.update(
        stage="sft", do_train=True, dataset=",".join(datasets), dataset_dir=str(data_dir), media_dir=media_dir,
        output_dir=str(out), overwrite_output_dir=True,
    )  # fmt: skip
    if "run_name" in base:
        cfg["run_name"] = f"cotbal-{run}"
    return cfg


def _predict_yaml(
    base: Mapping[str, Any], model_dir: Path | None, dataset: str, data_dir: Path, media_dir: str, out: Path
) -> dict:
    cfg = {k: v for k, v in base.items() if k not in DROP_FOR_PREDICT and not k.startswith("cotbal_")}
    if model_dir is not None:
        if str(base.get("finetuning_type", "lora")) == "lora":
            previous = _split_names(base.get("adapter_name_or_path"))
            cfg["adapter_name_or_path"] = ",".join([*previous, str(model_dir)])
        else:
            cfg["model_name_or_path"] = str(model_dir)
            cfg.pop("adapter_name_or_path", None)
    cfg.update(
        stage="sft", do_predict=True, predict_with_generate=True, eval_dataset=dataset, dataset_dir=str(data_dir),
        media_dir=media_dir, output_dir=str(out), overwrite_output_dir=True,
    )  # fmt: skip
    cfg.setdefault("do_sample", False)
    return cfg


def _dump_yaml(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# generated by `cotbal plan`; edit the base YAML and re-plan rather than this file\n"
        + yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )


# --------------------------------------------------------------------------------------------------- plan


def _validate(cfg: PlanConfig, tasks: Mapping[str, list[str]], fixed: Mapping[str, list[str]], info: Mapping) -> None:
    _check_fraction("--large-fraction", cfg.large_fraction)
    _check_fraction("--mini-fraction", cfg.mini_fraction)
    if cfg.mini_fraction > cfg.large_fraction:
        raise ProbeError(
            f"--mini-fraction ({cfg.mini_fraction:g}) is larger than --large-fraction ({cfg.large_fraction:g}); "
            "the mini subset is drawn from the large-enough subset."
        )
    if cfg.difficulty not in DIFFICULTY_CHOICES:
        raise ProbeError(f"unknown difficulty variant {cfg.difficulty!r}; valid: {', '.join(DIFFICULTY_CHOICES)}.")
    if not tasks:
        raise ProbeError("no tasks: pass --tasks (dataset or task names) or list them as `dataset:` in the base YAML.")
    if len(tasks) < 2:
        raise ProbeError(f"CoTBal balances at least 2 tasks; got {list(tasks)}.")
    both = sorted(set(tasks) & set(fixed))
    if both:
        raise ProbeError(f"task(s) {both} are both balanced and fixed; drop them from --tasks or from --fixed.")
    check_task_names([*tasks, *fixed])
    for option, mapping in (("--val", cfg.validation), ("--metric", cfg.metrics)):
        unknown = sorted(set(mapping) - set(tasks))
        if unknown:
            raise ProbeError(f"{option} names task(s) {unknown} that are not balanced tasks: {list(tasks)}.")
    for task in tasks:
        if not cfg.validation.get(task):
            raise ProbeError(
                f"task {task!r} has no validation dataset; add --val {task}=<dataset in dataset_info.json>."
            )
        if not cfg.metrics.get(task):
            raise ProbeError(
                f'task {task!r} has no metric; add --metric {task}=<metric>[,<metric>...] (or a "cotbal_metric" '
                "to its validation dataset's dataset_info.json entry)."
            )
        for metric in cfg.metrics[task]:
            try:
                get_metric(metric)
            except ProbeError as err:
                raise ProbeError(f"task {task!r}: {err}") from None
        for ds in cfg.validation[task]:
            if ds not in info:
                raise ProbeError(f"validation dataset {ds!r} of task {task!r} is not in dataset_info.json.")


def _default_metrics(cfg: PlanConfig, tasks: Mapping[str, list[str]], info: Mapping[str, Mapping[str, Any]]) -> None:
    """Tasks without --metric take the ``cotbal_metric`` of their validation (else training) dataset entries."""
    for task, datasets in tasks.items():
        if cfg.metrics.get(task):
            continue
        for group in (cfg.validation.get(task) or [], datasets):
            found = [str(info[d]["cotbal_metric"]) for d in group if d in info and info[d].get("cotbal_metric")]
            if found:
                cfg.metrics[task] = list(dict.fromkeys(found))
                break


def make_plan(cfg: PlanConfig) -> dict[str, Any]:
    """Write the plan (see module docstring) and return the manifest.

    Raises:
        ProbeError: a missing/invalid input, a task without validation set or metric, an unknown metric,
            fractions outside (0, 1] or mini > large, a dataset too small for its mini subset.
    """
    base = _load_yaml(cfg.base_yaml)
    info_path = cfg.dataset_info or Path(str(base.get("dataset_dir", "data"))) / "dataset_info.json"
    info = _load_dataset_info(info_path)
    src_dir = info_path.resolve().parent
    names = cfg.tasks if cfg.tasks else _split_names(base.get("dataset"))
    tasks = _resolve_tasks(names, info, "task")
    fixed = _resolve_tasks(cfg.fixed, info, "fixed task")
    _default_metrics(cfg, tasks, info)
    _validate(cfg, tasks, fixed, info)
    if cfg.difficulty == "chat" and fixed:
        warnings.warn("fixed tasks are unused by the chat form (one task per probe).", ProbeWarning, stacklevel=2)

    out = cfg.out_dir.resolve()
    data_dir, yaml_dir = out / "data", out / "yaml"
    saves = (cfg.saves_dir or out / "saves").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    media_dir = str(Path(str(base["media_dir"])).resolve()) if base.get("media_dir") else str(src_dir)

    # ---- subsets
    new_info: dict[str, dict[str, Any]] = {}
    for name, entry in info.items():
        entry = dict(entry)
        if "file_name" in entry and not any(k.endswith("_url") for k in entry):
            entry["file_name"] = str((src_dir / str(entry["file_name"])).resolve())
        new_info[name] = entry
    subsets: dict[str, dict[str, Any]] = {}
    large_of: dict[str, list[str]] = {}
    mini_of: dict[str, list[str]] = {}
    all_sources = [(t, ds) for t, dss in [*tasks.items(), *fixed.items()] for ds in dss]
    for task, ds in bar(all_sources, desc="cotbal plan: subsets", unit="dataset", progress=cfg.progress):
        source = _source_file(ds, info[ds], src_dir)
        n = count_records(source)
        if n == 0:
            raise ProbeError(f"dataset {ds!r} ({str(source)!r}) is empty.")
        large, mini = subset_indices(n, cfg.large_fraction, cfg.mini_fraction, cfg.seed, ds)
        large_name, mini_name = f"{ds}__cotbal_large", f"{ds}__cotbal_mini"
        mini_file = data_dir / f"{mini_name}.jsonl"
        full = len(large) == n
        large_file = source.resolve() if full else data_dir / f"{large_name}.jsonl"
        _write_subsets(source, None if full else large_file, mini_file, large, mini)
        base_entry = {k: v for k, v in info[ds].items() if k not in ("file_name", "cotbal_task")}
        parts = ((large_name, large_file, len(large), "large"), (mini_name, mini_file, len(mini), "mini"))
        for sub_name, sub_file, size, kind in parts:
            new_info[sub_name] = {**base_entry, "file_name": str(sub_file), "cotbal_task": task}
            subsets[sub_name] = {"task": task, "source": ds, "kind": kind, "size": size, "source_size": n,
                                 "file": str(sub_file)}  # fmt: skip
        large_of.setdefault(task, []).append(large_name)
        mini_of.setdefault(task, []).append(mini_name)
    for task in [*tasks, *fixed]:
        size = sum(subsets[m]["size"] for m in mini_of[task])
        if size < MIN_MINI_SAMPLES:
            warnings.warn(
                f"the mini subset of task {task!r} has {size} samples (< {MIN_MINI_SAMPLES}, appendix C); "
                "consider a larger --mini-fraction.",
                ProbeWarning,
                stacklevel=2,
            )
    (data_dir / "dataset_info.json").write_text(json.dumps(new_info, indent=2, ensure_ascii=False) + "\n", "utf-8")

    # ---- runs: name -> (kind, training datasets, validation tasks)
    balanced = list(tasks)
    all_mini = [m for t in [*tasks, *fixed] for m in mini_of[t]]
    runs: dict[str, dict[str, Any]] = {}
    if cfg.difficulty in ("real", "precise"):
        runs[MINI_RUN] = {"kind": "probe", "datasets": all_mini, "evaluate_on": balanced}
        for t in balanced:
            others = [m for u in [*tasks, *fixed] if u != t for m in mini_of[u]]
            runs[plus_mini_run(t)] = {"kind": "probe", "datasets": large_of[t] + others, "evaluate_on": balanced}
    if cfg.difficulty == "chat":
        runs[BASE_RUN] = {"kind": "base", "datasets": [], "evaluate_on": balanced}
    if cfg.difficulty in ("precise", "chat"):
        for t in balanced:
            runs[alone_run(t)] = {"kind": "probe", "datasets": list(large_of[t]),
                                  "evaluate_on": balanced if cfg.difficulty == "chat" else [t]}  # fmt: skip
            runs[mini_alone_run(t)] = {"kind": "probe", "datasets": list(mini_of[t]), "evaluate_on": [t]}
    if cfg.stl:
        for t in balanced:
            runs[f"stl_{t}"] = {"kind": "stl", "datasets": list(tasks[t]), "evaluate_on": []}

    # ---- YAMLs and jobs
    jobs: list[dict[str, Any]] = []
    predictions: list[dict[str, str]] = []
    for run, spec in runs.items():
        model_dir = None
        if spec["kind"] != "base":
            model_dir = saves / run
            train_path = yaml_dir / f"train_{run}.yaml"
            _dump_yaml(train_path, _train_yaml(base, spec["datasets"], data_dir, media_dir, model_dir, run))
            spec["yaml"], spec["output_dir"] = str(train_path), str(model_dir)
            jobs.append({"name": f"train:{run}", "kind": "train", "run": run, "yaml": str(train_path),
                         "output_dir": str(model_dir), "done": str(model_dir / TRAIN_DONE_FILE)})  # fmt: skip
        for task in spec["evaluate_on"]:
            for ds in cfg.validation[task]:
                pred_dir = saves / "predict" / run / ds
                pred_path = yaml_dir / f"predict_{run}__{ds}.yaml"
                _dump_yaml(pred_path, _predict_yaml(base, model_dir, ds, data_dir, media_dir, pred_dir))
                done = str(pred_dir / PREDICTIONS_FILE)
                job = {"name": f"predict:{run}:{ds}", "kind": "predict", "run": run, "task": task, "dataset": ds}
                jobs.append({**job, "yaml": str(pred_path), "output_dir": str(pred_dir), "done": done})
                predictions.append({"run": run, "task": task, "dataset": ds, "file": done})
    for job in jobs:
        job["log"] = str(out / "logs" / (job["name"].replace(":", "__") + ".log"))

    manifest = {
        "version": MANIFEST_VERSION,
        "created_by": "cotbal plan",
        "base_yaml": str(cfg.base_yaml.resolve()),
        "source_dataset_info": str(info_path.resolve()),
        "dataset_dir": str(data_dir),
        "media_dir": media_dir,
        "saves_dir": str(saves),
        "seed": cfg.seed,
        "large_fraction": cfg.large_fraction,
        "mini_fraction": cfg.mini_fraction,
        "difficulty": cfg.difficulty,
        "tasks": {
            t: {"datasets": tasks[t], "validation": cfg.validation[t], "metrics": cfg.metrics[t]} for t in tasks
        },
        "fixed": {t: {"datasets": fixed[t], "weight": _fixed_weight(cfg, t, fixed[t])} for t in fixed},
        "subsets": subsets,
        "runs": runs,
        "jobs": jobs,
        "predictions": predictions,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", "utf-8")
    _write_script(out, manifest)
    return manifest


def _write_script(out: Path, manifest: Mapping[str, Any]) -> None:
    q = shlex.quote
    lines = [
        "#!/usr/bin/env bash",
        "# generated by `cotbal plan`: runs every probe job (skipping finished ones), then scores and weights.",
        "# Set COTBAL_LAUNCHER to change the command (default: llamafactory-cli train).",
        "set -euo pipefail",
        'LAUNCHER=${COTBAL_LAUNCHER:-"llamafactory-cli train"}',
        "job() {  # job <done file> <name> <yaml> <log>",
        '  if [ -s "$1" ]; then echo "[cotbal] skip $2 (done)"; return; fi',
        '  echo "[cotbal] run $2"; mkdir -p "$(dirname "$4")"',
        '  $LAUNCHER "$3" > "$4" 2>&1 || { echo "[cotbal] FAILED $2, log: $4"; tail -n 40 "$4"; exit 1; }',
        "}",
    ]
    for job in manifest["jobs"]:
        lines.append(f"job {q(job['done'])} {q(job['name'])} {q(job['yaml'])} {q(job['log'])}")
    lines.append(f"cotbal eval --manifest {q(str(out / 'manifest.json'))} --out {q(str(out / 'scores.json'))}")
    lines.append(
        f"cotbal weights --scores {q(str(out / 'scores.json'))} --difficulty {manifest['difficulty']} "
        f"--temperature 0.5 --out {q(str(out / 'weights.json'))}"
        + "".join(f" --fixed {q(t)}={spec.get('weight', 1.0)!r}" for t, spec in manifest["fixed"].items())
    )
    path = out / "run_all.sh"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o755)


def _fixed_weight(cfg: PlanConfig, task: str, datasets: Sequence[str]) -> float:
    """Weight of a fixed task: the one given for its name or one of its datasets (``--fixed NAME=W``), else 1."""
    given = {cfg.fixed_weights[n] for n in (task, *datasets) if n in cfg.fixed_weights}
    if len(given) > 1:
        raise ProbeError(f"--fixed gives task {task!r} several weights {sorted(given)}; give one.")
    return given.pop() if given else 1.0


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Load a manifest written by :func:`make_plan` (checks: :func:`cotbal_plugin.probe.manifest.read_manifest`)."""
    return read_manifest(path)[1]
