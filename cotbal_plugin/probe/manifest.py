"""Reading a ``manifest.json`` written by ``cotbal plan``: file checks and the structure its readers rely on.

``cotbal run`` uses ``jobs`` (``name``, ``kind``, ``yaml``, ``done``, ``log``), ``cotbal eval`` uses ``predictions``
(``run``, ``task``, ``file``) and ``tasks`` (``metrics``). A hand-edited or truncated manifest fails here with one
line naming the file and the entry, instead of a ``KeyError`` deep in a command.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..files import read_json
from .errors import ProbeError

MANIFEST_VERSION = 1
JOB_KEYS = ("name", "kind", "yaml", "done", "log")
PREDICTION_KEYS = ("run", "task", "file")


def read_manifest(path: str | Path, what: str = "--manifest") -> tuple[Path, dict[str, Any]]:
    """Read and check a plan manifest (``path`` may be the plan folder); return (file, manifest).

    Raises:
        ProbeError: missing file, a folder without ``manifest.json``, empty or invalid JSON, or a manifest whose
            ``jobs`` / ``predictions`` / ``tasks`` do not have the documented shape (the entry is named).
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "manifest.json").is_file():
            raise ProbeError(
                f"{what}: folder {str(path)!r} has no manifest.json; pass the --out folder of `cotbal plan` "
                "(or its manifest.json)."
            )
        path = path / "manifest.json"
    data = read_json(path, what, hint="write it with `cotbal plan --out <dir>`.", error=ProbeError)
    where = f"{what} {str(path)!r}"
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        found = f"version {data.get('version')!r}" if isinstance(data, dict) else type(data).__name__
        raise ProbeError(
            f"{where} is not a cotbal manifest of version {MANIFEST_VERSION} (found {found}); re-run `cotbal plan`."
        )
    _check_entries(data.get("jobs"), "jobs", JOB_KEYS, where)
    _check_entries(data.get("predictions", []), "predictions", PREDICTION_KEYS, where)
    tasks = data.get("tasks", {})
    if not isinstance(tasks, Mapping):
        raise ProbeError(f'{where}: "tasks" must be an object {{task: {{"metrics": [...]}}}}; re-run `cotbal plan`.')
    for task, spec in tasks.items():
        metrics = spec.get("metrics") if isinstance(spec, Mapping) else None
        if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
            raise ProbeError(f'{where}: task {task!r} has no "metrics" list of metric names; re-run `cotbal plan`.')
    return path, data


def _check_entries(entries: Any, key: str, required: tuple[str, ...], where: str) -> None:
    if not isinstance(entries, list):
        raise ProbeError(f'{where}: "{key}" must be a list; this is not a manifest written by `cotbal plan`.')
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ProbeError(f'{where}: "{key}"[{i}] must be an object, got {type(entry).__name__}.')
        bad = [k for k in required if not isinstance(entry.get(k), str) or not entry.get(k)]
        if bad:
            name = entry.get("name") or f"#{i}"
            raise ProbeError(
                f'{where}: "{key}" entry {name!r} lacks the text field(s) {bad}; re-run `cotbal plan` rather than '
                "editing the manifest."
            )
