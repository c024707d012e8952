"""``cotbal plan``: subsets, dataset_info entries, probe / predict / STL YAMLs, a manifest and a shell script.

Layout written under ``out_dir``::

    data/dataset_info.json      original entries (file paths made absolute) + the subset entries
    data/<dataset>__cotbal_large.jsonl, data/<dataset>__cotbal_mini.jsonl
    yaml/train_<run>.yaml       one LLaMA-Factory SFT YAML per probe run (and per STL baseline)
    yaml/predict_<run>__<val dataset>.yaml
    manifest.json               everything above, the job list `cotbal run` executes, and the cost estimate
    run_all.sh                  the same jobs as a shell script (resumable), then `cotbal eval` and `cotbal weights`

Model outputs go to ``saves_dir`` (default ``out_dir/saves``): ``saves/<run>/`` and
``saves/predict/<run>/<val dataset>/generated_predictions.jsonl``. What the YAMLs change in the base YAML (and why)
is in :mod:`.jobs`; the cost estimate in :mod:`.cost`.

Everything is first written into a temporary folder next to ``out_dir`` and moved into place only when the whole
plan succeeded, so a refused plan leaves nothing behind (and an earlier plan in ``out_dir`` untouched). Logs and
saves of an earlier plan are never touched. Dataset files are streamed twice (count, then write), never loaded whole.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shlex
import shutil
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..progress import bar
from .cost import CostModel, Tally, TokenCounter, cost_model, default_image_tokens, human, summarize
from .errors import ProbeError, ProbeWarning
from .jobs import (
    INFER_BACKENDS,
    PARTIAL_SUFFIX,
    SaveSettings,
    dump_yaml,
    predict_config,
    split_names,
    train_config,
    vllm_command,
)
from .jsonstream import count_records, iter_records
from .manifest import MANIFEST_VERSION, read_manifest
from .metrics import get_metric
from .scores import BASE_RUN, MINI_RUN, alone_run, check_task_names, mini_alone_run, plus_mini_run

MIN_MINI_SAMPLES = 1000
TRAIN_DONE_FILE = "trainer_state.json"
PREDICTIONS_FILE = "generated_predictions.jsonl"
DIFFICULTY_CHOICES = ("real", "precise", "chat")
PATH_KEYS = ("model_name_or_path", "adapter_name_or_path", "deepspeed", "media_dir", "tokenizer_name_or_path")
PLAN_ITEMS = ("data", "yaml", "manifest.json", "run_all.sh")  # what a plan owns in out_dir (replaced on re-plan)


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
    save: SaveSettings = field(default_factory=SaveSettings)
    predict_batch_size: int | None = None
    infer_backend: str = "hf"
    vllm_script: Path | None = None
    vllm_config: dict[str, Any] | None = None
    count_tokens: str = "chars"
    image_tokens: int | None = None
    throughput: float | None = None
    predict_throughput: float | None = None
    check: bool = False


# ------------------------------------------------------------------------------------------------ inputs


def _load_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ProbeError(f"base YAML {str(path)!r} does not exist; pass your LLaMA-Factory SFT training YAML.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "parse error"
        raise ProbeError(f"base YAML {str(path)!r} is not valid YAML ({first}).") from None
    if not isinstance(data, dict):
        raise ProbeError(f"base YAML {str(path)!r} must be a mapping of LLaMA-Factory arguments.")
    if data.get("stage", "sft") != "sft":
        raise ProbeError(
            f"base YAML {str(path)!r} has stage {data['stage']!r}; CoTBal probes are SFT runs (stage: sft)."
        )
    if "model_name_or_path" not in data:
        raise ProbeError(f"base YAML {str(path)!r} has no model_name_or_path.")
    if data.get("cotbal_task_key"):
        raise ProbeError(
            f"base YAML {str(path)!r} sets cotbal_task_key: {data['cotbal_task_key']!r} (tasks from a per-sample "
            "column); `cotbal plan` draws subsets per dataset and needs one dataset (or cotbal_task group) per task: "
            "split the data by that column (cotbal convert --benchmark generic --task-field "
            f"{data['cotbal_task_key']}), list the files in dataset_info.json and remove cotbal_task_key from the "
            "base YAML."
        )
    for key in PATH_KEYS:  # local paths relative to the working directory become absolute (jobs may run elsewhere)
        names = split_names(data.get(key))
        if names and all(Path(n).exists() for n in names):
            data[key] = ",".join(str(Path(n).resolve()) for n in names)
    deepspeed = data.get("deepspeed")
    if isinstance(deepspeed, str) and not Path(deepspeed).is_file():
        raise ProbeError(
            f"base YAML {str(path)!r}: deepspeed config {deepspeed!r} not found from the working directory "
            f"{os.getcwd()!r}; run `cotbal plan` where that relative path resolves, or make it absolute."
        )
    return data


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


TRAIN_SPLIT_NAMES = ("train", "training")


def _resolve_tasks(names: Sequence[str], info: Mapping[str, Mapping[str, Any]], what: str) -> dict[str, list[str]]:
    """Map task/dataset names to {task: [datasets]}; a dataset's task is its ``cotbal_task`` or its own name."""
    tasks: dict[str, list[str]] = {}
    for name in names:
        if name in info:
            datasets = [name]
        else:
            # a task (group) name takes its training datasets: entries marked as an evaluation split are left out
            datasets = [
                d
                for d, e in info.items()
                if e.get("cotbal_task") == name and str(e.get("cotbal_split", "train")) in TRAIN_SPLIT_NAMES
            ]
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
    source: Path,
    large_path: Path | None,
    mini_path: Path,
    large: Sequence[int],
    mini: Sequence[int],
    counter: TokenCounter | None = None,
    entry: Mapping[str, Any] | None = None,
) -> tuple[Tally, Tally]:
    """Write the chosen records (the large subset only when ``large_path``); returns the (large, mini) tallies.

    The tallies carry a digest of the records chosen (``Tally.digest``), so that a re-plan can tell which jobs
    would train on other data.
    """
    large_set, mini_set = set(large), set(mini)
    hash_large, hash_mini = hashlib.sha256(), hashlib.sha256()
    acc_large = counter.accumulator(entry or {}) if counter else None
    acc_mini = counter.accumulator(entry or {}) if counter else None
    large_f = large_path.open("w", encoding="utf-8") if large_path else None
    try:
        with mini_path.open("w", encoding="utf-8") as mini_f:
            for i, record in enumerate(iter_records(source)):
                if i in mini_set or i in large_set:
                    line = json.dumps(record, ensure_ascii=False) + "\n"
                    if i in mini_set:
                        mini_f.write(line)
                        hash_mini.update(line.encode("utf-8"))
                        if acc_mini is not None:
                            acc_mini.add(record)
                    if i in large_set:
                        hash_large.update(line.encode("utf-8"))
                        if large_f is not None:
                            large_f.write(line)
                        if acc_large is not None:
                            acc_large.add(record)
    finally:
        if large_f is not None:
            large_f.close()
    tally_large = acc_large.result() if acc_large else Tally()
    tally_mini = acc_mini.result() if acc_mini else Tally()
    tally_large.digest, tally_mini.digest = hash_large.hexdigest(), hash_mini.hexdigest()
    return tally_large, tally_mini


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
                f"task {task!r} has no validation dataset; add --val {task}=<dataset in dataset_info.json> "
                f"(or a {task}_val entry there)."
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
    cfg.save.check()
    batch = cfg.predict_batch_size
    if batch is not None and not (isinstance(batch, int) and batch > 0):
        raise ProbeError(f"--predict-batch-size must be a whole number >= 1, got {cfg.predict_batch_size}.")
    if cfg.infer_backend not in INFER_BACKENDS:
        raise ProbeError(f"unknown --infer-backend {cfg.infer_backend!r}; valid: {', '.join(INFER_BACKENDS)}.")
    if cfg.infer_backend == "vllm":
        script = cfg.vllm_script
        if script is None or not Path(script).is_file():
            where = f" ({str(script)!r} does not exist)" if script is not None else ""
            raise ProbeError(
                f"--infer-backend vllm needs --vllm-script PATH/TO/LLaMA-Factory/scripts/vllm_infer.py{where}; the "
                "script is in the LLaMA-Factory repository, not in the pip package (git clone --branch v0.9.5 "
                "https://github.com/hiyouga/LLaMA-Factory)."
            )
    elif cfg.vllm_script is not None or cfg.vllm_config:
        raise ProbeError("--vllm-script / --vllm-config are for --infer-backend vllm; add it or drop them.")


