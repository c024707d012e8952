"""VITW is exact over the optimizer step: the same final parameters whatever the layout (real llamafactory-cli)."""

from __future__ import annotations

import json

import pytest

from cotbal_plugin.testing.workspace import load_params, max_abs_diff

from ._runs import train

pytestmark = pytest.mark.integration

MIX = {"dataset": "short,long", "mix_strategy": "interleave_under", "max_steps": 4}
COTBAL = {"loss": "cotbal"}
TOL = 1e-5  # float32 SGD, lr 0.5, 4 steps: observed ~1e-6


@pytest.fixture(scope="module")
def runs(text_workspace):
    ws = text_workspace
    weights = {"cotbal_weights": str(ws / "weights.json")}
    out = {
        "init": load_params(ws / "model"),
        "b4": train(ws, "b4", per_device_train_batch_size=4, **MIX, **COTBAL, **weights),
        "ga": train(ws, "ga", per_device_train_batch_size=2, gradient_accumulation_steps=2, **MIX, **COTBAL, **weights),
        "ddp": train(ws, "ddp", nproc=2, per_device_train_batch_size=2, **MIX, **COTBAL, **weights),
        "ds": train(ws, "ds", nproc=2, deepspeed="z2", per_device_train_batch_size=2, **MIX, **COTBAL, **weights),
        "stock": train(ws, "stock", per_device_train_batch_size=4, **MIX),
        "stock_ga": train(ws, "stock_ga", per_device_train_batch_size=2, gradient_accumulation_steps=2, **MIX),
    }
    equal = ws / "equal.json"
    equal.write_text(json.dumps({"weights": {"short": 1.0, "long": 1.0}}))
    out["equal"] = train(ws, "equal", per_device_train_batch_size=4, cotbal_weights=str(equal), **MIX, **COTBAL)
    out["ew_ga"] = train(
        ws, "ew_ga", per_device_train_batch_size=2, gradient_accumulation_steps=2, cotbal_weighting="ew", **MIX, **COTBAL
    )
    return out


def test_training_moves_parameters(runs):
    assert max_abs_diff(runs["b4"], runs["init"]) > 0.1


@pytest.mark.parametrize("layout", ["ga", "ddp", "ds"])
def test_same_parameters_across_layouts(runs, layout):
    assert max_abs_diff(runs[layout], runs["b4"]) < TOL


def test_weighted_loss_differs_from_stock(runs):
    assert max_abs_diff(runs["b4"], runs["stock"]) > 100 * TOL


def test_equal_weights_reproduce_stock(runs):
    assert max_abs_diff(runs["stock"], runs["stock_ga"]) < TOL  # stock text training is exact too
    assert max_abs_diff(runs["equal"], runs["stock"]) < TOL
    assert max_abs_diff(runs["ew_ga"], runs["stock"]) < TOL
