"""Reading plan manifests: file checks and the structure `cotbal run` / `cotbal eval` rely on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cotbal_plugin.probe.errors import ProbeError
from cotbal_plugin.probe.manifest import read_manifest

JOB = {"name": "train:mini", "kind": "train", "yaml": "/p/t.yaml", "done": "/p/d", "log": "/p/l"}
PRED = {"run": "mini", "task": "a", "file": "/p/f.jsonl", "dataset": "a_val"}


def write(tmp: Path, data: object) -> Path:
    path = tmp / "manifest.json"
    path.write_text(json.dumps(data))
    return path


def test_valid_manifest_and_folder(tmp_path: Path) -> None:
    data = {"version": 1, "jobs": [JOB], "predictions": [PRED], "tasks": {"a": {"metrics": ["em"]}}}
    path = write(tmp_path, data)
    assert read_manifest(tmp_path) == (path, data)
    assert read_manifest(path)[1] == data


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ([1], r"not a cotbal manifest of version 1 \(found list\)"),
        ({"version": 2, "jobs": []}, r"found version 2"),
        ({"version": 1}, '"jobs" must be a list'),
        ({"version": 1, "jobs": ["x"]}, r'"jobs"\[0\] must be an object, got str'),
        ({"version": 1, "jobs": [{**JOB, "done": 3}]}, r"entry 'train:mini' lacks the text field\(s\) \['done'\]"),
        ({"version": 1, "jobs": [{"kind": "train"}]}, r"entry '#0' lacks .*'name', 'yaml', 'done', 'log'"),
        ({"version": 1, "jobs": [], "predictions": [{**PRED, "task": None}]}, r"\['task'\]"),
        ({"version": 1, "jobs": [], "tasks": []}, '"tasks" must be an object'),
        ({"version": 1, "jobs": [], "tasks": {"a": {"metrics": []}}}, "task 'a' has no \"metrics\" list"),
    ],
)
def test_bad_structure_names_the_entry(tmp_path: Path, data: object, pattern: str) -> None:
    with pytest.raises(ProbeError, match=pattern) as info:
        read_manifest(write(tmp_path, data))
    assert "manifest.json" in str(info.value) and "\n" not in str(info.value)


def test_folder_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match="folder .* has no manifest.json; pass the --out folder of `cotbal plan`"):
        read_manifest(tmp_path)