def _default_validation(cfg: PlanConfig, tasks: Mapping[str, list[str]], info: Mapping[str, Any]) -> None:
    """Tasks without --val take the ``<task>_val`` entry of dataset_info.json when there is one."""
    for task in tasks:
        if not cfg.validation.get(task) and f"{task}_val" in info:
            cfg.validation[task] = [f"{task}_val"]


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


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ProbeError(f"--out {str(out)!r} exists and is not a folder; choose another --out.")


def _runs(
    cfg: PlanConfig,
    tasks: Mapping[str, list[str]],
    fixed: Mapping[str, list[str]],
    large_of: Mapping[str, list[str]],
    mini_of: Mapping[str, list[str]],
) -> dict[str, dict[str, Any]]:
    """name → (kind, training datasets, validation tasks) for the chosen difficulty variant."""
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
    return runs


def make_plan(cfg: PlanConfig) -> dict[str, Any]:
    """Write the plan (see module docstring) and return the manifest.

    Raises:
        ProbeError: a missing/invalid input, a task without validation set or metric, an unknown metric,
            fractions outside (0, 1] or mini > large, a dataset too small for its mini subset, a bad option, or
            (``check``) a YAML that LLaMA-Factory's own argument checks refuse. Nothing is written then.
    """
    base = _load_yaml(cfg.base_yaml)
    info_path = cfg.dataset_info or Path(str(base.get("dataset_dir", "data"))) / "dataset_info.json"
    info = _load_dataset_info(info_path)
    src_dir = info_path.resolve().parent
    names = cfg.tasks if cfg.tasks else split_names(base.get("dataset"))
    tasks = _resolve_tasks(names, info, "task")
    fixed = _resolve_tasks(cfg.fixed, info, "fixed task")
    _default_validation(cfg, tasks, info)
    _default_metrics(cfg, tasks, info)
    _validate(cfg, tasks, fixed, info)
    model = cost_model(base, cfg.throughput, cfg.predict_throughput)
    image_tokens = cfg.image_tokens if cfg.image_tokens is not None else default_image_tokens(base.get("template"))
    counter = TokenCounter(cfg.count_tokens, image_tokens, str(base["model_name_or_path"]))
    if cfg.difficulty == "chat" and fixed:
        warnings.warn("fixed tasks are unused by the chat form (one task per probe).", ProbeWarning, stacklevel=2)

    out = cfg.out_dir.resolve()
    _check_out_dir(out)
    anchor = next(p for p in (out, *out.parents) if p.exists())  # nothing is created before the plan succeeded
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.plan-", dir=anchor))
    try:
        manifest = _write_plan(cfg, base, info, src_dir, info_path, tasks, fixed, out, stage, counter, model)
        if cfg.check:
            _check_yamls(stage, manifest)
        _warn_changed_jobs(out, manifest)
        out.mkdir(parents=True, exist_ok=True)
        for item in PLAN_ITEMS:
            target = out / item
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            os.replace(stage / item, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return manifest


def _write_plan(
    cfg: PlanConfig,
    base: dict[str, Any],
    info: Mapping[str, dict[str, Any]],
    src_dir: Path,
    info_path: Path,
    tasks: Mapping[str, list[str]],
    fixed: Mapping[str, list[str]],
    out: Path,
    stage: Path,
    counter: TokenCounter,
    model: CostModel,
) -> dict[str, Any]:
    """Write every file into ``stage`` (paths inside point to ``out``); returns the manifest."""
    data_dir, yaml_dir = out / "data", out / "yaml"
    stage_data = stage / "data"
    saves = (cfg.saves_dir or out / "saves").resolve()
    stage_data.mkdir(parents=True, exist_ok=True)
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
        full = len(large) == n
        large_file = source.resolve() if full else data_dir / f"{large_name}.jsonl"
        stage_large = None if full else stage_data / f"{large_name}.jsonl"
        tally_large, tally_mini = _write_subsets(
            source, stage_large, stage_data / f"{mini_name}.jsonl", large, mini, counter, info[ds]
        )
        base_entry = {k: v for k, v in info[ds].items() if k not in ("file_name", "cotbal_task")}
        parts = (
            (large_name, large_file, tally_large, "large"),
            (mini_name, data_dir / f"{mini_name}.jsonl", tally_mini, "mini"),
        )
        for sub_name, sub_file, tally, kind in parts:
            new_info[sub_name] = {**base_entry, "file_name": str(sub_file), "cotbal_task": task}
            subsets[sub_name] = {"task": task, "source": ds, "kind": kind, "size": tally.samples, "source_size": n,
                                 "tokens": tally.tokens, "images": tally.images, "file": str(sub_file),
                                 "digest": tally.digest}  # fmt: skip
        large_of.setdefault(task, []).append(large_name)
        mini_of.setdefault(task, []).append(mini_name)
    for task in [*tasks, *fixed]:
        size = sum(subsets[m]["size"] for m in mini_of[task])
        if size < MIN_MINI_SAMPLES:
            warnings.warn(
                f"the mini subset of task {task!r} has {size} samples (< {MIN_MINI_SAMPLES}, appendix C); "
                "consider a larger --mini-fraction.",
                ProbeWarning,
                stacklevel=3,
            )
    (stage_data / "dataset_info.json").write_text(json.dumps(new_info, indent=2, ensure_ascii=False) + "\n", "utf-8")

    # ---- validation sets: sizes and tokens
    val_stats: dict[str, Tally] = {}
    for ds in dict.fromkeys(d for t in tasks for d in cfg.validation[t]):
        source = _source_file(ds, info[ds], src_dir)
        val_stats[ds] = counter.tally(iter_records(source), info[ds])
        if val_stats[ds].samples == 0:
            raise ProbeError(f"validation dataset {ds!r} ({str(source)!r}) is empty.")

    if cfg.infer_backend == "vllm" and Path(media_dir) != src_dir:
        raise ProbeError(
            f"--infer-backend vllm: the base YAML sets media_dir {media_dir!r}, which scripts/vllm_infer.py cannot "
            f"take (it reads images relative to the dataset folder {str(src_dir)!r}); write absolute image paths "
            "(cotbal convert --absolute-paths) and drop media_dir, or use --infer-backend hf."
        )

    # ---- YAMLs and jobs
    runs = _runs(cfg, tasks, fixed, large_of, mini_of)
    jobs: list[dict[str, Any]] = []
    predictions: list[dict[str, str]] = []

    def staged(path: Path) -> Path:
        return stage / path.relative_to(out)

    def fingerprint(*parts: str | bytes) -> str:
        digest = hashlib.sha256()
        for part in parts:
            digest.update(part if isinstance(part, bytes) else part.encode("utf-8"))
            digest.update(b"\0")
        return digest.hexdigest()

    def file_stamp(path: Path) -> str:
        stat = path.stat()
        return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"

    for run, spec in runs.items():
        model_dir = None
        train_name = None
        train_print = "base model"
        if spec["kind"] != "base":
            model_dir = saves / run
            train_path = yaml_dir / f"train_{run}.yaml"
            config, notes = train_config(base, spec["datasets"], data_dir, media_dir, model_dir, run, cfg.save)
            dump_yaml(staged(train_path), config, notes)
            spec["yaml"], spec["output_dir"] = str(train_path), str(model_dir)
            samples = sum(subsets[d]["size"] if d in subsets else 0 for d in spec["datasets"])
            tokens = sum(subsets[d]["tokens"] if d in subsets else 0 for d in spec["datasets"])
            if spec["kind"] == "stl":  # the task's full datasets: its large subsets at --large-fraction 1
                stats = [counter.tally(iter_records(_source_file(d, info[d], src_dir)), info[d])
                         for d in spec["datasets"]]  # fmt: skip
                samples, tokens = sum(s.samples for s in stats), sum(s.tokens for s in stats)
            data_prints = [subsets[d]["digest"] if d in subsets else file_stamp(_source_file(d, info[d], src_dir))
                           for d in spec["datasets"]]  # fmt: skip
            train_print = fingerprint(staged(train_path).read_bytes(), *data_prints)
            train_name = f"train:{run}"
            jobs.append({"name": train_name, "kind": "train", "run": run, "yaml": str(train_path),
                         "output_dir": str(model_dir), "done": str(model_dir / TRAIN_DONE_FILE), "after": [],
                         "deepspeed": bool(config.get("deepspeed")), "samples": samples, "tokens": tokens,
                         "gpu_hours": model.train_hours(tokens), "fingerprint": train_print})  # fmt: skip
        for task in spec["evaluate_on"]:
            for ds in cfg.validation[task]:
                pred_dir = saves / "predict" / run / ds
                write_dir = pred_dir.with_name(pred_dir.name + PARTIAL_SUFFIX)
                pred_path = yaml_dir / f"predict_{run}__{ds}.yaml"
                config, notes = predict_config(base, model_dir, ds, data_dir, media_dir, write_dir,
                                               cfg.predict_batch_size)  # fmt: skip
                notes.append(f"writes into {write_dir.name}, renamed to {pred_dir.name} when the job succeeded")
                job: dict[str, Any] = {"name": f"predict:{run}:{ds}", "kind": "predict", "run": run, "task": task,
                                       "dataset": ds, "yaml": str(pred_path), "output_dir": str(pred_dir),
                                       "write_dir": str(write_dir), "done": str(pred_dir / PREDICTIONS_FILE),
                                       "after": [train_name] if train_name else [],
                                       "backend": cfg.infer_backend}  # fmt: skip
                if cfg.infer_backend == "vllm":
                    job["argv"] = vllm_command(
                        base, model_dir, ds, src_dir, write_dir / PREDICTIONS_FILE, Path(cfg.vllm_script).resolve(),  # type: ignore[arg-type]
                        cfg.vllm_config, cfg.predict_batch_size,
                    )  # fmt: skip
                    notes.append("--infer-backend vllm: `cotbal run` runs the job's argv (manifest.json), not this")
                dump_yaml(staged(pred_path), config, notes)
                stats = val_stats[ds]
                job.update(samples=stats.samples, tokens=stats.tokens, gpu_hours=model.predict_hours(stats.tokens))
                val_stamp = file_stamp(_source_file(ds, info[ds], src_dir))
                job["fingerprint"] = fingerprint(
                    staged(pred_path).read_bytes(), json.dumps(job.get("argv", [])), train_print, val_stamp
                )
                jobs.append(job)
                predictions.append({"run": run, "task": task, "dataset": ds, "file": job["done"]})
    for job in jobs:
        job["log"] = str(out / "logs" / (job["name"].replace(":", "__") + ".log"))

    totals = summarize(jobs)
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
        "infer_backend": cfg.infer_backend,
        "save_steps": cfg.save.save_steps,
        "tasks": {
            t: {"datasets": tasks[t], "validation": cfg.validation[t], "metrics": cfg.metrics[t]} for t in tasks
        },
        "fixed": {t: {"datasets": fixed[t], "weight": _fixed_weight(cfg, t, fixed[t])} for t in fixed},
        "subsets": subsets,
        "validation_sets": {
            ds: {"size": s.samples, "tokens": s.tokens, "images": s.images} for ds, s in val_stats.items()
        },  # fmt: skip
        "cost": {
            "token_count": counter.describe(),
            "image_tokens": counter.image_tokens,
            "epochs": model.epochs,
            "throughput_tokens_per_s_per_gpu": model.throughput,
            "predict_throughput_tokens_per_s_per_gpu": model.predict_throughput,
            "notes": model.notes,
            **totals,
            "gpu_hours": _total_hours(totals),
        },
        "runs": runs,
        "jobs": jobs,
        "predictions": predictions,
    }
    (stage / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", "utf-8")
    _write_script(stage, out, manifest)
    return manifest


def _total_hours(totals: Mapping[str, Any]) -> float | None:
    hours = [totals[k]["gpu_hours"] for k in ("train", "predict") if totals[k]["jobs"]]
    return sum(hours) if hours and all(h is not None for h in hours) else None


def _check_yamls(stage: Path, manifest: Mapping[str, Any]) -> None:
    """Run LLaMA-Factory's own argument checks on every YAML, as `cotbal run` launches them; raise on the first."""
    from cotbal_plugin.llamafactory.check_yaml import check_yamls

    out = Path(manifest["dataset_dir"]).parent
    items: list[tuple[str, str]] = []
    for job in manifest["jobs"]:
        path = str(stage / Path(job["yaml"]).relative_to(out))
        if job["kind"] == "predict":
            if not job.get("argv"):
                items += [(path, "single"), (path, "torchrun")]
        else:
            items.append((path, "torchrun"))
    try:
        results = check_yamls(items)
    except (RuntimeError, OSError) as err:
        raise ProbeError(f"--check: LLaMA-Factory's argument check could not run ({err}).") from None
    for result in results:
        if not result.ok:
            name = Path(result.path).name
            raise ProbeError(
                f"--check: LLaMA-Factory refuses yaml/{name} ({result.mode} launch): {result.error} Fix the base "
                f"YAML {manifest['base_yaml']!r} and plan again."
            )


def _warn_changed_jobs(out: Path, manifest: Mapping[str, Any]) -> None:
    """Warn about finished jobs of an earlier plan in ``out`` that this plan changes (YAML or data).

    ``cotbal run`` skips a job whose output exists, so such a job would keep the earlier plan's result.
    """
    old_path = out / "manifest.json"
    if not old_path.is_file():
        return
    from .runner import is_done

    try:
        old = {j["name"]: j.get("fingerprint") for j in json.loads(old_path.read_text(encoding="utf-8"))["jobs"]}
    except (OSError, ValueError, KeyError, TypeError):
        return
    changed = [j["name"] for j in manifest["jobs"]
               if j["name"] in old and old[j["name"]] != j["fingerprint"] and is_done(j)]  # fmt: skip
    if changed:
        warnings.warn(
            f"{len(changed)} finished job(s) of the earlier plan in {str(out)!r} would now train or predict on "
            f"something else ({', '.join(changed[:5])}{', ...' if len(changed) > 5 else ''}); `cotbal run` skips "
            "finished jobs: run them again with `cotbal run --force --jobs NAME`, or plan into another --out.",
            ProbeWarning,
            stacklevel=3,
        )


def _write_script(stage: Path, out: Path, manifest: Mapping[str, Any]) -> None:
    q = shlex.quote
    lines = [
        "#!/usr/bin/env bash",
        "# generated by `cotbal plan`: runs every probe job in order (skipping finished ones), then scores and",
        "# weights. `cotbal run --manifest manifest.json` does the same with parallel jobs (--gpus, --parallel), a",
        "# progress line and a summary of failures. Set COTBAL_LAUNCHER to change the command (default:",
        "# llamafactory-cli train).",
        "set -euo pipefail",
        'LAUNCHER=${COTBAL_LAUNCHER:-"llamafactory-cli train"}',
        'fail() { echo "[cotbal] FAILED $1, log: $2"; tail -n 40 "$2"; exit 1; }',
        "train() {  # train <done file> <name> <yaml> <log> <output dir> <torchrun: 0|1>",
        '  if [ -s "$1" ]; then echo "[cotbal] skip $2 (done)"; return; fi',
        '  echo "[cotbal] run $2"; mkdir -p "$(dirname "$4")"',
        "  # a checkpoint without trainer_state.json was cut off while being saved: LLaMA-Factory resumes from the",
        "  # newest checkpoint, so remove it",
        '  for c in "$5"/checkpoint-*; do',
        '    if [ -d "$c" ] && [ ! -f "$c/trainer_state.json" ]; then rm -rf "$c"; fi',
        "  done",
        '  if [ "$6" = 1 ]; then export FORCE_TORCHRUN=1; fi',
        '  $LAUNCHER "$3" >> "$4" 2>&1 || fail "$2" "$4"',
        '  if [ "$6" = 1 ]; then unset FORCE_TORCHRUN; fi',
        "}",
        "predict() {  # predict <done file> <name> <yaml> <log> <write dir> <output dir> [command ...]",
        '  if [ -s "$1" ]; then echo "[cotbal] skip $2 (done)"; return; fi',
        '  echo "[cotbal] run $2"; mkdir -p "$(dirname "$4")"; rm -rf "$5"; mkdir -p "$5"',
        '  local done="$1" name="$2" yaml="$3" log="$4" part="$5" final="$6"; shift 6',
        '  if [ $# -gt 0 ]; then "$@" >> "$log" 2>&1 || fail "$name" "$log"',
        '  else $LAUNCHER "$yaml" >> "$log" 2>&1 || fail "$name" "$log"; fi',
        '  if [ ! -s "$part/$(basename "$done")" ]; then fail "$name (no predictions written)" "$log"; fi',
        '  rm -rf "$final"; mv "$part" "$final"',
        "}",
    ]
    for job in manifest["jobs"]:
        if job["kind"] == "predict":
            argv = " ".join(q(a) for a in job.get("argv", []))
            lines.append(
                f"predict {q(job['done'])} {q(job['name'])} {q(job['yaml'])} {q(job['log'])} {q(job['write_dir'])} "
                f"{q(job['output_dir'])}" + (f" {argv}" if argv else "")
            )
        else:
            lines.append(f"train {q(job['done'])} {q(job['name'])} {q(job['yaml'])} {q(job['log'])} "
                         f"{q(job['output_dir'])} {int(bool(job.get('deepspeed')))}")  # fmt: skip
    lines.append(f"cotbal eval --manifest {q(str(out / 'manifest.json'))} --out {q(str(out / 'scores.json'))}")
    lines.append(
        f"cotbal weights --scores {q(str(out / 'scores.json'))} --difficulty {manifest['difficulty']} "
        f"--temperature 0.5 --out {q(str(out / 'weights.json'))}"
        + "".join(f" --fixed {q(t)}={spec.get('weight', 1.0)!r}" for t, spec in manifest["fixed"].items())
    )
    path = stage / "run_all.sh"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o755)


