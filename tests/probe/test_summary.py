"""ΔI%, ΔE% (eqs. 12-14) and ΔI_zero%, checked against the paper's Tables 1, 2 and 3."""

from __future__ import annotations

import pytest

from cotbal_plugin.probe.errors import ProbeError
from cotbal_plugin.probe.summary import (
    column_decimals,
    markdown,
    plain,
    summarize,
    task_improvement,
    validate_table,
)

# Table 1 (Academic Benchmark): three RefCOCO test sets per RefCOCO task.
TABLE_1 = {
    "STL": [0.1285, (0.4330, 0.4658, 0.6019), 77.73, 61.23, 17.76, 68.22, (65.02, 51.58, 50.78)],
    "EW": [0.1411, (0.4738, 0.5591, 0.5937), 78.27, 62.20, 19.60, 67.73, (76.05, 61.63, 62.80)],
    "CoTBal": [0.1437, (0.4649, 0.5724, 0.5874), 77.99, 61.81, 20.16, 67.48, (82.62, 67.38, 69.19)],
}
TASKS = ["ShareGPT4V", "RefCOCO-caption", "VQAv2", "GQA", "ChartQA", "OCRVQA", "RefCOCO-bbox"]


def _academic() -> dict:
    table = {}
    for method, row in TABLE_1.items():
        table[method] = {}
        for task, value in zip(TASKS, row):
            values = value if isinstance(value, tuple) else (value,)
            table[method][task] = {f"m{k}": v for k, v in enumerate(values)}
    return table


def test_table_1_delta_i_and_delta_e() -> None:
    result = summarize(validate_table(_academic(), "t"), "STL")
    assert round(result["EW"]["delta_i"], 2) == 7.30
    assert round(result["EW"]["delta_e"], 2) == 0.10
    assert round(result["CoTBal"]["delta_i"], 2) == 9.45
    assert round(result["CoTBal"]["delta_e"], 2) == 0.15
    assert result["STL"]["delta_i"] == 0.0


def test_table_3_chat() -> None:
    table = {
        "STL": {"Conv": 43.6, "Detail": 49.3, "Complex": 80.9},
        "EW": {"Conv": 44.8, "Detail": 59.6, "Complex": 83.4},
        "IGBv1": {"Conv": 39.9, "Detail": 64.2, "Complex": 81.7},
    }
    result = summarize(validate_table(table, "t"), "STL")
    assert round(result["EW"]["delta_i"], 2) == 8.91 and round(result["EW"]["delta_e"], 2) == 0.00
    assert round(result["IGBv1"]["delta_i"], 2) == 7.58 and round(result["IGBv1"]["delta_e"], 2) == 2.83


def test_table_2_zero_shot_against_ew() -> None:
    names = ["TextVQA", "POPE", "MME", "SQA", "MMBench", "SEED", "MM-Vet", "LLaVA-W"]
    ew = [53.96, 86.83, 1524.41, 60.74, 48.54, 54.13, 29.00, 60.30]
    cotbal = [53.87, 86.73, 1501.86, 61.07, 51.46, 58.05, 29.30, 58.90]
    table = {"EW": dict(zip(names, ew)), "CoTBal": dict(zip(names, cotbal))}
    assert round(summarize(validate_table(table, "t"), "EW")["CoTBal"]["delta_i"], 2) == 1.34


def test_lower_is_better_flips_the_sign() -> None:
    # loss 2 → 1 halves: improvement +50%; accuracy 0.5 → 0.25: -50% → I = 0
    assert task_improvement({"loss": 1.0}, {"loss": 2.0}) == pytest.approx(0.5)
    assert task_improvement({"acc": 0.25, "loss": 1.0}, {"acc": 0.5, "loss": 2.0}) == pytest.approx(0.0)
    assert task_improvement({"ttr": 1.0}, {"ttr": 2.0}, lower_better=["TTR"]) == pytest.approx(0.5)


def test_errors_name_the_culprit() -> None:
    table = validate_table({"STL": {"a": {"x": 1.0}}, "EW": {"b": {"x": 1.0}}}, "t")
    with pytest.raises(ProbeError, match="method 'EW' has no results for task 'a'"):
        summarize(table, "STL")
    with pytest.raises(ProbeError, match=r"baseline method 'XX' is not in the table"):
        summarize(table, "XX")
    with pytest.raises(ProbeError, match=r"metric 'y' is missing"):
        summarize(validate_table({"STL": {"a": {"y": 1.0}}, "EW": {"a": {"x": 1.0}}}, "t"), "STL")
    with pytest.raises(ProbeError, match="baseline value of metric 'x' is 0"):
        summarize(validate_table({"STL": {"a": {"x": 0.0}}, "EW": {"a": {"x": 1.0}}}, "t"), "STL")
    with pytest.raises(ProbeError, match=r"'EW' / 'a' / 'x' is 'high'"):
        validate_table({"EW": {"a": {"x": "high"}}}, "t")


