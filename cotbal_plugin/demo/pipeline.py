"""``make demo``: the whole CoTBal pipeline on a tiny LLaVA and the synthetic shapes benchmark, on CPU.

Steps (each printed as ``[i/n] ...``)::

    shapes benchmark + tiny VLM      built once, reused while the settings are the same
    cotbal plan                      mini / large-enough subsets, probe, predict (and STL) YAMLs
    cotbal run                       the N+1 probe trainings, their predictions (and the STL trainings)
    cotbal eval / weights / report   scores.json → weights.json → report PNGs
    cotbal run (compare/)            final training with `loss: cotbal`, EW training (`cotbal_weighting: ew`),
                                     predictions of CoTBal, EW (and STL) on every validation set
    cotbal eval / summary            per-task metrics, ΔI% and ΔE% against STL (or EW when STL is not run)

Every ``cotbal`` step is the real command line, called in-process with :func:`cotbal_plugin.cli.main`. Jobs run
through a fork server (:mod:`cotbal_plugin.demo.forkserver`) so LLaMA-Factory is imported once, not once per job;
``--launcher plain`` uses ``llamafactory-cli train`` instead (same numbers, ~6 s more per job).

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
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

MARKER = "cotbal_demo.json"
MARKER_KIND = "cotbal_plugin demo"
DEMO_VERSION = 1
STAMP = ".complete"
MIN_BASELINE = 0.01  # metrics whose baseline value is below this are left out of ΔI%/ΔE% (see summary_table)
ALL_TASKS = ("color", "count", "ground", "caption")


class DemoError(RuntimeError):
    """A user error of the demo (bad option, output folder in use); printed as one line, exit code 2."""


@dataclass(frozen=True)
class DemoSettings:
    """Everything that determines the demo's numbers (written to the marker file; same settings → same numbers)."""

    mode: str
    tasks: tuple[str, ...]
    n_train: int
    n_val: int
    stl: bool
    image_size: int = 56
    seed: int = 0
    hidden_size: int = 64
    num_layers: int = 2
    vocab_size: int = 512
    learning_rate: float = 1e-3
    epochs: float = 20.0
    batch_size: int = 8
    eval_batch_size: int = 32
    max_new_tokens: int = 24
    mini_fraction: str = "1/8"
    temperature: float = 0.5
    metrics: dict[str, str] = field(default_factory=lambda: {"ground": "miou,iou_acc"})

    def as_json(self) -> dict[str, Any]:
        """The settings as plain JSON (tuples become lists)."""
        data = asdict(self)
        data["tasks"] = list(self.tasks)
        return data


FULL = DemoSettings(mode="full", tasks=ALL_TASKS, n_train=300, n_val=100, stl=True, epochs=20.0)
QUICK = DemoSettings(mode="quick", tasks=("color", "count", "caption"), n_train=160, n_val=50, stl=False, epochs=15.0)


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
    """Write the shapes benchmark into ``out/data`` (reused when complete); returns the folder."""
    from .shapes import make_shapes_benchmark

    data = out / "data"
    if _reuse_or_clear(data, "the shapes benchmark"):
        return data
    make_shapes_benchmark(data, s.n_train, s.n_val, seed=s.seed, tasks=s.tasks, image_size=s.image_size)
    (data / STAMP).write_text("ok\n", encoding="utf-8")
    _say(f"wrote {len(s.tasks)} tasks x ({s.n_train} train + {s.n_val} val) samples and their images to {data}")
    return data


def build_model(out: Path, data: Path, s: DemoSettings) -> Path:
    """Build the tiny LLaVA into ``out/model`` with a tokenizer trained on the benchmark's texts (reused)."""
    from cotbal_plugin.testing.tiny import build_tiny_llava

    from .shapes import texts_of, vocabulary

    model = out / "model"
    if _reuse_or_clear(model, "the tiny VLM"):
        return model
    texts = list(vocabulary())
    for task in s.tasks:
        texts += texts_of(data / f"{task}_train.json")
    build_tiny_llava(
        model, texts, vocab_size=s.vocab_size, hidden_size=s.hidden_size, num_layers=s.num_layers,
        image_size=s.image_size, seed=s.seed,
    )  # fmt: skip
    (model / STAMP).write_text("ok\n", encoding="utf-8")
    n_params = _count_params(model)
    _say(f"built a tiny LLaVA ({n_params / 1e3:.0f}k parameters, {s.image_size}x{s.image_size} images) in {model}")
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