def _fixed_weight(cfg: PlanConfig, task: str, datasets: Sequence[str]) -> float:
    """Weight of a fixed task: the one given for its name or one of its datasets (``--fixed NAME=W``), else 1."""
    given = {cfg.fixed_weights[n] for n in (task, *datasets) if n in cfg.fixed_weights}
    if len(given) > 1:
        raise ProbeError(f"--fixed gives task {task!r} several weights {sorted(given)}; give one.")
    return given.pop() if given else 1.0


def format_cost(manifest: Mapping[str, Any], per_job: bool = True) -> str:
    """The cost block ``cotbal plan`` prints: job count, samples and tokens per job, GPU-hours."""
    cost = manifest["cost"]
    lines = [f"cost (tokens: {cost['token_count']}; {cost['epochs']:g} epoch(s)):"]

    def hours(value: float | None, option: str) -> str:
        return f"{value:.1f} GPU-h" if value is not None else f"GPU-h: pass {option}"

    if per_job:
        width = max(len(j["name"]) for j in manifest["jobs"])
        for job in manifest["jobs"]:
            option = "--throughput" if job["kind"] == "train" else "--predict-throughput"
            lines.append(f"  {job['name']:<{width}}  {job['samples']:>9} samples  {human(job['tokens']):>7} tokens  "
                         f"{hours(job['gpu_hours'], option)}")  # fmt: skip
    for kind, option in (("train", "--throughput"), ("predict", "--predict-throughput")):
        block = cost[kind]
        if block["jobs"]:
            per = " per epoch" if kind == "train" else ""
            lines.append(f"  {kind}: {block['jobs']} job(s), {block['samples']} samples, {human(block['tokens'])} "
                         f"tokens{per}, {hours(block['gpu_hours'], option)}")  # fmt: skip
    if cost["gpu_hours"] is not None:
        lines.append(f"  total: {cost['gpu_hours']:.1f} GPU-hours")
    for note in cost["notes"]:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Load a manifest written by :func:`make_plan` (checks: :func:`cotbal_plugin.probe.manifest.read_manifest`)."""
    return read_manifest(path)[1]
