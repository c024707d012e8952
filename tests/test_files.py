"""The shared input reader and output writer (``cotbal_plugin.files``)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from cotbal_plugin.errors import CotbalUserError
from cotbal_plugin.files import STDOUT, check_output_dir, check_output_file, make_dir, read_json, write_json


class OtherError(CotbalUserError):
    pass


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (None, r"^--x: file '.*a\.json' does not exist; make it\.$"),
        ("", r"^--x: '.*a\.json' is empty; make it\.$"),
        ("  \n", "is empty"),
        (b"\xff\xfe\x00", "is not UTF-8 text"),
        ('{"a": 1,\n "b": }', r"is not valid JSON: Expecting value at line 2, column 7\.$"),
        ('{"a": NaN}', "contains NaN; every number must be finite"),
        ("[1, -Infinity]", "contains -Infinity"),
    ],
)
def test_read_json_errors(tmp_path: Path, content: str | bytes | None, pattern: str) -> None:
    path = tmp_path / "a.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(OtherError, match=pattern):
        read_json(path, "--x", hint="make it.", error=OtherError)


def test_read_json_directory_bom_and_nonfinite(tmp_path: Path) -> None:
    with pytest.raises(CotbalUserError, match="is a directory; expected a JSON file"):
        read_json(tmp_path, "--x")
    path = tmp_path / "a.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"a": 1}).encode())  # a BOM written by some editors
    assert read_json(path, "--x") == {"a": 1}
    path.write_text('{"a": NaN}')
    value = read_json(path, "--x", allow_nonfinite=True)["a"]
    assert value != value  # NaN, left to a caller that names the key


def test_write_json_file_and_stdout(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "new" / "dir" / "w.json"
    write_json(target, {"a": 1.5}, "--out")
    assert json.loads(target.read_text()) == {"a": 1.5}
    buffer = io.StringIO()
    monkeypatch.setattr("sys.stdout", buffer)
    monkeypatch.chdir(tmp_path)
    write_json(STDOUT, {"b": 2}, "--out")
    assert json.loads(buffer.getvalue()) == {"b": 2} and not (tmp_path / "-").exists()
    with pytest.raises(ValueError, match="non-finite"):
        write_json(tmp_path / "n.json", {"a": float("nan")}, "--out")
    assert not (tmp_path / "n.json").exists()


def test_output_checks(tmp_path: Path) -> None:
    file = tmp_path / "f.txt"
    file.write_text("x")
    with pytest.raises(CotbalUserError, match="--out: .* is a directory; give a file path"):
        check_output_file(tmp_path, "--out")
    with pytest.raises(CotbalUserError, match=r"--out: cannot write .*f\.txt/a/b\.json.*f\.txt' is not a directory"):
        check_output_file(file / "a" / "b.json", "--out")
    check_output_file(tmp_path / "fine" / "new.json", "--out")  # missing parents are created later
    check_output_file(STDOUT, "--out")
    with pytest.raises(CotbalUserError, match="--dir: .*f.txt' exists and is not a directory"):
        check_output_dir(file / "sub", "--dir")
    assert make_dir(tmp_path / "x" / "y", "--dir").is_dir()
