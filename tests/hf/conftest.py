"""Fixtures of the plain-HF front-end tests: the tiny models' workspaces and the ``torchrun`` launches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cotbal_plugin.testing.workspace import DS_Z2

from ._common import args_dict, launch, tokenized_rows, write_json

LLAVA_ARGS = {"learning_rate": 0.2, "max_steps": 3}  # the LLaVA runs of test_llava.py and of the launches


@pytest.fixture(scope="session")
def ws(text_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The session's tiny Llama, its tokenizer, tokenized rows of tasks short and long, a scratch folder."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(text_workspace / "model")
    return {
        "model": text_workspace / "model",
        "tokenizer": tokenizer,
        "rows": tokenized_rows(tokenizer),
        "tmp": tmp_path_factory.mktemp("hf"),
    }


@pytest.fixture(scope="session")
def llava_json(vlm_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LLaVA-format training file (records with image, conversations and task) over the session's images."""
    from . import _llava_mimic as mimic

    return mimic.write_llava_json(vlm_workspace, tmp_path_factory.mktemp("llava_json") / "llava_train.json")


@pytest.fixture(scope="session")
def launched(ws: dict[str, Any], vlm_workspace: Path, llava_json: Path) -> dict[str, dict[str, Any]]:
    """Two ``torchrun --nproc_per_node 2`` launches over gloo — DDP and DeepSpeed ZeRO-2 — each training, at batch 2
    per process, the tiny Llama (``text``, static weights) and the LLaVA-codebase-style model (``codebase``).
    Returns launch → job → (final parameters, loss logs)."""
    from ._common import WEIGHTS

    tmp = ws["tmp"]
    rows = str(write_json(tmp / "rows.json", ws["rows"]))
    out: dict[str, dict[str, Any]] = {}
    for name, extra in (("ddp", {}), ("ds", {"deepspeed": DS_Z2})):
        common = {"per_device_train_batch_size": 2, "ddp_backend": "gloo", **extra}
        jobs = [
            {
                "kind": "text",
                "model": str(ws["model"]),
                "rows": rows,
                "args": args_dict(tmp / f"{name}_text_ckpt", **common),
                "cotbal": {"cotbal_weights": WEIGHTS},
                "out": str(tmp / f"{name}_text"),
            },
            {
                "kind": "codebase",
                "model": str(vlm_workspace / "model"),
                "llava_json": str(llava_json),
                "image_folder": str(vlm_workspace / "data"),
                "args": args_dict(tmp / f"{name}_codebase_ckpt", **LLAVA_ARGS, **common),
                "cotbal": {"cotbal_weights": {"color": 2.0, "describe": 0.5}},
                "out": str(tmp / f"{name}_codebase"),
            },
        ]
        out[name] = launch(tmp, name, jobs)
    return out
