"""scores.json loading and validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cotbal_plugin.probe.errors import ProbeError
from cotbal_plugin.probe.scores import check_task_names, get_score, load_scores, validate_scores


def test_load_valid(tmp_path: Path) -> None:
    path = tmp_path / "scores.json"
    path.write_text(json.dumps({"mini": {"a": 1, "b": 0.5}}))
    assert load_scores(path) == {"mini": {"a": 1.0, "b": 0.5}}


def test_missing_file_says_how_to_produce_it(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match=r"does not exist.*cotbal eval"):
        load_scores(tmp_path / "nope.json")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_literals_rejected(tmp_path: Path, literal: str) -> None:
    path = tmp_path / "scores.json"
    path.write_text('{"mini": {"a": ' + literal + "}}")
    with pytest.raises(ProbeError, match=literal.lstrip("-")):
        load_scores(path)


@pytest.mark.parametrize("value", ["0.5", None, True, [0.5], float("nan")])
def test_non_numeric_scores_name_run_and_task(value: object) -> None:
    with pytest.raises(ProbeError, match=r"run 'x\+mini' on task 'b'"):
        validate_scores({"mini": {"a": 1.0}, "x+mini": {"b": value}})


def test_bad_structure(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match="expected a JSON object"):
        validate_scores([1, 2])
    with pytest.raises(ProbeError, match="run 'mini' must map task names"):
        validate_scores({"mini": 0.5})
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ProbeError, match="not valid JSON"):
        load_scores(path)


def test_get_score_messages() -> None:
    scores = {"mini": {"a": 1.0}}
    assert get_score(scores, "mini", "a") == 1.0
    with pytest.raises(ProbeError, match=r"run 'b\+mini' is missing.*runs present: \['mini'\]"):
        get_score(scores, "b+mini", "a")
    with pytest.raises(ProbeError, match=r"run 'mini' has no score for task 'b'"):
        get_score(scores, "mini", "b")


@pytest.mark.parametrize("bad", ["mini", "base", "a+b", "a/b", " a", ""])
def test_reserved_task_names(bad: str) -> None:
    with pytest.raises(ProbeError, match="not allowed"):
        check_task_names(["ok", bad])


def test_ambiguous_run_names() -> None:
    with pytest.raises(ProbeError, match="same run name 'mini_x'"):
        check_task_names(["x", "mini_x"])
