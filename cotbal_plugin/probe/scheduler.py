"""Run independent jobs side by side: slots or GPUs, dependencies, a live progress line and a final summary.

**Slots.** ``--gpus 0,1,2,3`` makes the devices a pool: a training takes ``--gpus-per-job`` of them, a prediction
``--predict-gpus-per-job`` (default 1: a prediction holds one full model copy, so more GPUs only add data
parallelism), and the job sees only its own devices (``CUDA_VISIBLE_DEVICES``). Device ids are passed through as
strings, so any scheme ``CUDA_VISIBLE_DEVICES`` accepts (indices, ``GPU-<uuid>``, ``MIG-…``) works. Without
``--gpus``, ``--parallel N`` runs N jobs at a time and leaves device placement alone (CPU-only runs, or a
launcher that places jobs itself); the default is one job at a time, each seeing every device, as before.

**Launch environment.** A ``llamafactory-cli`` job on K > 1 devices, or whose YAML uses DeepSpeed (which
LLaMA-Factory only accepts under torchrun, even on one device), gets ``FORCE_TORCHRUN=1`` and
``NPROC_PER_NODE=K``. When several jobs may run at once each gets its own free ``MASTER_PORT`` (LLaMA-Factory
would otherwise pick one per job, and two jobs starting together can pick the same).

**Order.** A job starts when every job in its ``after`` list has finished (a prediction after its training).
Ready trainings go first (they unlock predictions); when a ready training does not fit in the free devices, no
prediction is started in its place, so predictions cannot starve trainings that need several GPUs. A failed job
does not stop the others; the jobs that need it are reported as not run.

**Progress.** On a terminal, one tqdm line (done / running / failed, elapsed, ETA) with a line per finished or
failed job above it; when stderr is not a terminal (CI logs, SLURM output files) there are no redraws: one line
per event, each with the same counters. ETA = jobs left / the rate of jobs finished in this run. The setting is
the commands' shared one (:mod:`cotbal_plugin.progress`): ``--progress`` draws the live line even when stderr is
not a terminal, ``--no-progress`` and ``-q`` report only failures and jobs not run; ``TQDM_DISABLE=1`` turns the
live line into event lines.

**Stopping.** Ctrl-C or SIGTERM (``scancel``) stops every running job's process group (SIGTERM, then SIGKILL
after a grace period) before ``cotbal run`` exits; run it again to resume.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from ..progress import Progress, bar
from .errors import ProbeError
from .runner import (
    Failure,
    RunSummary,
    dependencies,
    finish,
    format_seconds,
    is_done,
    job_command,
    prepare,
    tail,
    uses_deepspeed,
)

POLL_SECONDS = 0.2
KILL_GRACE_SECONDS = 20.0


@dataclass(frozen=True)
class Pool:
    """What jobs run on: ``units`` device ids (``devices``) or anonymous slots, and how many a job takes."""

    units: tuple[str, ...]
    devices: bool
    train_k: int = 1
    predict_k: int = 1
    nproc_train: int | None = None  # NPROC_PER_NODE for trainings without --gpus (--gpus-per-job)
    nproc_predict: int | None = None

    def need(self, job: Mapping[str, Any]) -> int:
        """How many units ``job`` takes."""
        if not self.devices:
            return 1
        return self.predict_k if job["kind"] == "predict" else self.train_k

    def nproc(self, job: Mapping[str, Any], units: Sequence[str]) -> int | None:
        """Processes per node of ``job`` (None: let LLaMA-Factory count the visible devices)."""
        if self.devices:
            return len(units)
        return self.nproc_predict if job["kind"] == "predict" else self.nproc_train


def _positive(value: int | None, option: str) -> None:
    if value is not None and not (isinstance(value, int) and value >= 1):
        raise ProbeError(f"{option} must be a whole number >= 1, got {value}.")


def make_pool(
    parallel: int | None = None,
    gpus: Sequence[str] | None = None,
    gpus_per_job: int | None = None,
    predict_gpus_per_job: int | None = None,
) -> Pool:
    """Build the pool from ``cotbal run``'s options (see the module docstring).

    Raises:
        ProbeError: both ``--parallel`` and ``--gpus``, repeated or empty device ids, more GPUs per job than given.
    """
    for value, option in ((parallel, "--parallel"), (gpus_per_job, "--gpus-per-job"),
                          (predict_gpus_per_job, "--predict-gpus-per-job")):  # fmt: skip
        _positive(value, option)
    if gpus is None:
        n = parallel or 1
        return Pool(tuple(f"slot{i}" for i in range(n)), False, nproc_train=gpus_per_job,
                    nproc_predict=predict_gpus_per_job if predict_gpus_per_job else gpus_per_job)  # fmt: skip
    if parallel is not None:
        raise ProbeError(
            "--parallel and --gpus: give one. With --gpus, the number of jobs at once is the number of GPUs "
            "divided by --gpus-per-job."
        )
    ids = [str(g).strip() for g in gpus]
    if not ids or any(not g for g in ids):
        raise ProbeError(f"--gpus {','.join(ids)!r}: give device ids separated by commas, e.g. --gpus 0,1,2,3.")
    repeated = sorted({g for g in ids if ids.count(g) > 1})
    if repeated:
        raise ProbeError(f"--gpus lists device(s) {repeated} more than once; each GPU runs one job at a time.")
    train_k, predict_k = gpus_per_job or 1, predict_gpus_per_job or 1
    for k, option in ((train_k, "--gpus-per-job"), (predict_k, "--predict-gpus-per-job")):
        if k > len(ids):
            raise ProbeError(f"{option} {k} is more than the {len(ids)} GPU(s) given with --gpus {','.join(ids)}.")
    return Pool(tuple(ids), True, train_k, predict_k)


def _free_port(taken: set[int]) -> int:
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            return port
    raise RuntimeError("no free TCP port for MASTER_PORT")


@dataclass
class _Running:
    job: Mapping[str, Any]
    proc: subprocess.Popen
    units: list[str]
    started: float
    log_file: TextIO
    port: int | None
    wall_start: float = 0.0


class _Progress:
    """The live line (tqdm on a terminal) and the event lines (always plain lines when not a terminal)."""

    def __init__(self, total: int, initial: int, stream: TextIO, progress: Progress) -> None:
        self.total, self.initial, self.stream = total, initial, stream
        self.enabled = progress is not False  # event lines; False (--no-progress, -q): failures only
        self.started = time.monotonic()
        self.done = initial
        self.running = 0
        self.failed = 0
        self.bar: tqdm | None = None
        if self.enabled:
            fmt = "{desc} {n_fmt}/{total_fmt} done, {postfix} [{elapsed}<{remaining}]"
            line = bar(total=total, initial=initial, file=stream, desc="cotbal run:", dynamic_ncols=True,
                       bar_format=fmt, progress=progress)  # fmt: skip
            if line.disable:  # None and not a terminal (or TQDM_DISABLE): plain event lines, no redraws
                line.close()
            else:
                self.bar = line
                self._postfix()

    def counters(self) -> str:
        """``3/72 done, 4 running, 0 failed, elapsed 0:12:03, ETA 1:02:00``."""
        elapsed = time.monotonic() - self.started
        finished = self.done - self.initial
        left = self.total - self.done - self.failed
        if left <= 0:
            eta = "0:00:00"
        else:
            eta = format_seconds(left * elapsed / finished) if finished > 0 else "?"
        return (f"{self.done}/{self.total} done, {self.running} running, {self.failed} failed, "
                f"elapsed {format_seconds(elapsed)}, ETA {eta}")  # fmt: skip

    def _postfix(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.running} running, {self.failed} failed", refresh=True)

    def event(self, text: str, important: bool = False) -> None:
        """Report one event (a job started, finished or failed)."""
        if self.bar is not None:
            self.bar.write(f"[cotbal run] {text}", file=self.stream)
            self._postfix()
        elif self.enabled or important:
            print(f"[cotbal run] {text} -- {self.counters()}", file=self.stream, flush=True)

    def advance(self) -> None:
        """One more job done."""
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)

    def tick(self) -> None:
        """Redraw the terminal line (elapsed time) — nothing when not a terminal."""
        if self.bar is not None:
            self.bar.refresh()

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()


class Scheduler:
    """Runs jobs on a :class:`Pool`; see the module docstring."""

    def __init__(
        self,
        pool: Pool,
        launcher: Sequence[str],
        force: bool = False,
        progress: Progress = None,
        env: Mapping[str, str] | None = None,
        all_jobs: Sequence[Mapping[str, Any]] | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.pool = pool
        self.launcher = list(launcher)
        self.force = force
        self.progress = progress
        self.env = dict(env or {})
        self.all_jobs = {j["name"]: j for j in (all_jobs or [])}
        self.stream = stream if stream is not None else sys.stderr

    # ------------------------------------------------------------------------------------------------ launching

    def _job_env(self, job: Mapping[str, Any], units: Sequence[str], port: int | None) -> dict[str, str]:
        env = {**os.environ, **self.env}
        if self.pool.devices:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(units)
        if not job.get("argv"):
            nproc = self.pool.nproc(job, units)
            if (nproc is not None and nproc > 1) or uses_deepspeed(job):
                env["FORCE_TORCHRUN"] = "1"
                if nproc is not None:
                    env["NPROC_PER_NODE"] = str(nproc)
            if port is not None:
                env["MASTER_PORT"] = str(port)
        return env

    def _start(self, job: Mapping[str, Any], units: list[str], taken_ports: set[int]) -> _Running | Failure:
        log = Path(job["log"])
        log.parent.mkdir(parents=True, exist_ok=True)
        notes = prepare(job, self.force)
        cmd = job_command(job, self.launcher)
        concurrent = len(self.pool.units) // max(1, min(self.pool.train_k, self.pool.predict_k)) > 1
        port = _free_port(taken_ports) if concurrent and not job.get("argv") else None
        env = self._job_env(job, units, port)
        shown = {k: env[k] for k in ("CUDA_VISIBLE_DEVICES", "FORCE_TORCHRUN", "NPROC_PER_NODE", "MASTER_PORT")
                 if k in env and (k in self.env or env.get(k) != os.environ.get(k))}  # fmt: skip
        f = log.open("a", encoding="utf-8")
        f.write(f"===== cotbal run: {job['name']} ({time.strftime('%Y-%m-%d %H:%M:%S')}) =====\n")
        for note in notes:
            f.write(f"[cotbal run] {note}\n")
        f.write("$ " + " ".join(f"{k}={shlex.quote(v)}" for k, v in shown.items()) + (" " if shown else ""))
        f.write(shlex.join(cmd) + "\n")
        f.flush()
        try:
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)  # fmt: skip
        except OSError as err:
            f.write(f"[cotbal run] could not start: {err}\n")
            f.close()
            return Failure(job["name"], None, str(log), f"could not start {cmd[0]!r} ({err})")
        return _Running(job, proc, units, time.monotonic(), f, port, time.time())

    def _stop_all(self, running: Mapping[str, _Running]) -> None:
        for r in running.values():
            try:
                os.killpg(r.proc.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        for r in running.values():
            try:
                r.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(r.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                r.proc.wait()
            r.log_file.write("[cotbal run] stopped (cotbal run was interrupted); run it again to resume\n")
            r.log_file.close()

    # ------------------------------------------------------------------------------------------------ the loop

    def _dep_state(self, dep: str, selected: set[str], ok: set[str], bad: set[str]) -> str:
        """``ok``, ``wait``, ``failed`` or ``missing`` (not selected and not finished)."""
        if dep in ok:
            return "ok"
        if dep in bad:
            return "failed"
        if dep in selected:
            return "wait"
        other = self.all_jobs.get(dep)
        if other is None or is_done(other):
            return "ok"
        return "missing"

    def run(self, jobs: Sequence[Mapping[str, Any]]) -> RunSummary:
        """Run ``jobs``; returns the summary (it does not raise on job failures)."""
        started = time.monotonic()
        summary = RunSummary()
        names = [j["name"] for j in jobs]
        for job in jobs:
            self.all_jobs.setdefault(job["name"], job)
        selected = set(names)
        order = {name: i for i, name in enumerate(names)}
        pending: list[Mapping[str, Any]] = []
        ok: set[str] = set()
        for job in jobs:
            if not self.force and is_done(job):
                summary.skipped.append(job["name"])
                ok.add(job["name"])
            else:
                pending.append(job)
        bad: set[str] = set()
        progress = _Progress(len(jobs), len(summary.skipped), self.stream, self.progress)
        free = list(self.pool.units)
        running: dict[str, _Running] = {}
        taken_ports: set[int] = set()
        previous_handler = None
        if threading.current_thread() is threading.main_thread():
            previous_handler = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            while pending or running:
                changed = False
                # jobs whose dependencies failed or cannot run
                for job in list(pending):
                    for dep in dependencies(job, self.all_jobs):
                        state = self._dep_state(dep, selected, ok, bad)
                        if state in ("failed", "missing"):
                            why = (f"needs {dep}, which failed or was not run" if state == "failed" else
                                   f"needs {dep}, which is not finished and not selected (run it first)")  # fmt: skip
                            pending.remove(job)
                            summary.blocked.append((job["name"], why))
                            bad.add(job["name"])
                            progress.failed += 1
                            progress.event(f"not run {job['name']}: {why}", important=True)
                            changed = True
                            break
                # start what is ready and fits
                ready = [
                    j
                    for j in pending
                    if all(self._dep_state(d, selected, ok, bad) == "ok" for d in dependencies(j, self.all_jobs))
                ]
                ready.sort(key=lambda j: (j["kind"] != "train", order[j["name"]]))  # fmt: skip
                for job in ready:
                    need = self.pool.need(job)
                    if need > len(free):
                        if job["kind"] == "train" and self.pool.devices:
                            break  # keep the devices for this training (no starvation by predictions)
                        continue
                    units, free = free[:need], free[need:]
                    pending.remove(job)
                    started_job = self._start(job, units, taken_ports)
                    changed = True
                    if isinstance(started_job, Failure):
                        free += units
                        summary.failed.append(started_job)
                        bad.add(job["name"])
                        progress.failed += 1
                        progress.event(f"FAILED {job['name']}: {started_job.reason}", important=True)
                        continue
                    running[job["name"]] = started_job
                    if started_job.port is not None:
                        taken_ports.add(started_job.port)
                    progress.running = len(running)
                    where = f" on {','.join(units)}" if self.pool.devices else ""
                    progress.event(f"started {job['name']}{where}")
                # collect finished jobs
                for name, r in list(running.items()):
                    code = r.proc.poll()
                    if code is None:
                        continue
                    changed = True
                    del running[name]
                    free += r.units
                    if r.port is not None:
                        taken_ports.discard(r.port)
                    took = format_seconds(time.monotonic() - r.started)
                    summary.timings[name] = (r.wall_start, time.time())
                    reason = f"exit code {code}" if code != 0 else finish(r.job)
                    r.log_file.write(f"[cotbal run] {'finished' if reason is None else 'FAILED: ' + reason} "
                                     f"after {took}\n")  # fmt: skip
                    r.log_file.close()
                    progress.running = len(running)
                    if reason is None:
                        summary.ran.append(name)
                        ok.add(name)
                        progress.advance()
                        progress.event(f"finished {name} in {took}")
                    else:
                        summary.failed.append(Failure(name, code if code != 0 else None, str(r.job["log"]), reason,
                                                      tail(r.job["log"])))  # fmt: skip
                        bad.add(name)
                        progress.failed += 1
                        progress.event(f"FAILED {name} ({reason}) after {took}; log: {r.job['log']}", important=True)
                if not running and pending and not changed:
                    for job in pending:  # nothing runs and nothing can start: unsatisfiable dependencies
                        summary.blocked.append((job["name"], "its dependencies can never finish (check `after`)"))
                    pending.clear()
                if not changed:
                    progress.tick()
                    time.sleep(POLL_SECONDS)
        except BaseException:
            self._stop_all(running)
            raise
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGTERM, previous_handler)
            progress.close()
        summary.elapsed = time.monotonic() - started
        return summary


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
