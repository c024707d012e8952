"""ΔI%/ΔE% over several seeds (``cotbal summary --table s0.json --table s1.json ...``): mean ± sample std."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from PIL import Image

from cotbal_plugin.cli import main
from cotbal_plugin.probe.errors import ProbeError
from cotbal_plugin.probe.seeds import markdown_seeds, summarize_seeds
from cotbal_plugin.probe.summary import summarize

PNG = b"\x89PNG\r\n\x1a\n"


def _seed_tables() -> list[dict]:
    """Three seeds; EW and CoTBal move differently against STL in each."""
    rows = [  # (STL a, STL b, EW a, EW b, CoTBal a, CoTBal b)
        (0.50, 2.0, 0.55, 1.8, 0.60, 2.1),
        (0.40, 2.2, 0.42, 2.0, 0.50, 2.3),
        (0.45, 1.9, 0.40, 2.1, 0.52, 2.0),
    ]
    return [
        {"STL": {"a": {"em": s_a}, "b": {"cider": s_b}}, "EW": {"a": {"em": e_a}, "b": {"cider": e_b}},
         "CoTBal": {"a": {"em": c_a}, "b": {"cider": c_b}}}
        for s_a, s_b, e_a, e_b, c_a, c_b in rows
    ]  # fmt: skip


def test_mean_and_sample_std_of_per_seed_eq_12_to_14() -> None:
    tables = _seed_tables()
    result = summarize_seeds(tables, "STL")
    per_seed = [summarize(t, "STL") for t in tables]  # eq. 12-14 per seed, each against its own STL
    for method in ("EW", "CoTBal"):
        values = [r[method]["delta_i"] for r in per_seed]
        got = result["summary"][method]["delta_i"]
        assert got["values"] == pytest.approx(values)
        assert got["mean"] == pytest.approx(statistics.mean(values))
        assert got["std"] == pytest.approx(statistics.stdev(values))  # n - 1
        errors = [r[method]["delta_e"] for r in per_seed]
        assert result["summary"][method]["delta_e"]["mean"] == pytest.approx(statistics.mean(errors))
    # by hand, seed 1 of EW: a +10 %, b -10 % -> ΔI% = 0, ΔE% = 5
    assert result["summary"]["EW"]["delta_i"]["values"][0] == pytest.approx(0.0)
    assert result["summary"]["EW"]["delta_e"]["values"][0] == pytest.approx(5.0)
    em = result["metrics"]["CoTBal"]["a"]["em"]
    assert em["mean"] == pytest.approx(statistics.mean([0.60, 0.50, 0.52]))
    assert em["std"] == pytest.approx(statistics.stdev([0.60, 0.50, 0.52]))
    paired = result["paired"]["EW - CoTBal"]
    diffs = [r["EW"]["delta_i"] - r["CoTBal"]["delta_i"] for r in per_seed]
    assert paired["values"] == pytest.approx(diffs) and paired["std"] == pytest.approx(statistics.stdev(diffs))


def test_one_seed_has_zero_spread() -> None:
    result = summarize_seeds(_seed_tables()[:1], "STL")
    assert result["seeds"] == 1 and result["summary"]["EW"]["delta_i"]["std"] == 0.0


def test_tables_of_different_layout_are_refused() -> None:
    tables = _seed_tables()
    del tables[1]["CoTBal"]
    with pytest.raises(ProbeError, match="table 2 has other methods"):
        summarize_seeds(tables, "STL")
    with pytest.raises(ProbeError, match="one --table per seed"):
        summarize_seeds([], "STL")


def test_markdown_shows_mean_pm_std_and_paired_gaps() -> None:
    text = markdown_seeds(summarize_seeds(_seed_tables(), "STL"))
    header, _, stl, ew, cotbal = text.splitlines()[:5]
    assert header == "| Method | a em↑ | b cider↑ | ΔI%↑ | ΔE%↓ |"
    assert stl.startswith("| STL | 0.45 ± 0.05 |") and stl.endswith("| — | — |")
    assert ew.startswith("| EW |") and " ± " in ew.split("|")[4]
    assert "over 3 seed(s)" in text and "| EW - CoTBal |" in text


def test_cli_several_tables_json_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    paths = []
    for k, table in enumerate(_seed_tables()):
        paths += ["--table", str(tmp_path / f"s{k}.json")]
        (tmp_path / f"s{k}.json").write_text(json.dumps(table))
    code = main(["summary", *paths, "--out", str(tmp_path / "s.md"), "--json", str(tmp_path / "s.json"),
                 "--plot", str(tmp_path / "s.png")])  # fmt: skip
    assert code == 0
    assert "± " in capsys.readouterr().out
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["seeds"] == 3 and set(data["summary"]) == {"STL", "EW", "CoTBal"}
    assert (tmp_path / "s.png").read_bytes()[:8] == PNG
    with Image.open(tmp_path / "s.png") as image:
        assert image.size[0] > 400 and image.size[1] > 400
    # one table still gives the one-seed table of before (and --zero-shot keeps working there)
    assert main(["summary", "--table", str(tmp_path / "s0.json")]) == 0
    assert " ± " not in capsys.readouterr().out
    code = main(["summary", *paths, "--zero-shot", str(tmp_path / "s0.json")])
    assert code == 2 and "--zero-shot takes a single --table" in capsys.readouterr().err
