"""``make demo``: the whole CoTBal pipeline on a tiny LLaVA and the synthetic shapes benchmark, over several seeds.

Steps (each printed as ``[i/n] ...``)::

    shapes benchmark + tiny VLM      built once (a stage-1 pretraining makes the VLM name what it sees)
    for every seed:
      cotbal plan                    mini / large-enough subsets, probe, predict and STL YAMLs (subsets drawn per seed)
      cotbal run                     the N+1 probe trainings, their predictions, the N STL trainings
      cotbal eval / weights / report scores.json → weights.json → report PNGs
      cotbal run (compare/)          final trainings with `loss: cotbal`: CoTBal (the weights), EW and TLA
                                     (`cotbal_weighting: ew | tla`), then every model on every test set
      cotbal eval                    per-task metrics of STL, EW, TLA, CoTBal
    cotbal summary                   mean ± std over seeds of every metric and of ΔI% / ΔE% (table and figure)
    structure check                  the C and D the probes measured against the benchmark's design
    cotbal report --trainer-state    per-task loss and weight curves of a CoTBal training

Every ``cotbal`` step is the real command line, called in-process with :func:`cotbal_plugin.cli.main`. Jobs run
through a fork server (:mod:`cotbal_plugin.demo.forkserver`) so LLaMA-Factory is imported once, not once per job;
``--launcher plain`` uses ``llamafactory-cli train`` instead (same numbers, ~6 s more per job). With ``--jobs 2``
(the default on a machine with 2 or more cores) two seeds run side by side, each job with one thread.

The output folder holds a marker file (:data:`MARKER`) with the demo settings. A folder with a marker of other
settings is refused unless ``--overwrite``; a non-empty folder without a marker is always refused (the demo never
deletes files it did not write). With the same settings, finished jobs are reused (``cotbal run`` resumes).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

MARKER = "cotbal_demo.json"
MARKER_KIND = "cotbal_plugin demo"
DEMO_VERSION = 2
STAMP = ".complete"
MIN_BASELINE = 0.01  # metrics whose baseline value is below this are left out of ΔI%/ΔE% (see summary_table)
DEMO_TASKS = ("color", "colour", "count", "caption")
METHODS = ("EW", "TLA", "CoTBal")
WEIGHTING = {"EW": {"cotbal_weighting": "ew"}, "TLA": {"cotbal_weighting": "tla"}}


class DemoError(RuntimeError):
    """A user error of the demo (bad option, output folder in use); printed as one line, exit code 2."""


@dataclass(frozen=True)
class DemoSettings:
    """Everything that determines the demo's numbers (written to the marker file; same settings → same numbers)."""

    mode: str
    tasks: tuple[str, ...]
    n_train: int
    n_val: int
    n_test: int
    seeds: tuple[int, ...]
    stl: bool
    image_size: int = 56
    hidden_size: int = 128
    num_layers: int = 2
    vocab_size: int = 512
    n_pretrain: int = 1200
    pretrain_steps: int = 300
    learning_rate: float = 1e-3
    epochs: float = 5.0
    batch_size: int = 8
    eval_batch_size: int = 64
    max_new_tokens: int = 24
    mini_fraction: str = "1/4"
    temperature: float = 0.5
    metrics: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The settings as plain JSON (tuples become lists)."""
        data = asdict(self)
        data["tasks"] = list(self.tasks)
        data["seeds"] = list(self.seeds)
        return data


FULL = DemoSettings(mode="full", tasks=DEMO_TASKS, n_train=240, n_val=300, n_test=300, seeds=(0, 1, 2), stl=True)
# quick: the full benchmark and probes for seed 0 only (its C, D and weights are those of the full run's seed 0),
# smaller test sets
QUICK = replace(FULL, mode="quick", seeds=(0,), n_test=100)


# ------------------------------------------------------------------------------------------------- helpers


def _say(text: str) -> None:
    print(text, flush=True)


class _Steps:
    """Numbered step headers with elapsed time."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.i = 0
        self.start = time.monotonic()

    def __call__(self, title: str) -> None:
        self.i += 1
        elapsed = time.monotonic() - self.start
        _say(f"\n[{self.i}/{self.total}] {title}   (t = {elapsed:.0f} s)")


