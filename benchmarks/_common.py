"""Helpers shared by the benchmark scripts (machine description, statistics, tables, JSON results).

Not a benchmark itself. The scripts import it as ``_common`` (``benchmarks/`` is ``sys.path[0]`` when a script
is run as ``.venv/bin/python benchmarks/<name>.py``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine() -> dict[str, Any]:
    """What the figures were measured on (the load average tells how busy the machine was)."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": load_average(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        pass
    for name in ("transformers", "llamafactory", "datasets"):
        try:
            mod = __import__(name)
            info[name] = getattr(mod, "__version__", "?")
        except Exception:  # noqa: BLE001 - optional information only
            pass
    return info


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def spread(xs: Sequence[float]) -> float:
    """Median absolute deviation relative to the median (a robust noise figure, 0.02 = ±2 %)."""
    m = statistics.median(xs)
    if not m or len(xs) < 2:
        return 0.0
    return float(statistics.median(abs(x - m) for x in xs) / abs(m))


def rotate(items: Sequence[Any], k: int) -> list[Any]:
    """``items`` rotated by ``k`` (the order of the variants changes from one repetition to the next)."""
    k %= len(items)
    return list(items[k:]) + list(items[:k])


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "argv": sys.argv[1:], "finished": time.strftime("%Y-%m-%d %H:%M:%S"), **payload}
    path.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return path


def verdict(ratio: float, target: float, noise: float) -> str:
    """``ok`` when within target; ``noise?`` when above target but within the measured noise; else ``MISSED``."""
    if ratio <= target:
        return "ok"
    if ratio - target <= noise:
        return "within noise"
    return "MISSED"
