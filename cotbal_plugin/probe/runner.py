"""``cotbal run``: execute the jobs of a plan manifest on this machine — one at a time or several side by side.

Each job runs ``<launcher> <yaml>`` (default launcher ``llamafactory-cli train``; ``--launcher`` or the environment
variable ``COTBAL_LAUNCHER`` replace it), or its own ``argv`` (vLLM predictions), with stdout and stderr appended
to the job's log file. A job whose ``done`` file (``trainer_state.json`` of a training,
``generated_predictions.jsonl`` of a prediction) exists and is not empty is skipped, so an interrupted run
resumes where it stopped:

* a training starts again in the same ``output_dir`` and LLaMA-Factory resumes it from its last checkpoint;
  checkpoints without ``trainer_state.json`` (the last file transformers writes into one) were cut off while
  being saved and are removed first;
* a prediction writes into its ``write_dir`` (``<output_dir>.partial``), removed before the job starts and renamed
  to ``output_dir`` only after the job exited 0 with a non-empty predictions file.

The scheduling itself (slots, devices, dependencies, progress) is :mod:`.scheduler`; this module holds what is
done to one job.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ProbeError

DEFAULT_LAUNCHER = "llamafactory-cli train"
LAUNCHER_ENV = "COTBAL_LAUNCHER"
TAIL_LINES = 40
CHECKPOINT_STATE = "trainer_state.json"
_CHECKPOINT_RE = re.compile(r"^checkpoint-[0-9]+$")
JOB_KINDS = ("train", "predict", "stl")


class JobFailed(RuntimeError):
    """One or more jobs failed; the message is the run summary naming every failure and its log."""

    def __init__(self, message: str, summary: RunSummary | None = None) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass
class Failure:
    """A job that failed: its name, exit code (None when it exited 0 without output), log and last lines."""

    name: str
    code: int | None
    log: str
    reason: str
    tail: str = ""


@dataclass
class RunSummary:
    """What :func:`run_jobs` did."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    blocked: list[tuple[str, str]] = field(default_factory=list)  # (job, why)
    elapsed: float = 0.0
    timings: dict[str, tuple[float, float]] = field(default_factory=dict)  # job → (start, end), time.time()

    @property
    def ok(self) -> bool:
        """No job failed or was left blocked."""
        return not self.failed and not self.blocked

    def format(self, tail_lines: int = 15) -> str:
        """A multi-line summary: counts, every failure with its log (and the last lines of the first one)."""
        head = (
            f"ran {len(self.ran)} job(s), skipped {len(self.skipped)} finished job(s), {len(self.failed)} failed, "
            f"{len(self.blocked)} not started, in {format_seconds(self.elapsed)}"
        )
        lines = [head]
        for failure in self.failed:
            lines.append(f"  FAILED  {failure.name}: {failure.reason}; log: {failure.log}")
        for name, why in self.blocked:
            lines.append(f"  NOT RUN {name}: {why}")
        if self.failed and self.failed[0].tail:
            first = self.failed[0]
            shown = "\n".join(first.tail.splitlines()[-tail_lines:])
            lines.append(f"--- last {tail_lines} lines of {first.log} ---\n{shown}")
        if not self.ok:
            lines.append("fix the cause and run `cotbal run` again: finished jobs are skipped, trainings resume")
        return "\n".join(lines)


def format_seconds(seconds: float) -> str:
    """3725 → '1:02:05'."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def resolve_launcher(launcher: str | None = None) -> list[str]:
    """The launcher command as an argv prefix: ``launcher``, else ``$COTBAL_LAUNCHER``, else the default."""
    text = launcher or os.environ.get(LAUNCHER_ENV) or DEFAULT_LAUNCHER
    argv = shlex.split(text)
    if not argv:
        raise ProbeError("the launcher command is empty; pass --launcher 'llamafactory-cli train'.")
    if shutil.which(argv[0]) is None:
        raise ProbeError(
            f"launcher {argv[0]!r} not found on PATH. Install LLaMA-Factory (`pip install llamafactory`) or "
            f"pass --launcher / set {LAUNCHER_ENV} to the command that runs one YAML."
        )
    return argv


def is_done(job: Mapping[str, Any]) -> bool:
    """Whether the job's output file exists and is not empty."""
    done = Path(job["done"])
    return done.is_file() and done.stat().st_size > 0


def tail(path: str | Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return ""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 64 * 1024))
        text = f.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def select_jobs(
    jobs: Iterable[Mapping[str, Any]], kinds: Sequence[str] | None = None, patterns: Sequence[str] | None = None
) -> list[Mapping[str, Any]]:
    """Jobs whose kind (``train``/``predict``/``stl``) and name (shell-style ``patterns``) match; all when empty."""
    jobs = list(jobs)
    if kinds:
        bad = sorted(set(kinds) - set(JOB_KINDS))
        if bad:
            raise ProbeError(f"--only: unknown job kind(s) {bad}; valid: {list(JOB_KINDS)}.")
        jobs = [j for j in jobs if j["kind"] in kinds or ("stl" in kinds and str(j.get("run", "")).startswith("stl_"))]
    if patterns:

        def match(name: str, pattern: str) -> bool:
            return name == pattern or fnmatch.fnmatchcase(name, pattern)

        unmatched = [p for p in patterns if not any(match(j["name"], p) for j in jobs)]
        if unmatched:
            raise ProbeError(
                f"--jobs {unmatched[0]!r} matches no job; job names look like train:mini, predict:mini:<dataset> "
                "(list them with `cotbal run --dry-run`)."
            )
        jobs = [j for j in jobs if any(match(j["name"], p) for p in patterns)]
    return jobs


