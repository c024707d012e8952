"""The benchmark's designed structure, checked against what the probes measured (C of eq. 3, D of eq. 9).

The shapes benchmark is built so that (see :mod:`cotbal_plugin.demo.shapes` and docs/demo.md):

- ``caption`` names the colour and kind of every shape, what the ``colour`` sentence states: training on captions
  helps ``colour`` (C_caption,colour > 0);
- ``colour`` asks the question of ``color`` (one letter apart) but answers with a sentence: training on it
  pulls the answers of ``color`` towards sentences, the wrong format there (C_colour,color < 0) — the short-answer
  vs conversation conflict that made LLaVA-1.5 add "Answer the question using a single word or phrase";
- ``count`` (1-12 shapes) keeps improving with more data while ``color`` (the colour of the shape the question names,
  which the pretrained model can already read) is learnt early (D_count > D_color);
- answers differ in length: ``caption`` has many tokens per answer, ``color`` and ``count`` one word.

:func:`check_structure` reads every seed's ``weights.json`` (which holds C, D and the probe scores) and reports
each designed relation with its value per seed, mean and whether it holds on the mean and in how many seeds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Expectation:
    """One designed relation: ``kind`` "C" (C[giver][receiver] compared with 0) or "D" (D[a] - D[b] > 0)."""

    kind: str
    a: str
    b: str
    sign: int  # +1: the value must be > 0, -1: < 0
    why: str

    @property
    def label(self) -> str:
        """How the relation reads in a table."""
        if self.kind == "C":
            return f"C[{self.a} → {self.b}] {'>' if self.sign > 0 else '<'} 0"
        return f"D[{self.a}] {'>' if self.sign > 0 else '<'} D[{self.b}]"


EXPECTED = (
    Expectation("C", "caption", "colour", +1, "the caption names each shape's colour, which the sentence states"),
    Expectation("C", "colour", "color", -1, "same question one letter apart: sentences pull the one-word answers"),
    Expectation("D", "count", "color", +1, "counting keeps improving with data; naming a colour is learnt early"),
)


def value(weights: Mapping[str, Any], exp: Expectation) -> float | None:
    """The measured quantity of ``exp`` in one seed's weights.json (``None`` when a task is not balanced)."""
    tasks = list(weights.get("tasks") or [])
    if exp.a not in tasks or exp.b not in tasks:
        return None
    if exp.kind == "C":
        return float(weights["C"][tasks.index(exp.a)][tasks.index(exp.b)])
    return float(weights["D"][exp.a]) - float(weights["D"][exp.b])


def check_structure(
    weights_by_seed: Mapping[int, Mapping[str, Any]],
    tasks: Sequence[str],
    expected: Sequence[Expectation] = EXPECTED,
) -> list[dict[str, Any]]:
    """Every expectation whose tasks are in ``tasks``: per-seed values, mean, and whether the sign holds."""
    rows = []
    for exp in expected:
        if exp.a not in tasks or exp.b not in tasks:
            continue
        values = {seed: value(w, exp) for seed, w in weights_by_seed.items()}
        known = [v for v in values.values() if v is not None]
        mean = sum(known) / len(known) if known else None
        rows.append({
            "relation": exp.label, "kind": exp.kind, "a": exp.a, "b": exp.b, "sign": exp.sign, "why": exp.why,
            "values": values, "mean": mean,
            "holds": mean is not None and mean * exp.sign > 0,
            "seeds_holding": sum(1 for v in known if v * exp.sign > 0), "seeds": len(known),
        })  # fmt: skip
    return rows


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:+.3f}"


def _verdict(row: Mapping[str, Any]) -> str:
    """``yes`` when every seed shows the relation, ``mean only`` when the mean does but some seed does not."""
    if not row["holds"]:
        return "**no**"
    return "yes" if row["seeds_holding"] == row["seeds"] else "mean only"


def markdown(rows: Sequence[Mapping[str, Any]], weights_by_seed: Mapping[int, Mapping[str, Any]]) -> str:
    """The check as markdown, followed by every seed's D and the mean C matrix."""
    seeds = list(weights_by_seed)
    head = "| designed relation | why | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | holds |"
    lines = [head, "|---" * (4 + len(seeds)) + "|"]
    for r in rows:
        cells = [_fmt(r["values"][s]) for s in seeds]
        verdict = _verdict(r) + f" ({r['seeds_holding']}/{r['seeds']} seeds)"
        lines.append(f"| {r['relation']} | {r['why']} | " + " | ".join(cells) + f" | {_fmt(r['mean'])} | {verdict} |")
    text = "\n".join(lines) + "\n"
    first = weights_by_seed[seeds[0]]
    tasks = list(first.get("tasks") or [])
    if tasks and all(list(w.get("tasks") or []) == tasks for w in weights_by_seed.values()):
        text += "\nD per seed (eq. 9):\n\n| task | " + " | ".join(f"seed {s}" for s in seeds) + " |\n"
        text += "|---" * (1 + len(seeds)) + "|\n"
        for t in tasks:
            text += f"| {t} | " + " | ".join(f"{weights_by_seed[s]['D'][t]:.3f}" for s in seeds) + " |\n"
        text += "\nC (eq. 3, row gives to column), mean over seeds:\n\n| from \\ to | " + " | ".join(tasks) + " |\n"
        text += "|---" * (1 + len(tasks)) + "|\n"
        for i, t in enumerate(tasks):
            cells = []
            for j in range(len(tasks)):
                mean = sum(float(w["C"][i][j]) for w in weights_by_seed.values()) / len(seeds)
                cells.append("—" if i == j else f"{mean:+.3f}")
            text += f"| {t} | " + " | ".join(cells) + " |\n"
    return text


def write_structure(
    rows: Sequence[Mapping[str, Any]], weights_by_seed: Mapping[int, Mapping[str, Any]], md_path: Path, json_path: Path
) -> Path:
    """Write the check as markdown and JSON; returns the markdown path."""
    md_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(list(rows), indent=2) + "\n", encoding="utf-8")
    text = "# Designed structure vs the probes' measurements\n\n" + markdown(rows, weights_by_seed)
    md_path.write_text(text, encoding="utf-8")
    return md_path