def base_config(model: Path, data: Path, out_dir: Path, s: DemoSettings) -> dict[str, Any]:
    """The ordinary LLaMA-Factory SFT config every run derives from (full fine-tuning, AdamW, fp32 on CPU)."""
    from cotbal_plugin.testing.workspace import sft_config

    return sft_config(
        model, data, out_dir,
        dataset=",".join(f"{t}_train" for t in s.tasks),
        template="llava",
        cutoff_len=512,
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
        seed=s.seed,
        data_seed=s.seed,
        max_new_tokens=s.max_new_tokens,
        do_sample=False,
    )  # fmt: skip


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


def compare_manifest(out: Path, probe: Path, base: dict[str, Any], weights: Path, s: DemoSettings) -> Path:
    """Write ``out/compare/manifest.json``: final CoTBal and EW trainings, their (and STL's) predictions.

    Trainings are the base config with ``loss: cotbal`` (+ ``cotbal_weights`` or ``cotbal_weighting: ew``);
    predict YAMLs are the ``cotbal plan`` predict YAMLs of run ``mini`` pointed at the other models.
    """
    plan = json.loads((probe / "manifest.json").read_text(encoding="utf-8"))
    cmp = out / "compare"
    saves = cmp / "saves"
    jobs: list[dict[str, Any]] = []
    predictions: list[dict[str, str]] = []

    def predict(method: str, model_dir: Path, task: str) -> None:
        ds = f"{task}_val"
        cfg = yaml.safe_load((probe / "yaml" / f"predict_mini__{ds}.yaml").read_text(encoding="utf-8"))
        pred_dir = saves / "predict" / method / ds
        cfg.update(model_name_or_path=str(model_dir), output_dir=str(pred_dir))
        path = _dump(cmp / "yaml" / f"predict_{method}__{ds}.yaml", cfg)
        done = str(pred_dir / "generated_predictions.jsonl")
        jobs.append({"name": f"predict:{method}:{ds}", "kind": "predict", "run": method, "task": task, "dataset": ds,
                     "yaml": str(path), "output_dir": str(pred_dir), "done": done})  # fmt: skip
        predictions.append({"run": method, "task": task, "dataset": ds, "file": done})

    methods = {
        "CoTBal": {"loss": "cotbal", "cotbal_weights": str(weights)},
        "EW": {"loss": "cotbal", "cotbal_weighting": "ew"},
    }
    for method, keys in methods.items():
        model_dir = saves / method
        path = _dump(cmp / "yaml" / f"train_{method}.yaml", {**base, "output_dir": str(model_dir), **keys})
        jobs.append({"name": f"train:{method}", "kind": "train", "run": method, "yaml": str(path),
                     "output_dir": str(model_dir), "done": str(model_dir / "trainer_state.json")})  # fmt: skip
        for task in s.tasks:
            predict(method, model_dir, task)
    if s.stl:
        for task in s.tasks:
            predict("STL", Path(plan["runs"][f"stl_{task}"]["output_dir"]), task)
    for job in jobs:
        job["log"] = str(cmp / "logs" / (job["name"].replace(":", "__") + ".log"))
    manifest = {
        "version": 1,
        "created_by": "cotbal_plugin.demo",
        "tasks": {t: {"metrics": plan["tasks"][t]["metrics"], "validation": [f"{t}_val"]} for t in s.tasks},
        "jobs": jobs,
        "predictions": predictions,
    }
    _write_json(cmp / "manifest.json", manifest)
    return cmp / "manifest.json"


def _dump(path: Path, cfg: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# written by `python -m cotbal_plugin.demo`\n" + yaml.safe_dump(dict(cfg), sort_keys=False),
                    encoding="utf-8")  # fmt: skip
    return path


def metric_table(details: Path, metrics: Mapping[str, Sequence[str]], methods: Sequence[str]) -> dict[str, Any]:
    """``{method: {task: {metric: value}}}`` from a ``cotbal eval`` details file.

    ``metrics`` maps each task to its metric names (the details file also holds counters and extra values).
    """
    data = json.loads(details.read_text(encoding="utf-8"))
    return {m: {t: {name: float(data[m][t][name]) for name in names} for t, names in metrics.items()} for m in methods}