def dependencies(job: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    """Jobs that must finish before ``job``: its ``after`` list, else ``train:<run>`` for a prediction."""
    if "after" in job:
        return [str(x) for x in job["after"]]
    wanted = f"train:{job.get('run')}"
    return [wanted] if job["kind"] == "predict" and wanted in set(names) else []


def uses_deepspeed(job: Mapping[str, Any]) -> bool:
    """Whether the job's YAML sets ``deepspeed`` (such a training must be launched through torchrun)."""
    if job.get("argv"):
        return False
    try:
        data = yaml.safe_load(Path(job["yaml"]).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and bool(data.get("deepspeed"))


def job_command(job: Mapping[str, Any], launcher: Sequence[str]) -> list[str]:
    """The command of a job: its own ``argv`` (vLLM), else ``<launcher> <yaml>``."""
    if job.get("argv"):
        return [str(a) for a in job["argv"]]
    return [*launcher, str(job["yaml"])]


def prepare(job: Mapping[str, Any], force: bool) -> list[str]:
    """Clean what a previous attempt left behind; returns notes for the job's log.

    Trainings: with ``force`` the whole ``output_dir`` is removed; otherwise only checkpoints cut off while being
    saved. Predictions: a stale ``write_dir`` is removed (and with ``force`` the old done file).
    """
    notes: list[str] = []
    out = Path(job["output_dir"])
    if job["kind"] != "predict":
        if force and out.exists():
            shutil.rmtree(out)
            notes.append(f"--force: removed {out}")
        elif out.is_dir():
            for child in sorted(out.iterdir()):
                if _CHECKPOINT_RE.match(child.name) and child.is_dir() and not (child / CHECKPOINT_STATE).is_file():
                    shutil.rmtree(child)
                    notes.append(f"removed {child}: cut off while being saved (no {CHECKPOINT_STATE})")
        return notes
    write_dir = Path(job["write_dir"]) if job.get("write_dir") else None
    if write_dir is not None:
        if write_dir.exists():
            shutil.rmtree(write_dir)
            notes.append(f"removed {write_dir}: left by an interrupted attempt")
        write_dir.mkdir(parents=True)  # scripts/vllm_infer.py writes --save_name without creating its folder
    if force and write_dir is None and Path(job["done"]).is_file():
        Path(job["done"]).unlink()
        notes.append(f"--force: removed {job['done']}")
    return notes


def finish(job: Mapping[str, Any]) -> str | None:
    """After a job exited 0: move a prediction into place; returns why the job counts as failed, or None."""
    write_dir = Path(job["write_dir"]) if job.get("write_dir") else None
    if write_dir is not None:
        written = write_dir / Path(job["done"]).name
        if not (written.is_file() and written.stat().st_size > 0):
            return f"exited 0 but did not write {written}"
        out = Path(job["output_dir"])
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(write_dir, out)
    if not is_done(job):
        return f"exited 0 but did not write {job['done']}"
    return None


def run_jobs(
    jobs: Sequence[Mapping[str, Any]],
    launcher: Sequence[str],
    force: bool = False,
    progress: bool | None = None,
    env: Mapping[str, str] | None = None,
    *,
    parallel: int | None = None,
    gpus: Sequence[str] | None = None,
    gpus_per_job: int | None = None,
    predict_gpus_per_job: int | None = None,
    all_jobs: Sequence[Mapping[str, Any]] | None = None,
    stream: Any = None,
) -> RunSummary:
    """Run ``jobs`` (skipping finished ones unless ``force``), ``parallel`` at a time or on the ``gpus`` given.

    A prediction starts only after its training (``after``); a failed job does not stop the others, but the jobs
    that need it are not started. See :class:`.scheduler.Scheduler` for devices, ports and progress.
    ``progress`` follows :mod:`cotbal_plugin.progress` (``None``: a live line only when ``stream`` is a terminal,
    plain event lines otherwise; ``False``: only failures are reported).

    Raises:
        JobFailed: after every runnable job ran, when any failed or could not start (the message is the summary).
        ProbeError: bad ``parallel`` / ``gpus`` / ``gpus_per_job``.
    """
    from .scheduler import Scheduler, make_pool

    pool = make_pool(parallel, gpus, gpus_per_job, predict_gpus_per_job)
    scheduler = Scheduler(
        pool, launcher=launcher, force=force, progress=progress, env=env, all_jobs=all_jobs, stream=stream
    )
    summary = scheduler.run(jobs)
    if not summary.ok:
        raise JobFailed(summary.format(), summary)
    return summary
