"""``cotbal report``: PNG figures and markdown table from weights.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cotbal_plugin.probe.balance import compute_weights
from cotbal_plugin.probe.errors import ProbeError
from cotbal_plugin.probe.report import load_weights_report, markdown_table, write_report

SCORES = {
    "mini": {"a": 0.2, "b": 0.4, "c": 0.1},
    "a+mini": {"a": 0.6, "b": 0.5, "c": 0.2},
    "b+mini": {"a": 0.3, "b": 0.8, "c": 0.15},
    "c+mini": {"a": 0.25, "b": 0.45, "c": 0.5},
}
PNG = b"\x89PNG\r\n\x1a\n"


def test_full_report(tmp_path: Path) -> None:
    data = compute_weights(SCORES, fixed={"sharegpt": 1.0})
    written = write_report(data, tmp_path / "rep")
    names = [p.name for p in written]
    assert names == ["report.md", "contribution.png", "difficulty.png", "weights.png"]
    for p in written[1:]:
        assert p.read_bytes().startswith(PNG) and p.stat().st_size > 1000
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| task | C_out | C_in | D | λ_out | λ_in | λ_C | λ_D | λ_CoTBal | weight |" in md
    assert f"| a | {data['C_out']['a']:.4f} |" in md
    assert "| sharegpt | — | — | — | — | — | — | — | — | 1.0000 |" in md
    assert "## Contribution matrix C" in md and "| from \\ to | a | b | c |" in md


def test_hand_written_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"weights": {"x": 1.2, "y": 0.8}}))
    written = write_report(load_weights_report(path), tmp_path / "rep")
    assert [p.name for p in written] == ["report.md", "weights.png"]
    assert markdown_table({"weights": {"x": 1.2}}).splitlines()[-1] == "| x | 1.2000 |"


def test_bad_weights_file(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match="does not exist; write it with `cotbal weights"):
        load_weights_report(tmp_path / "none.json")
    (tmp_path / "w.json").write_text('{"lambda": {}}')
    with pytest.raises(ProbeError, match='no "weights" object'):
        load_weights_report(tmp_path / "w.json")


def test_written_weights_pass_validation(tmp_path: Path) -> None:
    """What `cotbal weights` writes (C with its diagonal, every λ, a fixed task) loads unchanged."""
    data = compute_weights(SCORES, fixed={"sharegpt": 1.0})
    path = tmp_path / "w.json"
    path.write_text(json.dumps(data))
    assert load_weights_report(path) == json.loads(json.dumps(data))
    data["C"][0][0] = None  # the diagonal is never drawn: null is fine there
    path.write_text(json.dumps(data))
    assert load_weights_report(path)["C"][0][0] is None


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"weights": {"a": 0.0}}, r"--weights: weight of task 'a' .* must be > 0"),
        ({"weights": {"a": True}}, r"task 'a' .* True, not a number"),
        ({"C": [[1, 2], [3, 4]]}, r'"C" must be a 3×3 list of rows'),
        ({"C": [[1, 0.1, 0.2], [0.1, 1, None], [0.1, 0.2, 1]]}, r'"C"\[1\]\[2\] \(b → c\) is None'),
        ({"D": {"a": float("inf")}}, r'"D": value of task \'a\' is inf'),
        ({"C_in": {"sharegpt": 0.1}}, r'"C_in" names task \'sharegpt\', which is not one of the balanced tasks'),
        ({"lambda": {"CoTBal": {"a": "x"}}}, r'"lambda"/"CoTBal": value of task \'a\''),
        ({"tasks": "a,b"}, r'"tasks" must be a non-empty list of task names'),
    ],
)
def test_invalid_audit_keys_are_refused(tmp_path: Path, change: dict, pattern: str) -> None:
    data = compute_weights(SCORES, fixed={"sharegpt": 1.0})
    for key, value in change.items():
        data[key] = {**data[key], **value} if key == "weights" else value
    path = tmp_path / "w.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ProbeError, match=pattern):
        load_weights_report(path)
