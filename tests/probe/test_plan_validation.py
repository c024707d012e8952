"""Every YAML `cotbal plan` writes passes LLaMA-Factory's full argument validation, launched as `cotbal run` does.

For each shipped example YAML used as a base, and for ZeRO-2 / ZeRO-3 / no-DeepSpeed × LoRA / full / freeze bases,
a plan is made (on tiny stand-in files named like the shipped ``dataset_info/`` entries) and every YAML goes
through ``llamafactory.hparams.get_train_args`` in a child process (``cotbal_plugin.llamafactory.check_yaml``):
trainings with the environment torchrun gives a rank (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``, ``FORCE_TORCHRUN`` …), and the predictions of two plans also as one plain process. The only change is
``bf16=false`` on this CPU-only machine (transformers refuses bf16 without a GPU), passed as a command-line
override exactly like ``llamafactory-cli train x.yaml bf16=false``. Negative controls show the check is real: the
predict YAML the old plan wrote (DeepSpeed ZeRO-3 kept) and a DeepSpeed training launched without torchrun are
refused with LLaMA-Factory's own messages.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import yaml

from cotbal_plugin.llamafactory.check_yaml import check_yamls
from cotbal_plugin.probe.errors import ProbeWarning
from cotbal_plugin.probe.plan import PlanConfig, make_plan
from cotbal_plugin.testing.workspace import cli_env

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
Z2, Z3 = EXAMPLES / "deepspeed" / "ds_z2_config.json", EXAMPLES / "deepspeed" / "ds_z3_config.json"
ACADEMIC = ["VQAv2", "GQA"]
LARGE = {"captioning": "M3IT-COCO_val", "vqa": "M3IT-GQA_val"}

pytestmark = pytest.mark.integration


def shipped_data(root: Path, n: int = 8) -> Path:
    """Tiny sharegpt files for every shipped dataset_info entry (same names); returns the dataset_info path."""
    info = json.loads((ROOT / "dataset_info" / "dataset_info.json").read_text())
    root.mkdir(parents=True, exist_ok=True)
    for entry in info.values():
        rows = [{"conversations": [{"from": "human", "value": f"<image>question {k}?"},
                                   {"from": "gpt", "value": f"answer {k}"}], "images": ["img.png"]}
                for k in range(n)]  # fmt: skip
        (root / entry["file_name"]).write_text(json.dumps(rows))
    (root / "dataset_info.json").write_text(json.dumps(info))
    return root / "dataset_info.json"


def synthetic_bases(root: Path) -> dict[str, Path]:
    """ZeRO-2 / ZeRO-3 / no DeepSpeed × full / LoRA / freeze variants of the probe base YAML."""
    probe = yaml.safe_load((EXAMPLES / "probe" / "llava1_5_7b_probe_base.yaml").read_text())
    lora = {"finetuning_type": "lora", "lora_rank": 128, "lora_alpha": 256, "lora_target": "all"}
    variants = {
        "full_z2": {"deepspeed": str(Z2)},
        "full_z3": {"deepspeed": str(Z3)},
        "full_nods": {"deepspeed": None},
        "lora_z2": {**lora, "deepspeed": str(Z2)},
        "lora_z3": {**lora, "deepspeed": str(Z3)},
        "lora_nods": {**lora, "deepspeed": None, "overwrite_output_dir": True},
        "freeze_z2": {"finetuning_type": "freeze", "freeze_trainable_layers": 2, "deepspeed": str(Z2)},
    }
    out = {}
    root.mkdir(parents=True, exist_ok=True)
    for name, change in variants.items():
        cfg = {**probe, **change}
        cfg = {k: v for k, v in cfg.items() if v is not None}
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        out[name] = path
    return out


def make(base: Path, out: Path, info: Path, **kw) -> dict:
    large = "large" in base.name
    cfg = PlanConfig(
        base_yaml=base,
        out_dir=out,
        dataset_info=info,
        tasks=list(LARGE) if large else ACADEMIC,
        fixed=[] if large else ["ShareGPT"],
        validation={t: [v] for t, v in LARGE.items()} if large else {},
        metrics={},
        mini_fraction=1 / 8,
        progress=False,
        **kw,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProbeWarning)
        return make_plan(cfg)


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Plan every base, then check every YAML in one child process; returns manifests and verdicts."""
    root = tmp_path_factory.mktemp("plans")
    info = shipped_data(root / "data")
    bases = {p.stem: p for p in sorted(EXAMPLES.rglob("*.yaml")) if "stage1" not in p.parts}
    bases.update(synthetic_bases(root / "bases"))
    manifests = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)  # the examples' deepspeed paths are relative to the repository root
        for name, base in bases.items():
            manifests[name] = make(base, root / "plan" / name, info)
        # the other difficulty variants write base-model predictions and single-task runs
        manifests["chat"] = make(bases["llava1_5_7b_probe_base"], root / "plan" / "chat", info, difficulty="chat")
        manifests["precise_stl"] = make(bases["lora_z3"], root / "plan" / "precise", info, difficulty="precise",
                                        stl=True)  # fmt: skip
    items = []
    for name, manifest in manifests.items():
        for job in manifest["jobs"]:
            # every YAML as torchrun launches it; predictions also as one plain process (cotbal run's default for a
            # prediction on one GPU) for a DeepSpeed and a plain base — the parser takes the same path for the rest
            both = job["kind"] == "predict" and name in ("full_z3", "lora_nods")
            items += [(job["yaml"], mode) for mode in (("torchrun", "single") if both else ("torchrun",))]
    # negative controls: what the old plan wrote, and DeepSpeed without torchrun
    old = yaml.safe_load(Path(manifests["full_z3"]["jobs"][1]["yaml"]).read_text())
    assert manifests["full_z3"]["jobs"][1]["kind"] == "predict"
    old["deepspeed"] = str(Z3)
    old_path = root / "old_predict_z3.yaml"
    old_path.write_text(yaml.safe_dump(old))
    typo_path = root / "typo.yaml"
    typo_path.write_text(Path(manifests["full_nods"]["jobs"][0]["yaml"]).read_text() + "learning_rat: 0.1\n")
    controls = [(str(old_path), "torchrun"), (manifests["full_z3"]["jobs"][0]["yaml"], "single"),
                (str(typo_path), "torchrun")]  # fmt: skip
    results = check_yamls(items + controls, env=cli_env())
    return {"manifests": manifests, "results": results[: len(items)], "controls": results[len(items) :]}


