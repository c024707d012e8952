"""The demo's results as one markdown block, and the one command that puts them into the docs.

``run_demo`` writes ``summary/RESULTS.md`` at the end of every run: the mean ± std table, the paired gaps, the
designed-structure check, the first seed's weights, timing with the machine's load, and the git commit of the
code that produced them. ``python -m cotbal_plugin.demo.results demo_out docs/demo.md docs/img`` (``make
demo-docs``) copies that block between the ``<!-- demo-results:begin -->`` / ``<!-- demo-results:end -->``
markers of the docs page and the figures into the image folder, so the published numbers are never typed by hand.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

BEGIN = "<!-- demo-results:begin -->"
END = "<!-- demo-results:end -->"
FIGURES = {  # demo output -> name in the docs image folder
    "summary/summary.png": "demo_summary.png",
    "report/weights.png": "demo_weights.png",
    "report/contribution.png": "demo_contribution.png",
    "report/task_curves.png": "demo_task_curves.png",
}


def git_commit(path: Path) -> str:
    """``<short hash>`` of the checkout holding ``path`` (``+dirty`` with uncommitted changes), or ``unknown``."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=path, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def load() -> str:
    """The 1/5/15-minute load averages and the core count (other processes slow the demo down)."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} cores"


def _gap_line(summary: Mapping[str, Any], a: str, b: str) -> str:
    """``ΔI%(a) − ΔI%(b)`` with the spread it is judged against (the larger std of the two) and the paired one."""
    s = summary["summary"]
    gap = s[a]["delta_i"]["mean"] - s[b]["delta_i"]["mean"]
    stds = max(s[a]["delta_i"]["std"], s[b]["delta_i"]["std"])
    text = f"ΔI%({a}) − ΔI%({b}) = {gap:+.2f} (larger of the two stds: {stds:.2f}"
    paired = summary.get("paired", {})
    for key, sign in ((f"{a} - {b}", 1), (f"{b} - {a}", -1)):
        if key in paired:
            diffs = ", ".join(f"{sign * v:+.2f}" for v in paired[key]["values"])
            text += f"; per seed: {diffs}, paired std {paired[key]['std']:.2f}"
    verdict = "above" if gap > stds else ("below" if gap < -stds else "within one std of")
    return text + f") — {a} is {verdict} {b} by the one-std criterion"


def render(out: Path, settings: Mapping[str, Any], timing: Mapping[str, Any], commit: str) -> str:
    """The results block (markdown) of a finished demo run in ``out``."""
    summary_dir = out / "summary"
    summary = json.loads((summary_dir / "summary.json").read_text(encoding="utf-8"))
    lines = [
        f"Produced by `make demo` at commit `{commit}` ({settings['mode']} mode, seeds "
        f"{', '.join(map(str, settings['seeds']))}; {timing['minutes']:.1f} min wall clock, "
        f"{timing['jobs']} jobs at a time; load average before / after: {timing['load_before']} / "
        f"{timing['load_after']}).",
        "",
        "Mean ± sample standard deviation over seeds (`demo_out/summary/summary.md`; ΔI%/ΔE% per seed against "
        f"{summary['baseline']}):",
        "",
        (summary_dir / "summary.md").read_text(encoding="utf-8").rstrip(),
        "",
    ]
    if "CoTBal" in summary["summary"] and "EW" in summary["summary"]:
        lines += [_gap_line(summary, "CoTBal", "EW") + ".", ""]
    lines += [
        "Designed structure vs measured (`demo_out/summary/structure.md`):",
        "",
        (summary_dir / "structure.md").read_text(encoding="utf-8").split("\n", 2)[2].rstrip(),
        "",
        f"Task weights of seed {settings['seeds'][0]} (`demo_out/report/report.md`):",
        "",
        (out / "report" / "report.md").read_text(encoding="utf-8").split("\n\n")[2].rstrip(),
    ]
    return "\n".join(lines) + "\n"


def write_results(out: Path, settings: Mapping[str, Any], timing: Mapping[str, Any]) -> Path:
    """Write ``summary/RESULTS.md`` and ``summary/run.json`` of a finished run; returns the markdown path."""
    commit = git_commit(Path(__file__).resolve().parent)
    path = out / "summary" / "RESULTS.md"
    path.write_text(render(out, settings, timing, commit), encoding="utf-8")
    run = {"commit": commit, "settings": dict(settings), **timing}
    (out / "summary" / "run.json").write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    return path


def update_docs(out: Path, docs: Path, image_dir: Path) -> None:
    """Replace the results block of ``docs`` with ``out/summary/RESULTS.md`` and copy the figures."""
    block = (out / "summary" / "RESULTS.md").read_text(encoding="utf-8")
    text = docs.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{docs} has no {BEGIN} ... {END} block to replace")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    docs.write_text(f"{head}{BEGIN}\n{block}{END}{tail}", encoding="utf-8")
    image_dir.mkdir(parents=True, exist_ok=True)
    for source, name in FIGURES.items():
        if (out / source).is_file():
            shutil.copyfile(out / source, image_dir / name)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cotbal_plugin.demo.results DEMO_OUT DOCS_MD IMAGE_DIR``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        print("usage: python -m cotbal_plugin.demo.results DEMO_OUT DOCS_MD IMAGE_DIR", file=sys.stderr)
        return 2
    out, docs, images = (Path(a) for a in args)
    if not (out / "summary" / "RESULTS.md").is_file():
        print(f"error: {out / 'summary' / 'RESULTS.md'} does not exist; run `make demo` first", file=sys.stderr)
        return 2
    update_docs(out, docs, images)
    print(f"updated {docs} and the figures in {images} from {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