def summary_table(
    table: Mapping[str, Any], baseline: str, floor: float = MIN_BASELINE
) -> tuple[dict[str, Any], list[str]]:
    """The table for ``cotbal summary`` without the metrics whose baseline value is below ``floor``.

    Eq. 12 divides by the baseline's value: at 0 it is undefined, and near 0 (a baseline that did not learn the
    task) one relative change of thousands of per cent would swamp ΔI%. Returns the table and one note per
    dropped metric (a task left without metric is dropped too).
    """
    notes: list[str] = []
    keep: dict[str, list[str]] = {}
    for task, values in table[baseline].items():
        keep[task] = [m for m, v in values.items() if abs(v) >= floor]
        dropped = [f"{m} = {v:.4g}" for m, v in values.items() if m not in keep[task]]
        if dropped:
            what = "task left out" if not keep[task] else "metric(s) left out"
            notes.append(f"{task}: the {baseline} baseline scores {', '.join(dropped)} (< {floor:g}); eq. 12 divides "
                         f"by it, so ΔI%/ΔE% would be undefined or meaningless: {what}")  # fmt: skip
    out = {method: {t: {m: per_task[t][m] for m in keep[t]} for t in per_task if keep.get(t)}
           for method, per_task in table.items()}  # fmt: skip
    return out, notes


