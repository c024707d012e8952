"""``examples/stage1/``: assemble a LLaVA from a language model and a CLIP tower, then train the projector alone.

On tiny stand-ins (a 2-layer Llama, a 1-layer CLIP at 28 px): the assembled model keeps both pretrained parts bit
for bit and runs on an image; ``llamafactory-cli train`` with the shipped stage-1 YAML (model, data and size
keys pointed at the stand-ins, DeepSpeed and bf16 off on this CPU) changes the projector and nothing else.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from cotbal_plugin.testing.tiny import build_tiny_llama
from cotbal_plugin.testing.workspace import load_params, run_train

ROOT = Path(__file__).resolve().parents[1]
STAGE1 = ROOT / "examples" / "stage1"


def _builder():
    spec = importlib.util.spec_from_file_location("build_llava_from_parts", STAGE1 / "build_llava_from_parts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def stage0(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    root = tmp_path_factory.mktemp("stage1")
    captions = [f"a photo of a {c} square" for c in ("red", "green", "blue", "yellow")]
    lm = build_tiny_llama(root / "lm", captions + ["Render a clear and concise summary of the photo."])
    torch.manual_seed(0)
    clip = CLIPVisionModel(CLIPVisionConfig(image_size=28, patch_size=14, hidden_size=32, intermediate_size=64,
                                            num_hidden_layers=2, num_attention_heads=4))  # fmt: skip
    clip.save_pretrained(root / "clip")
    CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}).save_pretrained(
        root / "clip"
    )
    out = _builder().build(str(lm), str(root / "clip"), root / "stage0", dtype="float32", seed=0)
    return {"root": root, "lm": lm, "clip": root / "clip", "stage0": out}


def test_assembled_model_keeps_both_parts(stage0: dict[str, Path]) -> None:
    import torch
    from transformers import AutoProcessor, LlamaForCausalLM, LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(stage0["stage0"])
    lm = LlamaForCausalLM.from_pretrained(stage0["lm"])
    clip = load_params(stage0["clip"])
    llava = model.state_dict()
    for name, value in lm.model.state_dict().items():
        if name == "embed_tokens.weight":  # resized: the old rows are unchanged
            assert torch.equal(llava[f"model.language_model.{name}"][: value.shape[0]], value)
        else:
            assert torch.equal(llava[f"model.language_model.{name}"], value), name
    assert llava["model.language_model.embed_tokens.weight"].shape[0] % 64 == 0
    for name, value in clip.items():
        assert torch.equal(llava[f"model.vision_tower.{name}"], value), name
    assert model.config.vision_feature_layer == -2 and model.config.projector_hidden_act == "gelu"
    processor = AutoProcessor.from_pretrained(stage0["stage0"])
    inputs = processor(text="<image>What is it?", images=Image.new("RGB", (28, 28), (200, 10, 10)),
                       return_tensors="pt")  # fmt: skip
    assert int((inputs["input_ids"] == model.config.image_token_index).sum()) == 4  # (28 / 14)^2, CLS dropped
    with torch.no_grad():
        logits = model(**inputs).logits
    assert torch.isfinite(logits).all()


def test_released_projector_is_loaded(stage0: dict[str, Path], tmp_path: Path) -> None:
    import torch
    from transformers import LlavaForConditionalGeneration

    torch.manual_seed(1)
    hidden = 32  # both tiny parts
    shapes = {"weight": (hidden, hidden), "bias": (hidden,)}
    released = {f"model.mm_projector.{i}.{k}": torch.randn(*shape) for i in (0, 2) for k, shape in shapes.items()}
    torch.save(released, tmp_path / "mm_projector.bin")
    out = _builder().build(str(stage0["lm"]), str(stage0["clip"]), tmp_path / "llava", dtype="float32",
                           projector=tmp_path / "mm_projector.bin")  # fmt: skip
    state = LlavaForConditionalGeneration.from_pretrained(out).state_dict()
    assert torch.equal(state["model.multi_modal_projector.linear_1.weight"], released["model.mm_projector.0.weight"])
    assert torch.equal(state["model.multi_modal_projector.linear_2.bias"], released["model.mm_projector.2.bias"])
    torch.save({"model.mm_projector.1.weight": torch.zeros(1)}, tmp_path / "bad.bin")
    with pytest.raises(ValueError, match="unexpected key 'model.mm_projector.1.weight'"):
        _builder().load_projector(tmp_path / "bad.bin")


@pytest.mark.integration
def test_stage1_yaml_trains_the_projector_only(stage0: dict[str, Path]) -> None:
    root = stage0["root"]
    data = root / "data"
    (data / "images").mkdir(parents=True)
    rows = []
    for k, color in enumerate(("red", "green", "blue", "yellow")):
        Image.new("RGB", (28, 28), color).save(data / "images" / f"{k}.png")
        rows.append({"id": str(k), "image": f"images/{k}.png", "conversations": [
            {"from": "human", "value": "Render a clear and concise summary of the photo.\n<image>"},
            {"from": "gpt", "value": f"a photo of a {color} square"}]})  # fmt: skip
    (data / "blip_laion_cc_sbu_558k.json").write_text(json.dumps(rows))
    (data / "dataset_info.json").write_text((STAGE1 / "dataset_info.json").read_text())
    cfg = yaml.safe_load((STAGE1 / "llava1_5_7b_pretrain.yaml").read_text())
    assert (cfg["freeze_language_model"], cfg["freeze_vision_tower"], cfg["freeze_multi_modal_projector"]) == (
        True, True, False)  # fmt: skip
    cfg.pop("deepspeed")
    cfg.update(model_name_or_path=str(stage0["stage0"]), dataset_dir=str(data), output_dir=str(root / "stage1"),
               bf16=False, per_device_train_batch_size=2, max_steps=2, cutoff_len=512, preprocessing_num_workers=None,
               dataloader_num_workers=0, save_strategy="no", plot_loss=False, use_cpu=True)  # fmt: skip
    cfg = {k: v for k, v in cfg.items() if v is not None}
    (root / "stage1.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_train(root / "stage1.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    before, after = load_params(stage0["stage0"]), load_params(root / "stage1")
    changed = {name for name in before if not (before[name] == after[name]).all()}
    assert changed and all(name.startswith("model.multi_modal_projector.") for name in changed), sorted(changed)[:5]
    assert len(changed) == len([n for n in before if n.startswith("model.multi_modal_projector.")])