def test_every_written_yaml_passes_llamafactory_validation(verdicts: dict) -> None:
    manifests, results = verdicts["manifests"], verdicts["results"]
    assert {"llava1_5_7b_probe_base", "llava1_5_7b_cotbal", "llava1_5_7b_cotbal_large", "qwen2_vl_7b_cotbal",
            "llava1_5_7b_cotbal_lora", "llava1_5_7b_dwa", "full_z3", "lora_z2", "chat"} <= set(manifests)  # fmt: skip
    n_yamls = sum(len(m["jobs"]) for m in manifests.values())
    assert n_yamls >= 150 and len(results) == n_yamls + 12
    failed = [f"{r.path} [{r.mode}]: {r.error}" for r in results if not r.ok]
    assert not failed, "\n".join(failed[:10])
    # the only change made for this machine: bf16 off where the YAML asks for it
    assert {tuple(r.overrides) for r in results} <= {(), ("bf16=false",)}
    assert any(r.overrides == ["bf16=false"] for r in results)


def test_written_yamls_cover_the_cases(verdicts: dict) -> None:
    manifests = verdicts["manifests"]
    z3 = [yaml.safe_load(Path(j["yaml"]).read_text()) for j in manifests["full_z3"]["jobs"]]
    assert all(c.get("deepspeed") == str(Z3) for c in z3 if c.get("do_train"))
    assert not any("deepspeed" in c for c in z3 if c.get("do_predict"))
    lora_pred = yaml.safe_load(Path(next(j for j in manifests["lora_z3"]["jobs"] if j["kind"] == "predict")["yaml"])
                               .read_text())  # fmt: skip
    assert lora_pred["adapter_name_or_path"].endswith("/saves/mini")
    chat = manifests["chat"]
    assert any(j["run"] == "base" and j["kind"] == "predict" for j in chat["jobs"])
    probe = yaml.safe_load(Path(manifests["llava1_5_7b_cotbal"]["jobs"][0]["yaml"]).read_text())
    assert probe["loss"] == "cotbal" and probe["cotbal_weighting"] == "ew" and "cotbal_weights" not in probe


def test_the_check_is_real(verdicts: dict) -> None:
    old, no_torchrun, typo = verdicts["controls"]
    assert not old.ok and "`predict_with_generate` is incompatible with DeepSpeed ZeRO-3" in old.error
    assert not no_torchrun.ok and "FORCE_TORCHRUN=1" in no_torchrun.error
    assert not typo.ok and "learning_rat" in typo.error