def test_markdown_flags_lower_is_better() -> None:
    table = validate_table({"STL": {"a": {"acc": 0.5, "wer": 0.2}}, "EW": {"a": {"acc": 0.6, "wer": 0.1}}}, "t")
    text = markdown(table, summarize(table, "STL"), "STL")
    assert "a acc↑" in text and "a wer↓" in text
    # acc +20%, wer -50% (better) → I = 35%
    assert "| EW | 0.600 | 0.100 | 35.00 | 0.00 |" in text


# ------------------------------------------------------------------------------------------- number format


@pytest.mark.parametrize(
    ("values", "decimals"),
    [
        ([0.35, 0.32, 0.3], 3),  # accuracies in [0, 1]: 3 significant digits of the largest
        ([2.46, 2.138, 2.063], 2),  # CIDEr around 2
        ([55.0, 50.0], 1),  # percentages
        ([1200.0, 1350.0], 0),  # large counts
        ([78.54, 78.51], 2),  # 1 decimal would print both as 78.5: one more
        ([0.12345, 0.12346], 5),
        ([0.0, 0.0], 0),
        ([-0.25, 0.1], 3),
        ([1.0, 1.0], 2),  # equal values stay equal, no extra digits
    ],
)
def test_column_decimals(values: list[float], decimals: int) -> None:
    assert column_decimals(values) == decimals


TABLE = {
    "STL": {"color": {"em": 0.35}, "count": {"em": 0.62}, "caption": {"cider": 2.46}, "det": {"ap": 78.54}},
    "EW": {"color": {"em": 0.32}, "count": {"em": 0.48}, "caption": {"cider": 2.138}, "det": {"ap": 78.51}},
    "CoTBal": {"color": {"em": 0.3}, "count": {"em": 0.52}, "caption": {"cider": 2.063}, "det": {"ap": 80.0}},
}


def _cells(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()[2:]]


def test_markdown_one_format_per_column() -> None:
    table = validate_table(TABLE, "t")
    rows = _cells(markdown(table, summarize(table, "STL"), "STL"))
    methods = list(TABLE)
    columns = [(t, m) for t, ms in TABLE["STL"].items() for m in ms]
    for k, (task, metric) in enumerate(columns, start=1):
        cells = [row[k] for row in rows]
        places = {len(c.split(".")[1]) if "." in c else 0 for c in cells}
        assert len(places) == 1, f"column {task} {metric} mixes formats: {cells}"
        for method, cell in zip(methods, cells):  # each cell is its value, rounded to the column's precision
            assert abs(float(cell) - TABLE[method][task][metric]) <= 0.5 * 10 ** -places.copy().pop() + 1e-12
    for row in rows[1:]:  # ΔI%, ΔE%: always 2 decimals
        assert all(len(c.split(".")[1]) == 2 for c in row[-2:])
    ap = [row[4] for row in rows]
    assert len(set(ap)) == 3  # 78.54 and 78.51 do not print alike


def test_plain_has_the_same_cells_aligned() -> None:
    table = validate_table(TABLE, "t")
    result = summarize(table, "STL")
    text = plain(table, result, "STL")
    lines = text.splitlines()
    assert lines[1].replace(" ", "").strip("-") == ""  # a rule under the header
    body = [line.split() for line in lines[2:]]
    assert body == _cells(markdown(table, result, "STL"))
    import re

    spans = [m.span() for m in re.finditer("-+", lines[1])]  # the rule marks each column
    for line, cells in zip(lines[2:], body):
        line = line.ljust(spans[-1][1])
        assert line[slice(*spans[0])] == cells[0].ljust(spans[0][1] - spans[0][0])  # method names left-aligned
        for (start, end), cell in zip(spans[1:], cells[1:]):  # numbers right-aligned in their column
            assert line[start:end] == cell.rjust(end - start), (line, cell)


def test_decimals_override() -> None:
    table = validate_table(TABLE, "t")
    rows = _cells(markdown(table, summarize(table, "STL"), "STL", decimals=1))
    assert [row[1] for row in rows] == ["0.3", "0.3", "0.3"] and rows[0][3] == "2.5"