def cotbal(*argv: str) -> None:
    """Run ``cotbal <argv>`` in-process; raise :class:`RuntimeError` on a non-zero exit code."""
    from cotbal_plugin.cli import main

    _say("$ cotbal " + shlex.join(argv))
    sys.stdout.flush()
    code = main(list(argv))
    sys.stdout.flush()
    sys.stderr.flush()
    if code != 0:
        raise RuntimeError(f"`cotbal {shlex.join(argv)}` failed with exit code {code} (see the messages above).")


def run_parallel(manifest: Path, launcher: str, jobs: int, progress: Sequence[str]) -> None:
    """``cotbal run`` on ``manifest`` with ``jobs`` workers: the jobs are split into ``jobs`` part manifests.

    A training and the predictions of its model stay in the same part, in order; parts are balanced by a rough
    cost (samples seen per training, 1 per prediction). ``jobs`` = 1 is a plain in-process ``cotbal run``. The
    parts run as ``python -m cotbal_plugin run --manifest <part>`` side by side (the fork server serves them all)
    and their output is printed when all are done.
    """
    if jobs <= 1:
        cotbal("run", "--manifest", str(manifest), "--launcher", launcher, *progress)
        return
    data = _read_json(manifest)
    groups: dict[str, list[dict[str, Any]]] = {}
    for job in data["jobs"]:
        groups.setdefault(str(job.get("run", job["name"])), []).append(job)
    parts: list[list[dict[str, Any]]] = [[] for _ in range(jobs)]
    load = [0.0] * jobs
    for group in sorted(groups.values(), key=_cost, reverse=True):
        k = load.index(min(load))
        parts[k] += group
        load[k] += _cost(group)
    procs = []
    for k, part in enumerate(p for p in parts if p):
        path = manifest.with_name(f"{manifest.stem}.part{k}.json")
        _write_json(path, {**data, "jobs": part})
        cmd = [sys.executable, "-m", "cotbal_plugin", "run", "--manifest", str(path), "--launcher", launcher,
               "--no-progress"]  # fmt: skip
        _say("$ cotbal " + shlex.join(cmd[3:]) + "   &")
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    failed = []
    for proc in procs:
        output, _ = proc.communicate()
        _say(output.rstrip("\n"))
        if proc.returncode != 0:
            failed.append(proc.args[5])
    if failed:
        raise RuntimeError(f"`cotbal run` failed for {', '.join(failed)} (see the messages above).")


def _cost(group: Sequence[Mapping[str, Any]]) -> float:
    """Rough cost of a training and its predictions: samples x epochs of the training + 30 per prediction."""
    total = 0.0
    for job in group:
        if job["kind"] != "train":
            total += 30.0
            continue
        cfg = yaml.safe_load(Path(job["yaml"]).read_text(encoding="utf-8"))
        if cfg.get("max_steps"):
            total += float(cfg["max_steps"]) * float(cfg.get("per_device_train_batch_size", 1))
            continue
        info = _read_json(Path(cfg["dataset_dir"]) / "dataset_info.json")
        samples = 0
        for name in str(cfg.get("dataset", "")).split(","):
            path = Path(cfg["dataset_dir"]) / str(info.get(name.strip(), {}).get("file_name", "-"))
            if path.suffix == ".jsonl" and path.is_file():
                samples += sum(1 for line in path.open(encoding="utf-8") if line.strip())
            elif path.is_file():
                samples += len(_read_json(path))
        total += samples * float(cfg.get("num_train_epochs", 1))
    return total


@contextlib.contextmanager
def job_environment() -> Iterator[None]:
    """Environment of the training jobs: offline, CPU only, one OpenMP thread (restored afterwards).

    One thread is both deterministic and, on small machines, much faster for models this tiny: on the 2-core
    machine of the measurements, a 2-thread matrix product of this size is ~15x slower than a 1-thread one.
    """
    from cotbal_plugin.testing.workspace import cli_env

    saved = dict(os.environ)
    env = cli_env()
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    env.pop("PYTHONWARNINGS", None)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _dump(path: Path, cfg: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# written by `python -m cotbal_plugin.demo`\n" + yaml.safe_dump(dict(cfg), sort_keys=False),
                    encoding="utf-8")  # fmt: skip
    return path


