"""``cotbal plan``: subsets, dataset_info entries, YAMLs, manifest, script, variants and input errors."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import pytest
import yaml

from cotbal_plugin.probe.errors import ProbeError, ProbeWarning
from cotbal_plugin.probe.jobs import SaveSettings
from cotbal_plugin.probe.plan import PlanConfig, load_manifest, make_plan, subset_indices

from .conftest import make_workspace

VAL = {"vqa": ["vqa_val"], "cap": ["cap_val"], "box": ["box_val"]}
METRICS = {"vqa": ["em"], "cap": ["em", "rouge_l"], "box": ["em"]}


def config(base: Path, **kw) -> PlanConfig:
    kw.setdefault("validation", {k: list(v) for k, v in VAL.items()})
    kw.setdefault("metrics", {k: list(v) for k, v in METRICS.items()})
    kw.setdefault("mini_fraction", 1 / 8)
    kw.setdefault("progress", False)
    kw.setdefault("out_dir", base.parent / "plan")
    return PlanConfig(base_yaml=base, **kw)


def plan(base: Path, **kw) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProbeWarning)
        return make_plan(config(base, **kw))


def lines(path: str | Path) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x]


def read_yaml(path: str | Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def test_real_plan_layout(workspace: Path) -> None:
    m = plan(workspace, large_fraction=0.5)
    out = workspace.parent / "plan"
    assert list(m["tasks"]) == ["vqa", "cap", "box"]
    assert list(m["runs"]) == ["mini", "vqa+mini", "cap+mini", "box+mini"]
    # sizes: round(0.5 n) and round(n / 8)
    assert m["subsets"]["vqa__cotbal_large"]["size"] == 128 and m["subsets"]["vqa__cotbal_mini"]["size"] == 32
    assert m["subsets"]["box__cotbal_large"]["size"] == 80 and m["subsets"]["box__cotbal_mini"]["size"] == 20
    # mini subset drawn from the large-enough subset, both drawn from the source
    for task, n in (("vqa", 256), ("cap", 192), ("box", 160)):
        large = lines(m["subsets"][f"{task}__cotbal_large"]["file"])
        mini = lines(m["subsets"][f"{task}__cotbal_mini"]["file"])
        assert len({r["output"] for r in large}) == len(large) == round(n / 2)
        assert {r["output"] for r in mini} <= {r["output"] for r in large}
    # dataset_info: new entries carry their task and absolute paths; original entries stay usable
    info = json.loads((out / "data" / "dataset_info.json").read_text())
    assert info["cap__cotbal_mini"]["cotbal_task"] == "cap"
    assert Path(info["cap__cotbal_mini"]["file_name"]).is_absolute()
    assert Path(info["vqa_val"]["file_name"]).is_file()
    # jobs: 4 trainings, 4 runs x 3 validation sets
    kinds = [j["kind"] for j in m["jobs"]]
    assert kinds.count("train") == 4 and kinds.count("predict") == 12
    assert load_manifest(out) == m
    script = (out / "run_all.sh").read_text()
    assert os.access(out / "run_all.sh", os.X_OK)
    assert all(j["yaml"] in script for j in m["jobs"]) and "cotbal eval --manifest" in script


def test_probe_training_yaml(workspace: Path) -> None:
    m = plan(workspace)
    cfg = read_yaml(m["runs"]["cap+mini"]["yaml"])
    assert cfg["dataset"] == "cap__cotbal_large,vqa__cotbal_mini,box__cotbal_mini"
    assert cfg["stage"] == "sft" and cfg["do_train"] is True
    assert cfg["dataset_dir"] == str((workspace.parent / "plan" / "data").resolve())
    assert cfg["output_dir"] == m["runs"]["cap+mini"]["output_dir"]
    assert cfg["media_dir"] == str(workspace.parent / "data")
    for key in ("eval_dataset", "eval_strategy", "tokenized_path", "loss"):
        assert key not in cfg
    assert cfg["learning_rate"] == 1e-4 and cfg["template"] == "default"
    assert read_yaml(m["runs"]["mini"]["yaml"])["dataset"] == "vqa__cotbal_mini,cap__cotbal_mini,box__cotbal_mini"
    # large fraction 1: the large-enough subset is the source file itself, not a copy
    assert m["subsets"]["vqa__cotbal_large"]["file"] == str((workspace.parent / "data" / "vqa_train.json").resolve())


def test_predict_yaml(workspace: Path) -> None:
    m = plan(workspace)
    job = next(j for j in m["jobs"] if j["name"] == "predict:vqa+mini:box_val")
    cfg = read_yaml(job["yaml"])
    assert cfg["do_predict"] is True and cfg["predict_with_generate"] is True
    assert cfg["eval_dataset"] == "box_val" and cfg["do_sample"] is False
    assert cfg["adapter_name_or_path"] == m["runs"]["vqa+mini"]["output_dir"]
    assert "dataset" not in cfg and "do_train" not in cfg
    # LLaMA-Factory writes into <dir>.partial; `cotbal run` renames it to <dir> once the job succeeded
    assert cfg["output_dir"] == job["write_dir"] == job["output_dir"] + ".partial"
    assert job["done"] == str(Path(job["output_dir"]) / "generated_predictions.jsonl")
    assert job["after"] == ["train:vqa+mini"]
    assert {"run": "vqa+mini", "task": "box", "dataset": "box_val", "file": job["done"]} in m["predictions"]


def test_loss_key_kept_only_when_in_base_and_full_finetuning(workspace: Path) -> None:
    base = read_yaml(workspace)
    base.update(loss="cotbal", finetuning_type="full")
    workspace.write_text(yaml.safe_dump(base))
    m = plan(workspace)
    assert read_yaml(m["runs"]["mini"]["yaml"])["loss"] == "cotbal"
    pred = read_yaml(next(j for j in m["jobs"] if j["kind"] == "predict")["yaml"])
    assert "loss" not in pred and "adapter_name_or_path" not in pred
    assert pred["model_name_or_path"] == m["runs"]["mini"]["output_dir"]


def test_deterministic_from_seed(workspace: Path) -> None:
    a = lines(plan(workspace, large_fraction=0.5)["subsets"]["cap__cotbal_mini"]["file"])
    b = lines(plan(workspace, large_fraction=0.5)["subsets"]["cap__cotbal_mini"]["file"])
    c = lines(plan(workspace, large_fraction=0.5, seed=1)["subsets"]["cap__cotbal_mini"]["file"])
    assert a == b and a != c


def test_subset_indices() -> None:
    large, mini = subset_indices(1000, 0.25, 1 / 32, 0, "x")
    assert len(large) == 250 and len(mini) == 31  # round(31.25)
    assert set(mini) <= set(large) and large == sorted(large)
    with pytest.raises(ProbeError, match=r"dataset 'x' has 10 samples.*0\.31 samples"):
        subset_indices(10, 1.0, 1 / 32, 0, "x")


def test_small_mini_subset_warns(workspace: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_plan(config(workspace))
    messages = [str(w.message) for w in caught if issubclass(w.category, ProbeWarning)]
    assert any("mini subset of task 'box' has 20 samples (< 1000" in m for m in messages)
    assert len(messages) == 3


def test_precise_variant(workspace: Path) -> None:
    m = plan(workspace, difficulty="precise")
    assert list(m["runs"]) == ["mini", "vqa+mini", "cap+mini", "box+mini", "vqa", "mini_vqa", "cap", "mini_cap",
                               "box", "mini_box"]  # fmt: skip
    assert read_yaml(m["runs"]["mini_cap"]["yaml"])["dataset"] == "cap__cotbal_mini"
    assert read_yaml(m["runs"]["cap"]["yaml"])["dataset"] == "cap__cotbal_large"
    assert {p["task"] for p in m["predictions"] if p["run"] in ("cap", "mini_cap")} == {"cap"}


def test_chat_variant(workspace: Path) -> None:
    m = plan(workspace, difficulty="chat")
    assert list(m["runs"]) == ["base", "vqa", "mini_vqa", "cap", "mini_cap", "box", "mini_box"]
    assert "train:base" not in [j["name"] for j in m["jobs"]]
    base_pred = read_yaml(next(j for j in m["jobs"] if j["name"] == "predict:base:cap_val")["yaml"])
    assert "adapter_name_or_path" not in base_pred and base_pred["model_name_or_path"] == "tiny-model"
    assert {p["task"] for p in m["predictions"] if p["run"] == "vqa"} == {"vqa", "cap", "box"}
    assert {p["task"] for p in m["predictions"] if p["run"] == "mini_vqa"} == {"vqa"}


def test_stl_configs(workspace: Path) -> None:
    m = plan(workspace, stl=True)
    cfg = read_yaml(m["runs"]["stl_cap"]["yaml"])
    assert cfg["dataset"] == "cap" and not [p for p in m["predictions"] if p["run"].startswith("stl_")]


def test_group_tasks_and_fixed_tasks(tmp_path: Path) -> None:
    base = make_workspace(tmp_path, sizes={"vqa": 64, "cap": 64, "sharegpt": 64}, groups=True)
    m = plan(
        base,
        tasks=["vqa", "cap", "grp"],
        fixed=["sharegpt"],
        validation={"vqa": ["vqa_val"], "cap": ["cap_val"], "grp": ["grp_val"]},
        metrics={"vqa": ["em"], "cap": ["em"], "grp": ["em"]},
    )
    assert m["tasks"]["grp"]["datasets"] == ["g1", "g2"]
    assert list(m["runs"]) == ["mini", "vqa+mini", "cap+mini", "grp+mini"]
    datasets = read_yaml(m["runs"]["grp+mini"]["yaml"])["dataset"].split(",")
    assert datasets == ["g1__cotbal_large", "g2__cotbal_large", "vqa__cotbal_mini", "cap__cotbal_mini",
                        "sharegpt__cotbal_mini"]  # fmt: skip
    info = json.loads((tmp_path / "plan" / "data" / "dataset_info.json").read_text())
    assert info["g2__cotbal_mini"]["cotbal_task"] == "grp"
    assert "sharegpt__cotbal_mini" in read_yaml(m["runs"]["mini"]["yaml"])["dataset"]


def test_tasks_default_to_base_yaml_and_metric_from_dataset_info(workspace: Path) -> None:
    info_path = workspace.parent / "data" / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["box_val"]["cotbal_metric"] = "iou_acc"
    info_path.write_text(json.dumps(info))
    m = plan(workspace, metrics={"vqa": ["em"], "cap": ["em"]})
    assert list(m["tasks"]) == ["vqa", "cap", "box"]
    assert m["tasks"]["box"]["metrics"] == ["iou_acc"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": {"vqa": ["em"], "cap": ["em"]}}, r"task 'box' has no metric; add --metric box="),
        ({"metrics": {**METRICS, "box": ["accuracy"]}}, r"task 'box': unknown metric 'accuracy'; valid metrics: em"),
        ({"validation": {**VAL, "box": ["nope_val"]}}, r"validation dataset 'nope_val' of task 'box' is not in"),
        ({"validation": {**VAL, "boxx": ["box_val"]}}, r"--val names task\(s\) \['boxx'\]"),
        ({"large_fraction": 0.0}, r"--large-fraction must be in \(0, 1\]"),
        ({"large_fraction": 1.5}, r"--large-fraction must be in \(0, 1\]"),
        ({"mini_fraction": -0.1}, r"--mini-fraction must be in \(0, 1\]"),
        ({"mini_fraction": float("nan")}, r"--mini-fraction must be in \(0, 1\]"),
        ({"large_fraction": 0.25, "mini_fraction": 0.5}, r"--mini-fraction \(0.5\) is larger than --large-fraction"),
        ({"mini_fraction": 1 / 350}, r"dataset 'box' has 160 samples.*0\.46 samples \(< 1\)"),
        ({"tasks": ["vqa", "nope"]}, r"task 'nope' is neither a dataset"),
        ({"tasks": ["vqa"]}, r"at least 2 tasks"),
        ({"difficulty": "exact"}, r"unknown difficulty variant 'exact'"),
        ({"tasks": ["vqa", "cap", "box"], "fixed": ["box"]}, r"both balanced and fixed"),
    ],
)
def test_plan_errors(workspace: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ProbeError, match=message):
        plan(workspace, **kwargs)


def test_validation_defaults_to_task_val_entry(workspace: Path) -> None:
    m = plan(workspace, validation={"vqa": ["vqa_val"], "cap": ["cap_val"]})
    assert m["tasks"]["box"]["validation"] == ["box_val"]
    info_path = workspace.parent / "data" / "dataset_info.json"
    info = json.loads(info_path.read_text())
    del info["box_val"]
    info_path.write_text(json.dumps(info))
    with pytest.raises(ProbeError, match=r"task 'box' has no validation dataset.*--val box="):
        plan(workspace, validation={"vqa": ["vqa_val"], "cap": ["cap_val"]})


def test_input_file_errors(workspace: Path) -> None:
    with pytest.raises(ProbeError, match="base YAML .* does not exist"):
        plan(workspace.parent / "none.yaml")
    info_path = workspace.parent / "data" / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["cap"] = {"hf_hub_url": "org/cap"}
    info_path.write_text(json.dumps(info))
    with pytest.raises(ProbeError, match="dataset 'cap' is not a local file"):
        plan(workspace)
    info["cap"] = {"file_name": "missing.json"}
    info_path.write_text(json.dumps(info))
    with pytest.raises(ProbeError, match=r"dataset 'cap': file .*missing\.json' does not exist"):
        plan(workspace)
    workspace.write_text(yaml.safe_dump({"model_name_or_path": "m", "stage": "dpo"}))
    with pytest.raises(ProbeError, match="stage 'dpo'"):
        plan(workspace)


def test_load_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match=r"does not exist; write it with `cotbal plan"):
        load_manifest(tmp_path / "m.json")
    (tmp_path / "m.json").write_text('{"version": 99}')
    with pytest.raises(ProbeError, match="not a cotbal manifest"):
        load_manifest(tmp_path / "m.json")


# ------------------------------------------------------------------------------ resumable trainings, predictions


def test_training_yaml_is_resumable(workspace: Path) -> None:
    base = read_yaml(workspace)
    base.update(overwrite_output_dir=True, save_strategy="epoch", save_only_model=True,
                resume_from_checkpoint="/old/checkpoint-5")  # fmt: skip
    workspace.write_text(yaml.safe_dump(base))
    m = plan(workspace)
    path = m["runs"]["mini"]["yaml"]
    cfg = read_yaml(path)
    assert "overwrite_output_dir" not in cfg and "resume_from_checkpoint" not in cfg
    assert cfg["save_strategy"] == "steps" and cfg["save_steps"] == 0.25
    assert cfg["save_only_model"] is False and cfg["save_total_limit"] == 1
    header = Path(path).read_text().split("\n" + "model_name_or_path")[0]
    assert "overwrite_output_dir dropped" in header and "resumable" in header
    cfg = read_yaml(plan(workspace, save=SaveSettings(200, keep=2))["runs"]["mini"]["yaml"])
    assert cfg["save_steps"] == 200 and isinstance(cfg["save_steps"], int) and cfg["save_total_limit"] == 2
    cfg = read_yaml(plan(workspace, save=SaveSettings(0))["runs"]["mini"]["yaml"])
    assert cfg["save_strategy"] == "no" and "save_steps" not in cfg
    for bad, message in ((SaveSettings(1.5), "--save-steps must be 0"), (SaveSettings(-1), "--save-steps must be 0"),
                         (SaveSettings(0.5, keep=0), "--keep-checkpoints must be")):  # fmt: skip
        with pytest.raises(ProbeError, match=message):
            plan(workspace, save=bad)


def test_predict_yaml_has_no_deepspeed_or_training_keys(workspace: Path) -> None:
    base = read_yaml(workspace)
    ds = Path(__file__).resolve().parents[2] / "examples" / "deepspeed" / "ds_z3_config.json"
    base.update(deepspeed=str(ds), report_to="wandb", optim="adamw_torch", use_badam=True, badam_mode="layer",
                finetuning_type="full", run_name="mine")  # fmt: skip
    workspace.write_text(yaml.safe_dump(base))
    m = plan(workspace, predict_batch_size=32)
    train = read_yaml(m["runs"]["mini"]["yaml"])
    assert train["deepspeed"] == str(ds) and train["use_badam"] is True and train["run_name"] == "cotbal-mini"
    job = next(j for j in m["jobs"] if j["kind"] == "predict")
    pred = read_yaml(job["yaml"])
    for key in ("deepspeed", "optim", "use_badam", "badam_mode", "run_name", "save_steps", "save_strategy"):
        assert key not in pred, key
    assert pred["report_to"] == "none" and pred["per_device_eval_batch_size"] == 32
    text = Path(job["yaml"]).read_text()
    assert "deepspeed dropped" in text and "training-only keys dropped: badam_mode, use_badam" in text
    assert m["jobs"][0]["deepspeed"] is True and not job.get("deepspeed")


def test_probes_of_a_cotbal_yaml_use_equal_weights(workspace: Path) -> None:
    base = read_yaml(workspace)
    base.update(loss="cotbal", cotbal_weights="weights.json", cotbal_dwa_window=3)
    workspace.write_text(yaml.safe_dump(base))
    m = plan(workspace)
    cfg = read_yaml(m["runs"]["mini"]["yaml"])
    assert cfg["loss"] == "cotbal" and cfg["cotbal_weighting"] == "ew"
    assert "cotbal_weights" not in cfg and "cotbal_dwa_window" not in cfg
    assert "equal task weights" in Path(m["runs"]["mini"]["yaml"]).read_text()


def test_vllm_backend_commands(workspace: Path) -> None:
    script = workspace.parent / "vllm_infer.py"
    script.write_text("# stand-in\n")
    base = read_yaml(workspace)
    base.update(lora_rank=64, max_new_tokens=16, image_max_pixels=262144)
    workspace.write_text(yaml.safe_dump(base))
    m = plan(workspace, infer_backend="vllm", vllm_script=script, vllm_config={"gpu_memory_utilization": 0.8},
             predict_batch_size=256)  # fmt: skip
    job = next(j for j in m["jobs"] if j["name"] == "predict:vqa+mini:box_val")
    argv = job["argv"]
    assert argv[:2] == ["python", str(script.resolve())]
    args = dict(a[2:].split("=", 1) for a in argv[2:])
    assert args["model_name_or_path"] == "tiny-model"
    assert args["adapter_name_or_path"] == m["runs"]["vqa+mini"]["output_dir"]
    assert args["dataset"] == "box_val" and args["dataset_dir"] == str((workspace.parent / "data").resolve())
    assert args["template"] == "default" and args["cutoff_len"] == "128" and args["max_new_tokens"] == "16"
    assert args["temperature"] == "0" and args["top_k"] == "-1" and args["batch_size"] == "256"
    assert json.loads(args["vllm_config"]) == {"gpu_memory_utilization": 0.8, "max_lora_rank": 64}
    assert args["save_name"] == str(Path(job["write_dir"]) / "generated_predictions.jsonl")
    assert job["backend"] == "vllm" and m["infer_backend"] == "vllm"
    script_text = (workspace.parent / "plan" / "run_all.sh").read_text()
    assert "--save_name=" + str(Path(job["write_dir"]) / "generated_predictions.jsonl") in script_text
    with pytest.raises(ProbeError, match=r"--infer-backend vllm needs --vllm-script .*vllm_infer\.py"):
        plan(workspace, infer_backend="vllm")
    with pytest.raises(ProbeError, match="--vllm-script / --vllm-config are for --infer-backend vllm"):
        plan(workspace, vllm_script=script)
    base.update(adapter_name_or_path="/some/adapter")
    workspace.write_text(yaml.safe_dump(base))
    with pytest.raises(ProbeError, match="vLLM loads one"):
        plan(workspace, infer_backend="vllm", vllm_script=script)


# ------------------------------------------------------------------------------------------------ cost


def test_cost_counts_samples_and_tokens_per_job(workspace: Path) -> None:
    base = read_yaml(workspace)
    base["num_train_epochs"] = 2.0
    workspace.write_text(yaml.safe_dump(base))
    m = plan(workspace, large_fraction=0.5, throughput=1000.0, predict_throughput=100.0)

    def tokens(record: dict) -> int:  # the documented rule: all texts joined by newlines, characters / 4 rounded up
        return math.ceil(len("\n".join(v for v in record.values() if isinstance(v, str))) / 4)

    for name, sub in m["subsets"].items():
        rows = lines(sub["file"]) if sub["kind"] == "mini" else lines(sub["file"])
        assert sub["tokens"] == sum(tokens(r) for r in rows) and sub["size"] == len(rows), name
    job = next(j for j in m["jobs"] if j["name"] == "train:cap+mini")
    parts = ["cap__cotbal_large", "vqa__cotbal_mini", "box__cotbal_mini"]
    assert job["samples"] == 96 + 32 + 20
    assert job["tokens"] == sum(m["subsets"][p]["tokens"] for p in parts)
    assert job["gpu_hours"] == pytest.approx(job["tokens"] * 2.0 / 1000.0 / 3600)
    pred = next(j for j in m["jobs"] if j["name"] == "predict:mini:box_val")
    val = lines(workspace.parent / "data" / "box_val.jsonl")
    assert pred["samples"] == 20 and pred["tokens"] == sum(tokens(r) for r in val)
    assert pred["gpu_hours"] == pytest.approx(pred["tokens"] / 100.0 / 3600)
    cost = m["cost"]
    assert cost["train"]["jobs"] == 4 and cost["predict"]["jobs"] == 12
    assert cost["gpu_hours"] == pytest.approx(sum(j["gpu_hours"] for j in m["jobs"]))
    assert cost["token_count"].startswith("characters / 4")
    # no throughput: counts but no hours
    m = plan(workspace)
    assert m["cost"]["gpu_hours"] is None and m["jobs"][0]["gpu_hours"] is None and m["jobs"][0]["tokens"] > 0
    with pytest.raises(ProbeError, match="--throughput must be a positive number"):
        plan(workspace, throughput=0.0)


def test_cost_with_images_and_the_model_tokenizer(tmp_path: Path, text_workspace: Path) -> None:
    from transformers import AutoTokenizer

    base_path = make_workspace(tmp_path, sizes={"vqa": 64, "cap": 64})
    data = tmp_path / "data"
    rows = [{"conversations": [{"from": "human", "value": f"<image>what is {k}?"}, {"from": "gpt", "value": "a cat"}],
             "images": ["img/a.png", "img/b.png"]} for k in range(64)]  # fmt: skip
    (data / "vqa_train.json").write_text(json.dumps(rows))
    info = json.loads((data / "dataset_info.json").read_text())
    info["vqa"].update(formatting="sharegpt", columns={"messages": "conversations", "images": "images"})
    (data / "dataset_info.json").write_text(json.dumps(info))
    base = read_yaml(base_path)
    base["model_name_or_path"] = str(text_workspace / "model")
    base_path.write_text(yaml.safe_dump(base))
    tok = AutoTokenizer.from_pretrained(str(text_workspace / "model"))
    m = plan(base_path, validation={"vqa": ["vqa_val"], "cap": ["cap_val"]}, metrics={"vqa": ["em"], "cap": ["em"]},
             count_tokens="tokenizer", image_tokens=10)  # fmt: skip
    mini = m["subsets"]["vqa__cotbal_mini"]
    questions = [r["conversations"][0]["value"].removeprefix("<image>") for r in lines(mini["file"])]
    expected = sum(len(tok(f"{q}\na cat", add_special_tokens=False)["input_ids"]) + 2 * 10 for q in questions)
    assert mini["tokens"] == expected and mini["images"] == 2 * mini["size"]
    with pytest.raises(ProbeError, match="--count-tokens tokenizer needs a local model_name_or_path"):
        plan(workspace_yaml(tmp_path / "other"), count_tokens="tokenizer")


def workspace_yaml(root: Path) -> Path:
    return make_workspace(root)


# ------------------------------------------------------------------------------------------------ bad input


def test_failed_plan_writes_nothing(workspace: Path) -> None:
    out = workspace.parent / "plan"
    # fails after the first subsets were written (box is too small for this mini fraction)
    with pytest.raises(ProbeError, match="dataset 'box' has 160 samples"):
        plan(workspace, mini_fraction=1 / 350)
    assert not out.exists()
    assert sorted(p.name for p in workspace.parent.iterdir()) == ["data", "train.yaml"]
    # an earlier plan stays as it was
    first = plan(workspace)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ProbeError):
        plan(workspace, mini_fraction=1 / 350)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert load_manifest(out) == first
    # a new nested --out: not even its parent folders are created
    with pytest.raises(ProbeError):
        make_plan(config(workspace, mini_fraction=1 / 350, out_dir=workspace.parent / "new" / "deeper" / "plan"))
    assert not (workspace.parent / "new").exists() and not list(workspace.parent.glob(".*.plan-*"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cotbal_task_key": "task"}, r"sets cotbal_task_key: 'task'.*split the data by that column"),
        ({"deepspeed": "configs/nope.json"}, r"deepspeed config 'configs/nope.json' not found from the working"),
    ],
)
def test_base_yaml_refusals(workspace: Path, change: dict, message: str) -> None:
    base = read_yaml(workspace)
    base.update(change)
    workspace.write_text(yaml.safe_dump(base))
    with pytest.raises(ProbeError, match=message):
        plan(workspace)
    assert not (workspace.parent / "plan").exists()


def test_out_is_a_file(workspace: Path) -> None:
    (workspace.parent / "plan").write_text("x")
    with pytest.raises(ProbeError, match="exists and is not a folder"):
        plan(workspace)


def test_replan_warns_about_finished_jobs_that_change(workspace: Path) -> None:
    m = plan(workspace)
    done = Path(m["jobs"][0]["done"])
    done.parent.mkdir(parents=True)
    done.write_text("{}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_plan(config(workspace, seed=1))
    messages = [str(w.message) for w in caught if "would now train or predict on" in str(w.message)]
    assert len(messages) == 1 and "train:mini" in messages[0]
    assert done.is_file()  # outputs are never deleted by plan


def test_cli_prints_jobs_and_cost(workspace: Path, capsys) -> None:
    from cotbal_plugin.cli import main

    out_dir = workspace.parent / "plan"
    args = ["plan", "--base-yaml", str(workspace), "--out", str(out_dir), "--val", "vqa=vqa_val", "--val",
            "cap=cap_val", "--val", "box=box_val", "--metric", "vqa=em", "--metric", "cap=em", "--metric", "box=em",
            "--mini-fraction", "1/8", "--no-progress", "--throughput", "500", "--save-steps", "100"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    m = load_manifest(out_dir)
    assert "jobs: 16 (4 trainings, 12 predictions)" in out
    for job in m["jobs"]:
        line = next(x for x in out.splitlines() if x.strip().startswith(job["name"] + " "))
        assert f"{job['samples']} samples" in line
        if job["kind"] == "train":
            assert f"{job['gpu_hours']:.1f} GPU-h" in line
        else:
            assert "GPU-h: pass --predict-throughput" in line
    assert read_yaml(m["runs"]["mini"]["yaml"])["save_steps"] == 100
    # bad options: one line, exit 2, nothing written
    assert main([*args[:3], "--out", str(workspace.parent / "p2"), *args[5:], "--vllm-config", "{nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cotbal plan: error: --vllm-config is not valid JSON") and err.count("\n") == 1
    assert not (workspace.parent / "p2").exists()