def format_metrics(table: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """A markdown table of every method's metrics per task."""
    methods = list(table)
    columns = [(t, m) for t, metrics in table[methods[0]].items() for m in metrics]
    lines = ["| method | " + " | ".join(f"{t} {m}" for t, m in columns) + " |", "|---|" + "---:|" * len(columns)]
    for method in methods:
        lines.append(f"| {method} | " + " | ".join(f"{table[method][t][m]:.4f}" for t, m in columns) + " |")
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------------------------- runner


def run_demo(
    out: Path,
    settings: DemoSettings,
    overwrite: bool = False,
    launcher: str = "fork",
    progress: bool = True,
) -> dict[str, Path]:
    """Run the whole pipeline into ``out``; returns the paths of the main outputs.

    Raises:
        DemoError: bad output folder or option.
        RuntimeError: a failed step (the ``cotbal`` command's own message is printed above it).
    """
    if launcher not in ("fork", "plain"):
        raise DemoError(f"unknown launcher {launcher!r}; use fork or plain.")
    out = Path(out).resolve()
    steps = _Steps(12)
    started = time.monotonic()
    steps(f"output folder {out} ({settings.mode} mode: tasks {', '.join(settings.tasks)})")
    reuse = prepare_out_dir(out, settings, overwrite)
    if reuse:
        _say("same settings as the run already there: finished jobs are reused")
    no_progress = [] if progress else ["--no-progress"]

    steps("synthetic shapes benchmark and tiny VLM")
    data = build_benchmark(out, settings)
    model = build_model(out, data, settings)
    base = base_config(model, data, out / "saves" / "base", settings)
    base.pop("output_dir")
    base_yaml = _dump(out / "base.yaml", {**base, "output_dir": str(out / "saves" / "base")})
    _say(f"base training YAML (an ordinary LLaMA-Factory SFT config): {base_yaml}")

    with job_environment(), _launcher(out, launcher) as launch:
        probe = out / "probe"
        steps("cotbal plan: probe subsets and YAMLs" + (" (+ STL baselines)" if settings.stl else ""))
        plan_args = ["plan", "--base-yaml", str(base_yaml), "--out", str(probe), "--mini-fraction",
                     settings.mini_fraction, "--seed", str(settings.seed), "--save-steps", "0",  # seconds-long probes
                     *no_progress]  # fmt: skip
        for task in settings.tasks:
            plan_args += ["--val", f"{task}={task}_val"]
        plan_args += _metric_args(settings)
        if settings.stl:
            plan_args.append("--stl")
        cotbal(*plan_args)

        n = len(settings.tasks)
        steps(f"cotbal run: {n + 1} probe trainings (mini + one per task), {(n + 1) * n} predictions"
              + (f", {n} STL trainings" if settings.stl else ""))  # fmt: skip
        cotbal("run", "--manifest", str(probe / "manifest.json"), "--launcher", launch, *no_progress)

        steps("cotbal eval: score the probe predictions")
        cotbal("eval", "--manifest", str(probe / "manifest.json"), "--out", str(probe / "scores.json"), *no_progress)

        steps("cotbal weights: C, D and the CoTBal weights")
        weights = out / "weights.json"
        scores = json.loads((probe / "scores.json").read_text(encoding="utf-8"))
        fixed = degenerate_tasks(scores, settings.tasks)
        balanced = [t for t in settings.tasks if t not in fixed]
        if len(balanced) < 2:
            raise RuntimeError(
                "the probes did not learn enough to balance at least 2 tasks ("
                + "; ".join(fixed.values()) + "). Use more training (--seed does not help; see docs/demo.md)."
            )
        weight_args = ["--tasks", ",".join(balanced)] if fixed else []
        for task, why in fixed.items():
            _say(f"NOTE: {why}: the probes give no signal for task {task!r}; it gets a fixed weight of 1.0 "
                 f"(cotbal weights --fixed {task}=1.0) and is left out of the balancing.")  # fmt: skip
            weight_args += ["--fixed", f"{task}=1.0"]
        cotbal("weights", "--scores", str(probe / "scores.json"), "--temperature", str(settings.temperature),
               "--out", str(weights), *weight_args)  # fmt: skip

        steps("cotbal report: figures")
        report = out / "report"
        cotbal("report", "--weights", str(weights), "--out", str(report))

        steps("final trainings: `loss: cotbal` with the weights, and EW (`cotbal_weighting: ew`)")
        cmp_manifest = compare_manifest(out, probe, base, weights, settings)
        _say(f"YAMLs: {out / 'compare' / 'yaml' / 'train_CoTBal.yaml'} and train_EW.yaml")
        cotbal("run", "--manifest", str(cmp_manifest), "--only", "train", "--launcher", launch, *no_progress)

        steps("predictions of CoTBal, EW" + (" and STL" if settings.stl else "") + " on every validation set")
        cotbal("run", "--manifest", str(cmp_manifest), "--only", "predict", "--launcher", launch, *no_progress)

    steps("cotbal eval: score the final models")
    cmp_scores = out / "compare" / "scores.json"
    cotbal("eval", "--manifest", str(cmp_manifest), "--out", str(cmp_scores), *no_progress)

    steps("cotbal summary: per-task metrics, ΔI% and ΔE%")
    methods = (["STL"] if settings.stl else []) + ["EW", "CoTBal"]
    baseline = "STL" if settings.stl else "EW"
    table_path = out / "summary" / "table.json"
    task_metrics = json.loads(cmp_manifest.read_text(encoding="utf-8"))["tasks"]
    metrics = {t: task_metrics[t]["metrics"] for t in settings.tasks}
    full_table = metric_table(cmp_scores.with_suffix(".details.json"), metrics, methods)
    _write_json(out / "summary" / "metrics.json", full_table)
    metrics_md = format_metrics(full_table)
    (out / "summary" / "metrics.md").write_text(metrics_md, encoding="utf-8")
    _say("per-task metrics on the validation sets:\n" + metrics_md)
    table, notes = summary_table(full_table, baseline)
    for note in notes:
        _say(f"NOTE: {note}")
    _write_json(table_path, table)
    if not settings.stl:
        _say("NOTE: no STL runs in this mode; ΔI% and ΔE% below are against EW, not against STL as in the paper.")
    summary_md = out / "summary" / "summary.md"
    cotbal("summary", "--table", str(table_path), "--baseline", baseline, "--out", str(summary_md),
           "--json", str(out / "summary" / "summary.json"))  # fmt: skip

    steps("done")
    paths = {
        "weights": weights,
        "report": report,
        "contribution_png": report / "contribution.png",
        "difficulty_png": report / "difficulty.png",
        "weights_png": report / "weights.png",
        "summary": summary_md,
        "table": table_path,
        "final_cotbal": out / "compare" / "saves" / "CoTBal",
    }
    minutes = (time.monotonic() - started) / 60
    _say(f"finished in {minutes:.1f} min ({settings.mode} mode)")
    _say(f"task weights:   {weights}")
    _say(f"report PNGs:    {report / 'contribution.png'}, {report / 'difficulty.png'}, {report / 'weights.png'}")
    _say(f"report table:   {report / 'report.md'}")
    _say(f"metrics table:  {out / 'summary' / 'metrics.md'}")
    _say(f"summary table:  {summary_md}  (baseline of ΔI%/ΔE%: {baseline})")
    _say(f"training logs (task_loss/<task>): {out / 'compare' / 'saves' / 'CoTBal' / 'trainer_state.json'}")
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