# ---------------------------------------------------------------------------------------------- out folder


def prepare_out_dir(out: Path, settings: DemoSettings, overwrite: bool) -> bool:
    """Check the output folder and write the marker; returns whether an earlier run of the same settings is reused.

    Raises:
        DemoError: the folder is a file, holds a demo run of other settings (without ``overwrite``) or holds files
            of something else.
    """
    wanted = {"kind": MARKER_KIND, "version": DEMO_VERSION, "settings": settings.as_json()}
    if out.exists() and not out.is_dir():
        raise DemoError(f"output folder {str(out)!r} is a file; pass --out <new folder>.")
    marker = out / MARKER
    reuse = False
    if out.is_dir() and any(out.iterdir()):
        found: Any = None
        if marker.is_file():
            try:
                found = json.loads(marker.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                found = None
        if not isinstance(found, dict) or found.get("kind") != MARKER_KIND:
            raise DemoError(
                f"output folder {str(out)!r} is not empty and holds no demo marker ({MARKER}); the demo only "
                "writes into a new or empty folder, or one of an earlier demo run. Pass --out <new folder>."
            )
        if found == wanted:
            reuse = True
        elif not overwrite:
            raise DemoError(
                f"output folder {str(out)!r} holds a demo run with other settings ({_settings_diff(found, wanted)}); "
                "pass --overwrite to replace it, or --out <another folder>."
            )
        else:
            _say(f"--overwrite: removing the earlier demo run in {out}")
            for child in out.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    out.mkdir(parents=True, exist_ok=True)
    _write_json(marker, wanted)
    return reuse


def _settings_diff(found: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    a, b = found.get("settings") or {}, wanted["settings"]
    if not isinstance(a, dict):
        return "unreadable settings"
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if not keys:
        return f"demo version {found.get('version')} vs {wanted['version']}"
    return ", ".join(f"{k}: {a.get(k)!r} there, {b.get(k)!r} now" for k in keys[:4])


# --------------------------------------------------------------------------------------------- build steps


def _reuse_or_clear(folder: Path, what: str) -> bool:
    """True when ``folder`` holds a finished build (its stamp file); otherwise empty it for a fresh build."""
    if (folder / STAMP).is_file():
        _say(f"reusing {what} in {folder}")
        return True
    if folder.exists():
        shutil.rmtree(folder)
    return False


def build_benchmark(out: Path, s: DemoSettings) -> Path:
    """Write the shapes benchmark (train / val / test per task, and the pretraining set) into ``out/data``."""
    from .shapes import make_shapes_benchmark

    data = out / "data"
    if _reuse_or_clear(data, "the shapes benchmark"):
        return data
    make_shapes_benchmark(data, s.n_train, s.n_val, seed=0, tasks=s.tasks, image_size=s.image_size,
                          n_test=s.n_test, n_pretrain=s.n_pretrain)  # fmt: skip
    (data / STAMP).write_text("ok\n", encoding="utf-8")
    _say(f"wrote {len(s.tasks)} tasks x ({s.n_train} train + {s.n_val} val + {s.n_test} test) samples, "
         f"{s.n_pretrain} pretraining samples and their images to {data}")  # fmt: skip
    return data


def build_init_model(out: Path, data: Path, s: DemoSettings) -> Path:
    """The randomly initialised tiny LLaVA (``out/model/init``) with a tokenizer trained on the benchmark's texts.

    The image processor maps white (the background) to 0 (mean 1, std 0.5 instead of CLIP's statistics), so an
    empty cell gives a zero patch and the frozen random vision tower passes on what is drawn, not the background.
    """
    from transformers import AutoProcessor

    from cotbal_plugin.testing.tiny import build_tiny_llava

    from .shapes import texts_of, vocabulary

    model = out / "model" / "init"
    if _reuse_or_clear(model, "the tiny VLM"):
        return model
    texts = list(vocabulary()) * 3
    for name in [f"{t}_train" for t in s.tasks] + ["pretrain_train"]:
        texts += texts_of(data / f"{name}.json")
    build_tiny_llava(
        model, texts, vocab_size=s.vocab_size, hidden_size=s.hidden_size, num_layers=s.num_layers,
        image_size=s.image_size, seed=0,
    )  # fmt: skip
    processor = AutoProcessor.from_pretrained(model)
    processor.image_processor.image_mean = [1.0, 1.0, 1.0]
    processor.image_processor.image_std = [0.5, 0.5, 0.5]
    processor.save_pretrained(model)
    (model / STAMP).write_text("ok\n", encoding="utf-8")
    _say(f"built a tiny LLaVA ({_count_params(model) / 1e3:.0f}k parameters, {s.image_size}x{s.image_size} images, "
         f"{(s.image_size // 14) ** 2} image tokens) in {model}")  # fmt: skip
    return model


def _count_params(model: Path) -> int:
    from safetensors import safe_open

    total = 0
    for file in model.glob("*.safetensors"):
        with safe_open(str(file), "pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                n = 1
                for dim in f.get_slice(key).get_shape():
                    n *= int(dim)
                total += n
    return total


def base_config(model: Path, data: Path, out_dir: Path, s: DemoSettings, seed: int) -> dict[str, Any]:
    """The ordinary LLaMA-Factory SFT config every run of a seed derives from (full fine-tuning, AdamW, fp32)."""
    from cotbal_plugin.testing.workspace import sft_config

    return sft_config(
        model, data, out_dir,
        dataset=",".join(f"{t}_train" for t in s.tasks),
        template="llava",
        default_system="",
        cutoff_len=256,
        optim="adamw_torch",
        learning_rate=s.learning_rate,
        lr_scheduler_type="cosine",
        warmup_ratio=0.05,
        max_grad_norm=1.0,
        max_steps=None,
        num_train_epochs=s.epochs,
        per_device_train_batch_size=s.batch_size,
        per_device_eval_batch_size=s.eval_batch_size,
        disable_shuffling=False,
        logging_steps=10,
        seed=seed,
        data_seed=seed,
        max_new_tokens=s.max_new_tokens,
        do_sample=False,
    )  # fmt: skip


def pretrain_model(out: Path, data: Path, init: Path, s: DemoSettings, launcher: str, progress: list[str]) -> Path:
    """Stage-1 pretraining (``out/model/base``): the init model learns to name the objects of an image.

    A plain LLaMA-Factory SFT run on ``pretrain_train`` (image → its objects in random order); every seed's
    probes, baselines and final trainings start from this model, as instruction tuning starts from a pretrained
    VLM. Runs as a one-job manifest through ``cotbal run`` (resumable).
    """
    base = out / "model" / "base"
    cfg = base_config(init, data, base, s, seed=0)
    cfg.update(dataset="pretrain_train", max_steps=s.pretrain_steps, learning_rate=2 * s.learning_rate)
    cfg.pop("num_train_epochs", None)
    yaml_path = _dump(out / "model" / "pretrain.yaml", cfg)
    job = {"name": "train:pretrain", "kind": "train", "run": "pretrain", "yaml": str(yaml_path),
           "output_dir": str(base), "done": str(base / "trainer_state.json"),
           "log": str(out / "model" / "pretrain.log")}  # fmt: skip
    manifest = out / "model" / "manifest.json"
    _write_json(manifest, {"version": 1, "created_by": "cotbal_plugin.demo", "tasks": {}, "jobs": [job],
                           "predictions": []})  # fmt: skip
    cotbal("run", "--manifest", str(manifest), "--launcher", launcher, *progress)
    return base


def degenerate_tasks(scores: Mapping[str, Mapping[str, float]], tasks: Sequence[str]) -> dict[str, str]:
    """Tasks whose probe scores leave eq. 3 or eq. 9 undefined, with the reason.

    Eq. 3 divides by V_j(j+mini) - V_j(mini) (zero when training on task j did not move its score) and eq. 9
    divides by V_i(i+mini) (zero when the probe of task i scores 0). ``cotbal weights`` rejects both; the demo
    then gives such a task a fixed weight of 1.0 (``--fixed TASK=1.0``), as that error message suggests.
    """
    out: dict[str, str] = {}
    for task in tasks:
        own, mini = scores[f"{task}+mini"][task], scores["mini"][task]
        if own == mini:
            out[task] = f"V_{task}({task}+mini) = V_{task}(mini) = {own:.4g} (eq. 3 undefined)"
        elif own == 0:
            out[task] = f"V_{task}({task}+mini) = 0 (eq. 9 undefined)"
    return out


def _metric_args(s: DemoSettings) -> list[str]:
    return [a for task, m in s.metrics.items() if task in s.tasks for a in ("--metric", f"{task}={m}")]


def compare_manifest(seed_dir: Path, probe: Path, base: dict[str, Any], weights: Path, s: DemoSettings) -> Path:
    """Write ``compare/manifest.json`` of a seed: final CoTBal, EW and TLA trainings, every model on every test set.

    Trainings are the seed's base config with ``loss: cotbal`` + ``cotbal_weights`` (CoTBal) or
    ``cotbal_weighting: ew | tla``; the CoTBal one also sets ``plot_loss: true`` (LLaMA-Factory's own curves,
    with the per-task ones). Predict YAMLs are the ``cotbal plan`` predict YAMLs of run ``mini`` pointed at the
    other models and at the test sets; STL models are the plan's ``stl_<task>`` runs.
    """
    plan = _read_json(probe / "manifest.json")
    cmp = seed_dir / "compare"
    saves = cmp / "saves"
    jobs: list[dict[str, Any]] = []
    predictions: list[dict[str, str]] = []

    def predict(method: str, model_dir: Path, task: str) -> None:
        cfg = yaml.safe_load((probe / "yaml" / f"predict_mini__{task}_val.yaml").read_text(encoding="utf-8"))
        ds = f"{task}_test"
        pred_dir = saves / "predict" / method / ds
        cfg.update(model_name_or_path=str(model_dir), output_dir=str(pred_dir), eval_dataset=ds)
        path = _dump(cmp / "yaml" / f"predict_{method}__{ds}.yaml", cfg)
        done = str(pred_dir / "generated_predictions.jsonl")
        jobs.append({"name": f"predict:{method}:{ds}", "kind": "predict", "run": method, "task": task, "dataset": ds,
                     "yaml": str(path), "output_dir": str(pred_dir), "done": done})  # fmt: skip
        predictions.append({"run": method, "task": task, "dataset": ds, "file": done})

    keys = {"CoTBal": {"cotbal_weights": str(weights), "plot_loss": True}, **WEIGHTING}
    for method in METHODS:
        model_dir = saves / method
        cfg = {**base, "output_dir": str(model_dir), "loss": "cotbal", **keys[method]}
        path = _dump(cmp / "yaml" / f"train_{method}.yaml", cfg)
        jobs.append({"name": f"train:{method}", "kind": "train", "run": method, "yaml": str(path),
                     "output_dir": str(model_dir), "done": str(model_dir / "trainer_state.json")})  # fmt: skip
    for method in METHODS:
        for task in s.tasks:
            predict(method, saves / method, task)
    if s.stl:
        for task in s.tasks:
            predict("STL", Path(plan["runs"][f"stl_{task}"]["output_dir"]), task)
    for job in jobs:
        job["log"] = str(cmp / "logs" / (job["name"].replace(":", "__") + ".log"))
    manifest = {
        "version": 1,
        "created_by": "cotbal_plugin.demo",
        "tasks": {t: {"metrics": plan["tasks"][t]["metrics"], "validation": [f"{t}_test"]} for t in s.tasks},
        "jobs": jobs,
        "predictions": predictions,
    }
    _write_json(cmp / "manifest.json", manifest)
    return cmp / "manifest.json"


def metric_table(details: Path, metrics: Mapping[str, Sequence[str]], methods: Sequence[str]) -> dict[str, Any]:
    """``{method: {task: {metric: value}}}`` from a ``cotbal eval`` details file.

    ``metrics`` maps each task to its metric names (the details file also holds counters and extra values).
    """
    data = _read_json(details)
    return {m: {t: {name: float(data[m][t][name]) for name in names} for t, names in metrics.items()} for m in methods}


def summary_table(
    table: Mapping[str, Any], baseline: str, floor: float = MIN_BASELINE
) -> tuple[dict[str, Any], list[str]]:
    """The table for ``cotbal summary`` without the metrics whose baseline value is below ``floor``.

    Eq. 12 divides by the baseline's value: at 0 it is undefined, and near 0 (a baseline that did not learn the
    task) one relative change of thousands of per cent would swamp ΔI%. Returns the table and one note per
    dropped metric (a task left without metric is dropped too).
    """
    tables, notes = summary_tables([table], baseline, floor)
    return tables[0], notes


def summary_tables(
    tables: Sequence[Mapping[str, Any]], baseline: str, floor: float = MIN_BASELINE
) -> tuple[list[dict[str, Any]], list[str]]:
    """:func:`summary_table` over several seeds: a metric is left out of all of them when any seed's baseline is
    below ``floor`` (every seed keeps the same columns)."""
    notes: list[str] = []
    keep: dict[str, list[str]] = {}
    for task, values in tables[0][baseline].items():
        low = {m: min(abs(t[baseline][task][m]) for t in tables) for m in values}
        keep[task] = [m for m in values if low[m] >= floor]
        dropped = [f"{m} = {low[m]:.4g}" for m in values if m not in keep[task]]
        if dropped:
            what = "task left out" if not keep[task] else "metric(s) left out"
            seeds = " (lowest seed)" if len(tables) > 1 else ""
            notes.append(f"{task}: the {baseline} baseline scores {', '.join(dropped)}{seeds} (< {floor:g}); eq. 12 "
                         f"divides by it, so ΔI%/ΔE% would be undefined or meaningless: {what}")  # fmt: skip
    out = [{method: {t: {m: per_task[t][m] for m in keep[t]} for t in per_task if keep.get(t)}
            for method, per_task in table.items()} for table in tables]  # fmt: skip
    return out, notes


def format_metrics(table: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """A markdown table of every method's metrics per task."""
    methods = list(table)
    columns = [(t, m) for t, metrics in table[methods[0]].items() for m in metrics]
    lines = ["| method | " + " | ".join(f"{t} {m}" for t, m in columns) + " |", "|---|" + "---:|" * len(columns)]
    for method in methods:
        lines.append(f"| {method} | " + " | ".join(f"{table[method][t][m]:.4f}" for t, m in columns) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------- seeds


def run_seed(
    out: Path, seed: int, model: Path, data: Path, s: DemoSettings, launcher: str, progress: list[str], jobs: int = 1
) -> dict[str, Any]:
    """The whole CoTBal pipeline for one seed in ``out/seeds/seed<seed>``; returns its metric table and paths."""
    seed_dir = out / "seeds" / f"seed{seed}"
    base = base_config(model, data, seed_dir / "saves" / "base", s, seed)
    base.pop("output_dir")
    base_yaml = _dump(seed_dir / "base.yaml", {**base, "output_dir": str(seed_dir / "saves" / "base")})
    _say(f"[seed {seed}] base training YAML (an ordinary LLaMA-Factory SFT config): {base_yaml}")
    probe = seed_dir / "probe"
    # --save-steps 0: no checkpoints in seconds-long probes
    plan_args = ["plan", "--base-yaml", str(base_yaml), "--out", str(probe), "--mini-fraction", s.mini_fraction,
                 "--seed", str(seed), "--save-steps", "0", *progress]  # fmt: skip
    for task in s.tasks:
        plan_args += ["--val", f"{task}={task}_val"]
    plan_args += _metric_args(s)
    if s.stl:
        plan_args.append("--stl")
    cotbal(*plan_args)
    run_parallel(probe / "manifest.json", launcher, jobs, progress)
    cotbal("eval", "--manifest", str(probe / "manifest.json"), "--out", str(probe / "scores.json"), *progress)

    weights = seed_dir / "weights.json"
    scores = _read_json(probe / "scores.json")
    fixed = degenerate_tasks(scores, s.tasks)
    balanced = [t for t in s.tasks if t not in fixed]
    if len(balanced) < 2:
        raise RuntimeError(
            f"seed {seed}: the probes did not learn enough to balance at least 2 tasks ("
            + "; ".join(fixed.values())
            + "). Use more training (see docs/demo.md)."
        )
    weight_args = ["--tasks", ",".join(balanced)] if fixed else []
    for task, why in fixed.items():
        _say(f"NOTE: [seed {seed}] {why}: the probes give no signal for task {task!r}; it gets a fixed weight of "
             f"1.0 (cotbal weights --fixed {task}=1.0) and is left out of the balancing.")  # fmt: skip
        weight_args += ["--fixed", f"{task}=1.0"]
    cotbal("weights", "--scores", str(probe / "scores.json"), "--temperature", str(s.temperature),
           "--out", str(weights), "--clip", *weight_args)  # fmt: skip
    cotbal("report", "--weights", str(weights), "--out", str(seed_dir / "report"))

    cmp_manifest = compare_manifest(seed_dir, probe, base, weights, s)
    run_parallel(cmp_manifest, launcher, jobs, progress)
    cmp_scores = seed_dir / "compare" / "scores.json"
    cotbal("eval", "--manifest", str(cmp_manifest), "--out", str(cmp_scores), *progress)
    methods = (["STL"] if s.stl else []) + list(METHODS)
    task_metrics = _read_json(cmp_manifest)["tasks"]
    table = metric_table(cmp_scores.with_suffix(".details.json"), {t: task_metrics[t]["metrics"] for t in s.tasks},
                         methods)  # fmt: skip
    _write_json(seed_dir / "metrics.json", table)
    return {"seed": seed, "table": table, "weights": weights, "dir": seed_dir}


# ------------------------------------------------------------------------------------------------ structure


def run_demo(
    out: Path,
    settings: DemoSettings,
    overwrite: bool = False,
    launcher: str = "fork",
    progress: bool = True,
    jobs: int = 1,
) -> dict[str, Path]:
    """Run the whole pipeline into ``out``; returns the paths of the main outputs.

    Raises:
        DemoError: bad output folder or option.
        RuntimeError: a failed step (the ``cotbal`` command's own message is printed above it).
    """
    from .structure import check_structure, write_structure

    if launcher not in ("fork", "plain"):
        raise DemoError(f"unknown launcher {launcher!r}; use fork or plain.")
    if jobs < 1:
        raise DemoError(f"--jobs must be >= 1, got {jobs}.")
    from .results import load, write_results

    out = Path(out).resolve()
    s = settings
    steps = _Steps(6)
    started = time.monotonic()
    load_before = load()
    steps(f"output folder {out} ({s.mode} mode: tasks {', '.join(s.tasks)}; seeds {', '.join(map(str, s.seeds))})")
    reuse = prepare_out_dir(out, s, overwrite)
    if reuse:
        _say("same settings as the run already there: finished jobs are reused")
    flags = [] if progress else ["--no-progress"]

    with job_environment(), _launcher(out, launcher) as launch:
        steps("synthetic shapes benchmark and tiny VLM (random init, then stage-1 pretraining)")
        data = build_benchmark(out, s)
        init = build_init_model(out, data, s)
        model = pretrain_model(out, data, init, s, launch, flags)

        n, k = len(s.tasks), len(s.seeds)
        steps(f"{k} seed(s) x [cotbal plan, {n + 1} probe trainings" + (f" + {n} STL" if s.stl else "")
              + f", eval, weights, report; {len(METHODS)} final trainings ({', '.join(METHODS)}); "
              f"test predictions; eval]" + (f", {jobs} jobs at a time" if jobs > 1 else ""))  # fmt: skip
        results = [run_seed(out, seed, model, data, s, launch, flags, jobs) for seed in s.seeds]

    steps("cotbal summary: mean ± std over seeds of every metric, ΔI% and ΔE%")
    baseline = "STL" if s.stl else "EW"
    summary_dir = out / "summary"
    full = [r["table"] for r in results]
    _write_json(summary_dir / "metrics.json", {f"seed{r['seed']}": r["table"] for r in results})
    (summary_dir / "metrics.md").write_text(
        "".join(f"### seed {r['seed']}\n\n{format_metrics(r['table'])}\n" for r in results), encoding="utf-8"
    )
    tables, notes = summary_tables(full, baseline)
    for note in notes:
        _say(f"NOTE: {note}")
    if not s.stl:
        _say("NOTE: no STL runs in this mode; ΔI% and ΔE% below are against EW, not against STL as in the paper.")
    table_args = []
    for r, table in zip(results, tables):
        path = summary_dir / f"table_seed{r['seed']}.json"
        _write_json(path, table)
        table_args += ["--table", str(path)]
    summary_md = summary_dir / "summary.md"
    cotbal("summary", *table_args, "--baseline", baseline, "--out", str(summary_md),
           "--json", str(summary_dir / "summary.json"), "--plot", str(summary_dir / "summary.png"))  # fmt: skip

    steps("inter-task contributions and difficulties: measured vs designed")
    by_seed = {r["seed"]: _read_json(r["weights"]) for r in results}
    checks = check_structure(by_seed, s.tasks)
    structure_md = write_structure(checks, by_seed, summary_dir / "structure.md", summary_dir / "structure.json")
    _say(structure_md.read_text(encoding="utf-8"))

    steps("cotbal report: C, D, λ of the first seed with the per-task curves of its CoTBal training")
    first = results[0]
    report = out / "report"
    cotbal("report", "--weights", str(first["weights"]), "--trainer-state",
           str(first["dir"] / "compare" / "saves" / "CoTBal"), "--out", str(report))  # fmt: skip

    cotbal_run = first["dir"] / "compare" / "saves" / "CoTBal"
    paths = {
        "weights": first["weights"],
        "report": report,
        "contribution_png": report / "contribution.png",
        "difficulty_png": report / "difficulty.png",
        "weights_png": report / "weights.png",
        "curves_png": report / "task_curves.png",
        "summary": summary_md,
        "summary_png": summary_dir / "summary.png",
        "structure": structure_md,
        "final_cotbal": cotbal_run,
    }
    minutes = (time.monotonic() - started) / 60
    timing = {"minutes": minutes, "jobs": jobs, "load_before": load_before, "load_after": load()}
    paths["results"] = write_results(out, s.as_json(), timing)
    _say(
        f"\nfinished in {minutes:.1f} min ({s.mode} mode, {k} seed(s); load average before / after: "
        f"{timing['load_before']} / {timing['load_after']})"
    )
    _say(f"results:        {paths['results']} (what `make demo-docs` copies into docs/demo.md)")
    _say(f"summary table:  {summary_md}  (mean ± std over seeds; baseline of ΔI%/ΔE%: {baseline})")
    _say(f"summary figure: {summary_dir / 'summary.png'}")
    _say(f"C and D vs the benchmark's design: {structure_md}")
    _say(f"report (seed {first['seed']}): {report / 'report.md'} (contribution.png, difficulty.png, weights.png, "
         "task_curves.png)")  # fmt: skip
    _say(f"every seed: {out / 'seeds'}/seed<k>/ (weights.json, report/, probe/, compare/)")
    _say(f"LLaMA-Factory's own plots (plot_loss: true): {cotbal_run}/training_task_loss.png and training_*.png")
    return paths


@contextlib.contextmanager
def _launcher(out: Path, kind: str) -> Iterator[str]:
    """The ``cotbal run --launcher`` command: a fork server (started here, stopped after) or llamafactory-cli."""
    if kind == "plain":
        yield shlex.join([str(Path(sys.executable).parent / "llamafactory-cli"), "train"])
        return
    from .forkserver import ForkServer

    _say("starting a job server (imports LLaMA-Factory once for all jobs) ...")
    with ForkServer(out / "logs" / "forkserver.log") as server:
        yield server.launcher


def settings_for(quick: bool, **overrides: Any) -> DemoSettings:
    """The preset of the mode with ``overrides`` (``None`` values ignored)."""
    base = QUICK if quick else FULL
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})
