"""Shared fixtures: tiny models and small multi-task datasets built locally once per test session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cotbal_plugin.testing.workspace import all_text, write_text_tasks

TEXT_TASKS = {"short": 1, "long": 12}


@pytest.fixture(scope="session")
def text_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``model/`` (tiny Llama), ``data/`` (tasks short and long) and ``weights.json``."""
    from cotbal_plugin.testing.tiny import build_tiny_llama

    root = tmp_path_factory.mktemp("text")
    write_text_tasks(root / "data", TEXT_TASKS, n=8)
    build_tiny_llama(root / "model", all_text(TEXT_TASKS, n=8) + ["third task " * 3])
    (root / "weights.json").write_text(json.dumps({"weights": {"short": 2.0, "long": 0.5}}))
    return root
