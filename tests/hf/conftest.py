"""Fixtures of the plain-HF front-end tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ._common import tokenized_rows


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
