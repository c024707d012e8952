"""Streaming readers for dataset files: JSON Lines and top-level JSON arrays, one record at a time.

A JSON array is read in chunks and decoded element by element with :meth:`json.JSONDecoder.raw_decode`, so memory
holds one chunk plus the current record, never the whole file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ProbeError

CHUNK = 1 << 20
_WS = " \t\n\r"


def _iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ProbeError(f"{str(path)!r} line {lineno}: not valid JSON ({err}).") from None
            if not isinstance(record, dict):
                raise ProbeError(f"{str(path)!r} line {lineno}: expected a JSON object per line.")
            yield record


def _iter_array(path: Path, chunk_size: int = CHUNK) -> Iterator[dict[str, Any]]:
    decoder = json.JSONDecoder()
    with path.open(encoding="utf-8") as f:
        buf, pos, eof = "", 0, False

        def fill() -> bool:
            nonlocal buf, pos, eof
            data = f.read(chunk_size)
            if not data:
                eof = True
                return False
            buf = buf[pos:] + data
            pos = 0
            return True

        def skip_ws() -> None:
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos] in _WS:
                    pos += 1
                if pos < len(buf) or not fill():
                    return

        skip_ws()
        if pos >= len(buf) or buf[pos] != "[":
            raise ProbeError(f"{str(path)!r}: expected a JSON array of records (or use a .jsonl file).")
        pos += 1
        index = 0
        skip_ws()
        if pos < len(buf) and buf[pos] == "]":
            return
        while True:
            skip_ws()
            while True:
                try:
                    record, end = decoder.raw_decode(buf, pos)
                    # a number or literal at the end of the buffer may continue in the next chunk
                    if end == len(buf) and not eof and not isinstance(record, dict | list | str):
                        raise json.JSONDecodeError("maybe truncated", buf, pos)
                    break
                except json.JSONDecodeError as err:
                    if eof or not fill():
                        raise ProbeError(f"{str(path)!r}: record #{index + 1} is not valid JSON ({err}).") from None
            if not isinstance(record, dict):
                raise ProbeError(f"{str(path)!r}: record #{index + 1} is not a JSON object.")
            pos = end
            index += 1
            yield record
            skip_ws()
            if pos >= len(buf):
                raise ProbeError(f"{str(path)!r}: the JSON array is not closed (after record #{index}).")
            if buf[pos] == ",":
                pos += 1
            elif buf[pos] == "]":
                return
            else:
                raise ProbeError(f"{str(path)!r}: expected ',' or ']' after record #{index}, got {buf[pos]!r}.")


def iter_records(path: str | Path, chunk_size: int = CHUNK) -> Iterator[dict[str, Any]]:
    """Yield the records of a ``.jsonl`` file, or of a ``.json`` file holding an array or JSON Lines."""
    path = Path(path)
    if not path.is_file():
        raise ProbeError(f"dataset file {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _iter_jsonl(path)
        return
    if suffix != ".json":
        raise ProbeError(
            f"{str(path)!r}: `cotbal plan` can subsample .json and .jsonl files only; convert it to JSON Lines."
        )
    with path.open(encoding="utf-8") as f:
        first = ""
        while not first:
            ch = f.read(1)
            if not ch:
                return
            first = ch.strip()
    if first == "[":
        yield from _iter_array(path, chunk_size)
    else:
        yield from _iter_jsonl(path)


def count_records(path: str | Path) -> int:
    """Number of records in a dataset file (streamed)."""
    return sum(1 for _ in iter_records(path))
