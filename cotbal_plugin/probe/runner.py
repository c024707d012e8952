"""``cotbal run``: execute the jobs of a plan manifest one after another on this machine.

Each job runs ``<launcher> <yaml>`` (default launcher ``llamafactory-cli train``; ``--launcher`` or the environment
variable ``COTBAL_LAUNCHER`` replace it), with stdout and stderr in the job's log file. A job whose ``done`` file
(``trainer_state.json`` of a training, ``generated_predictions.jsonl`` of a prediction) exists and is not empty is
skipped, so an interrupted run resumes where it stopped. The first failure stops everything.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..progress import bar as progress_bar
from .errors import ProbeError

DEFAULT_LAUNCHER = "llamafactory-cli train"
LAUNCHER_ENV = "COTBAL_LAUNCHER"
TAIL_LINES = 40


class JobFailed(RuntimeError):
    """A job exited with an error (or wrote no output); the message names it and shows the tail of its log."""


@dataclass
class RunSummary:
    """What :func:`run_jobs` did."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


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


def select_jobs(jobs: Iterable[Mapping[str, Any]], kinds: Sequence[str] | None = None) -> list[Mapping[str, Any]]:
    """Jobs whose kind (``train``/``predict``) or run kind filter matches; all when ``kinds`` is empty."""
    jobs = list(jobs)
    if not kinds:
        return jobs
    valid = {"train", "predict", "stl"}
    bad = sorted(set(kinds) - valid)
    if bad:
        raise ProbeError(f"unknown job kind(s) {bad}; valid: {sorted(valid)}.")
    return [j for j in jobs if j["kind"] in kinds or ("stl" in kinds and str(j.get("run", "")).startswith("stl_"))]


def run_jobs(
    jobs: Sequence[Mapping[str, Any]],
    launcher: Sequence[str],
    force: bool = False,
    progress: bool | None = None,
    env: Mapping[str, str] | None = None,
) -> RunSummary:
    """Run ``jobs`` in order, skipping finished ones unless ``force``.

    Raises:
        JobFailed: at the first job that exits non-zero or leaves no output (with the tail of its log).
    """
    summary = RunSummary()
    bar = progress_bar(total=len(jobs), desc="cotbal run", unit="job", progress=progress)
    try:
        for job in jobs:
            name = job["name"]
            if not force and is_done(job):
                summary.skipped.append(name)
                bar.update(1)
                continue
            bar.set_postfix_str(name)
            log = Path(job["log"])
            log.parent.mkdir(parents=True, exist_ok=True)
            cmd = [*launcher, job["yaml"]]
            with log.open("w", encoding="utf-8") as f:
                f.write(f"$ {shlex.join(cmd)}\n")
                f.flush()
                proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
            if proc.returncode != 0:
                raise JobFailed(
                    f"job {name!r} failed with exit code {proc.returncode}; command: {shlex.join(cmd)}\n"
                    f"log: {log}\n--- last {TAIL_LINES} lines ---\n{tail(log)}"
                )
            if not is_done(job):
                raise JobFailed(
                    f"job {name!r} exited 0 but did not write {job['done']}; log: {log}\n"
                    f"--- last {TAIL_LINES} lines ---\n{tail(log)}"
                )
            summary.ran.append(name)
            bar.update(1)
    finally:
        bar.close()
    return summary
