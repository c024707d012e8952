"""The vLLM prediction path, without vLLM (not usefully installable on this CPU machine).

* ``cotbal eval`` reads a ``generated_predictions.jsonl`` written the way LLaMA-Factory 0.9.5's
  ``scripts/vllm_infer.py`` writes it (``json.dumps({"prompt", "predict", "label"}, ensure_ascii=False)`` per
  line: non-ASCII text kept, decoded prompts with the template, empty predictions possible).
* ``cotbal run`` runs a plan's vLLM jobs (their ``argv``) through a stand-in ``vllm_infer.py`` that parses the
  command line the way the real one (python-fire, ``--key=value``) does and writes to ``--save_name``; the file
  is renamed from ``.partial`` and ``cotbal eval --manifest`` scores it.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from cotbal_plugin.cli import main
from cotbal_plugin.probe.errors import ProbeWarning
from cotbal_plugin.probe.plan import PlanConfig, make_plan
from cotbal_plugin.probe.runner import run_jobs

STAND_IN = """\
import json, sys
from pathlib import Path
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])  # python-fire accepts --key=value
assert args["temperature"] == "0" and "save_name" in args, args
data = Path(args["dataset_dir"])
entry = json.loads((data / "dataset_info.json").read_text())[args["dataset"]]
rows = [json.loads(x) for x in (data / entry["file_name"]).read_text().splitlines() if x.strip()]
with open(args["save_name"], "w", encoding="utf-8") as f:
    for k, row in enumerate(rows):
        pred = row["output"] if k % 2 == 0 else "wrong"
        line = {"prompt": "USER: " + row["instruction"] + " ASSISTANT:", "predict": pred, "label": row["output"]}
        f.write(json.dumps(line, ensure_ascii=False) + "\\n")
print(f"{len(rows)} total generated results have been saved at {args['save_name']}.")
"""


def test_eval_reads_vllm_style_predictions(tmp_path: Path, capsys) -> None:
    rows = [
        {"prompt": "<s> USER: <image>\nQuelle couleur ? ASSISTANT:", "predict": "Rouge.", "label": "rouge"},
        {"prompt": "USER: 数字は？ ASSISTANT:", "predict": "三", "label": "三"},
        {"prompt": "USER: Count? ASSISTANT:", "predict": "", "label": "2"},
        {"prompt": "USER: Which? ASSISTANT:", "predict": " left ", "label": "left"},
    ]
    path = tmp_path / "generated_predictions.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert "三" in path.read_text(encoding="utf-8")  # written like vllm_infer.py: not ASCII-escaped
    code = main(["eval", "--pred", f"mini/color={path}", "--metric", "color=em", "--out", str(tmp_path / "s.json"),
                 "--no-progress"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    # exact match after strip, lower-case and one trailing period dropped: rows 1, 2 and 4 match
    assert json.loads((tmp_path / "s.json").read_text()) == {"mini": {"color": 0.75}}


def test_run_and_eval_a_vllm_plan(workspace: Path, tmp_path: Path, capsys) -> None:
    script = tmp_path / "vllm_infer.py"
    script.write_text(STAND_IN)
    cfg = PlanConfig(base_yaml=workspace, out_dir=workspace.parent / "plan", tasks=["vqa", "cap"],
                     validation={"vqa": ["vqa_val"], "cap": ["cap_val"]}, metrics={"vqa": ["em"], "cap": ["em"]},
                     mini_fraction=1 / 8, progress=False, infer_backend="vllm", vllm_script=script)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProbeWarning)
        m = make_plan(cfg)
    for job in m["jobs"]:  # the trainings are not what this test is about: mark them finished
        if job["kind"] == "train":
            Path(job["done"]).parent.mkdir(parents=True)
            Path(job["done"]).write_text("{}")
    predicts = [dict(j, argv=[sys.executable, *j["argv"][1:]]) for j in m["jobs"] if j["kind"] == "predict"]
    summary = run_jobs(predicts, [], progress=False, parallel=2, all_jobs=m["jobs"])
    assert summary.ok and len(summary.ran) == 6
    assert all(Path(j["done"]).is_file() and not Path(j["write_dir"]).exists() for j in predicts)
    assert "total generated results have been saved" in Path(predicts[0]["log"]).read_text()
    code = main(["eval", "--manifest", str(workspace.parent / "plan"), "--out", str(tmp_path / "scores.json"),
                 "--no-progress"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores == {run: {"vqa": 0.5, "cap": 0.5} for run in ("mini", "vqa+mini", "cap+mini")}  # 10 of 20 right
