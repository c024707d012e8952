"""Streaming readers: JSON arrays in small chunks, JSON Lines, malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cotbal_plugin.probe.errors import ProbeError
from cotbal_plugin.probe.jsonstream import _iter_array, count_records, iter_records

RECORDS = [
    {"instruction": "q [1, 2]", "output": "a, b } ]", "nested": {"x": [1, {"y": "]"}]}},
    {"instruction": "unicode é 漢字 \\u00e9", "output": "", "n": 1.5e-3},
    {},
]


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 20])
def test_array_in_any_chunk_size(tmp_path: Path, chunk: int) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps(RECORDS, indent=2, ensure_ascii=False), encoding="utf-8")
    assert list(_iter_array(path, chunk_size=chunk)) == RECORDS


def test_jsonl_and_json_holding_lines(tmp_path: Path) -> None:
    lines = "".join(json.dumps(r) + "\n" for r in RECORDS) + "\n"
    (tmp_path / "a.jsonl").write_text(lines)
    (tmp_path / "b.json").write_text(lines)
    assert list(iter_records(tmp_path / "a.jsonl")) == RECORDS
    assert list(iter_records(tmp_path / "b.json")) == RECORDS
    assert count_records(tmp_path / "a.jsonl") == 3


def test_empty_array(tmp_path: Path) -> None:
    (tmp_path / "e.json").write_text(" [ ] ")
    assert list(iter_records(tmp_path / "e.json")) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"a": 1}, {"b": ', "record #2 is not valid JSON"),
        ('[{"a": 1} {"b": 2}]', "expected ',' or ']' after record #1"),
        ('[{"a": 1}, 3]', "record #2 is not a JSON object"),
        ('[{"a": 1},', "record #2 is not valid JSON"),
    ],
)
def test_malformed_array(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ProbeError, match=message):
        list(iter_records(path))


def test_malformed_jsonl_and_other_formats(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{oops}\n')
    with pytest.raises(ProbeError, match="line 2"):
        list(iter_records(tmp_path / "bad.jsonl"))
    (tmp_path / "d.parquet").write_bytes(b"PAR1")
    with pytest.raises(ProbeError, match=r"\.json and \.jsonl"):
        list(iter_records(tmp_path / "d.parquet"))
    with pytest.raises(ProbeError, match="does not exist"):
        list(iter_records(tmp_path / "missing.json"))
