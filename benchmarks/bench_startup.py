"""Start-up cost of the plugin's ``.pth`` hook: interpreter start and ``import llamafactory.hparams``, on vs off.

    .venv/bin/python benchmarks/bench_startup.py [--quick] [--reps-pass 30] [--reps-import 8]

Two commands, each run in fresh interpreters of this venv with the plugin enabled (no ``COTBAL_PLUGIN_DISABLE``)
and disabled (``COTBAL_PLUGIN_DISABLE=1``: the ``.pth`` line then imports nothing):

- ``python -c pass``: what every Python process of the environment pays (``site`` runs the ``.pth`` line, which
  imports ``cotbal_plugin`` and ``cotbal_plugin._hook`` and puts a finder on ``sys.meta_path``);
- ``python -c "import llamafactory.hparams"``: plus the finder's checks on every import and the patch of
  ``llamafactory.hparams.parser`` (which imports ``cotbal_plugin.llamafactory.{patches,args,state,versions}`` and
  ``cotbal_plugin.weights_file``).

Two methods:

1. wall clock, interleaved (on, off, off, on, ...), median over repetitions and the median of paired differences;
2. ``python -X importtime``, one run per state per repetition: the modules imported only when the plugin is on
   and the sum of their ``self`` times (median over repetitions). This isolates the plugin's own import cost from
   the noise of starting an interpreter; it does not include the (tiny) patching work after the imports.

Bytecode: by default the interpreters get ``PYTHONPYCACHEPREFIX=<a temporary folder>`` (and no
``PYTHONDONTWRITEBYTECODE``), so after the warm-up run every module, the plugin's included, loads from cached
bytecode as in a normal installation, and nothing is written into the source tree. ``--as-is`` keeps the
environment unchanged (with ``PYTHONDONTWRITEBYTECODE=1`` the plugin's modules are compiled at every start).

``--candidate DIR`` adds a third state: the plugin on, but ``cotbal_plugin`` imported from ``DIR`` (a modified
copy of the package, put first on ``PYTHONPATH``) — to measure a proposed patch without touching the tree.

Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import _common as C

COMMANDS = {"pass": "pass", "import llamafactory.hparams": "import llamafactory.hparams"}


CANDIDATE: str | None = None  # --candidate: a folder holding a modified copy of the cotbal_plugin package
PYCACHE: str | None = None  # bytecode cache folder outside the tree (None: leave the environment as it is)


def env(state: str) -> dict[str, str]:
    e = dict(os.environ)
    e.pop("COTBAL_PLUGIN_DISABLE", None)
    if state == "off":
        e["COTBAL_PLUGIN_DISABLE"] = "1"
    if state == "candidate":
        e["PYTHONPATH"] = CANDIDATE + os.pathsep + e.get("PYTHONPATH", "") if e.get("PYTHONPATH") else CANDIDATE
    if PYCACHE:
        e.pop("PYTHONDONTWRITEBYTECODE", None)
        e["PYTHONPYCACHEPREFIX"] = PYCACHE
    e.update({"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "DISABLE_VERSION_CHECK": "1",
              "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"})  # fmt: skip
    return e


def wall(code: str, state: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env(state), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - t0


def importtime(code: str, state: str) -> dict[str, int]:
    """Module → self import time in µs, from ``-X importtime``."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env(state), check=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    out: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        self_us, _cumulative, name = line[len("import time:") :].split("|", 2)
        out[name.strip()] = out.get(name.strip(), 0) + int(self_us)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (about 1 min)")
    parser.add_argument("--reps-pass", type=int, default=None, help="repetitions of `-c pass` (default 30, quick 10)")
    parser.add_argument("--reps-import", type=int, default=None, help="of the import (default 8, quick 3)")
    parser.add_argument("--candidate", default=None, help="also measure a modified cotbal_plugin copy in this folder")
    parser.add_argument("--as-is", action="store_true", help="keep PYTHONDONTWRITEBYTECODE etc. as they are")
    args = parser.parse_args()
    global CANDIDATE, PYCACHE
    if not args.as_is:
        PYCACHE = tempfile.mkdtemp(prefix="cotbal-bench-pycache-")
    CANDIDATE = os.path.abspath(args.candidate) if args.candidate else None
    reps = {
        "pass": args.reps_pass or (10 if args.quick else 30),
        "import llamafactory.hparams": args.reps_import or (3 if args.quick else 8),
    }
    machine = C.machine()
    print(
        f"bench_startup: {machine['cpu']} ({machine['cpu_count']} cores), load {machine['load_average']}", flush=True
    )
    states = ["on", "off"] + (["candidate"] if CANDIDATE else [])
    results: dict[str, Any] = {}
    rows = []
    for label, code in COMMANDS.items():
        times: dict[str, list[float]] = {st: [] for st in states}
        for st in states:
            wall(code, st)  # warm the page cache
        for rep in range(reps[label]):
            for st in C.rotate(states, rep) if rep % 2 == 0 else C.rotate(states, rep)[::-1]:
                times[st].append(wall(code, st))
        results[label] = {}
        for st in states:
            if st == "off":
                continue
            diffs = [a - b for a, b in zip(times[st], times["off"])]
            extra_us: list[int] = []
            extra_modules: set[str] = set()
            for _ in range(max(3, reps[label] // 3)):
                t_on, t_off = importtime(code, st), importtime(code, "off")
                only_on = sorted(set(t_on) - set(t_off))
                extra_modules.update(only_on)
                extra_us.append(sum(t_on[m] for m in only_on))
            r = results[label][st] = {
                "on_s": times[st],
                "off_s": times["off"],
                "median_on_s": C.median(times[st]),
                "median_off_s": C.median(times["off"]),
                "median_paired_diff_ms": C.median(diffs) * 1000,
                "paired_diff_mad_ms": C.median([abs(d - C.median(diffs)) for d in diffs]) * 1000,
                "importtime_extra_modules": sorted(extra_modules),
                "importtime_extra_self_us": extra_us,
                "importtime_extra_median_ms": C.median(extra_us) / 1000,
            }
            rows.append([
                f"`python -c \"{code}\"`",
                "plugin on" if st == "on" else f"candidate ({CANDIDATE})",
                f"{r['median_off_s'] * 1000:.0f}",
                f"{r['median_on_s'] * 1000:.0f}",
                f"{r['median_paired_diff_ms']:+.1f} ± {r['paired_diff_mad_ms']:.1f}",
                f"{r['median_on_s'] / r['median_off_s']:.3f}",
                f"{r['importtime_extra_median_ms']:.2f} ({len(extra_modules)} modules)",
            ])  # fmt: skip
    print()
    print(C.table(["command", "state", "off: ms (median)", "on: ms (median)", "on - off, paired (ms, median ± MAD)",
                   "ratio on/off", "-X importtime: modules only when on, self ms"], rows))  # fmt: skip
    for label, per_state in results.items():
        for st, r in per_state.items():
            print(f"\n{label} [{st}]: modules imported only when on: {', '.join(r['importtime_extra_modules'])}")
    path = C.write_results(
        "bench_startup",
        {
            "config": {"reps": reps, "candidate": CANDIDATE, "pycache_prefix": PYCACHE},
            "machine": machine,
            "load_average_end": C.load_average(),
            "commands": results,
        },
    )
    print(f"\nresults: {path.relative_to(C.ROOT)}")
    if PYCACHE:
        shutil.rmtree(PYCACHE, ignore_errors=True)


if __name__ == "__main__":
    main()
