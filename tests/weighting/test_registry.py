"""Registry, factory and input validation."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from cotbal_plugin.weighting import WEIGHTINGS, TaskWeighting, build_weighting

TASKS = ["vqa", "caption", "ocr"]


def test_registry_names_and_classes():
    assert set(WEIGHTINGS) == {"static", "ew", "tla", "rlw", "dwa", "igb"}
    for name, cls in WEIGHTINGS.items():
        assert issubclass(cls, TaskWeighting)
        assert cls.name == name == name.lower()
    assert WEIGHTINGS["static"].needs_static_weights
    assert not any(cls.needs_static_weights for n, cls in WEIGHTINGS.items() if n != "static")


def test_build_weighting_returns_registered_class_and_is_case_insensitive():
    assert type(build_weighting("ew", TASKS)) is WEIGHTINGS["ew"]
    assert type(build_weighting("DWA", TASKS)) is WEIGHTINGS["dwa"]


def test_unknown_method_lists_valid_names():
    with pytest.raises(ValueError, match="unknown task weighting 'gradnorm'") as err:
        build_weighting("gradnorm", TASKS)
    for name in ("static", "ew", "tla", "rlw", "dwa", "igb"):
        assert name in str(err.value)


def test_defaults_and_none_means_default():
    dwa = build_weighting("dwa", TASKS, temperature=None, window=None)
    assert dwa.hparams == {"temperature": 2.0, "window": 25}
    igb = build_weighting("igb", TASKS, window=None)
    assert igb.hparams == {"window": 100}
    # a caller may pass every optional key it knows; None values of keys a method lacks are ignored
    assert build_weighting("ew", TASKS, temperature=None, window=None).hparams == {}
    assert build_weighting("dwa", TASKS, temperature=0.5, window=3).hparams == {"temperature": 0.5, "window": 3}


@pytest.mark.parametrize("name", ["ew", "tla", "rlw", "igb"])
def test_unknown_hparam_with_value_is_an_error(name):
    with pytest.raises(ValueError, match=r"unknown hyper-parameter\(s\) \['temperature'\]"):
        build_weighting(name, TASKS, temperature=2.0)


def test_unknown_hparam_for_dwa():
    with pytest.raises(ValueError, match="'temprature'.*valid for 'dwa': \\['temperature', 'window'\\]"):
        build_weighting("dwa", TASKS, temprature=2.0)


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "3", math.nan, math.inf])
@pytest.mark.parametrize(("name", "yaml_key"), [("dwa", "cotbal_dwa_window"), ("igb", "cotbal_igb_window")])
def test_bad_window(name, yaml_key, value):
    with pytest.raises(ValueError, match=f"'window' \\(YAML key '{yaml_key}'\\) must be an integer >= 1"):
        build_weighting(name, TASKS, window=value)


def test_integral_float_window_is_accepted():
    assert build_weighting("dwa", TASKS, window=4.0).hparams["window"] == 4


@pytest.mark.parametrize("value", [0, 0.0, -1.0, math.nan, math.inf, "2", False])
def test_bad_temperature(value):
    with pytest.raises(ValueError, match="'temperature' \\(YAML key 'cotbal_dwa_temperature'\\) must be a finite"):
        build_weighting("dwa", TASKS, temperature=value)


def test_static_requires_weights():
    with pytest.raises(ValueError, match="cotbal_weights"):
        build_weighting("static", TASKS)


def test_static_missing_task_names_missing_and_known():
    with pytest.raises(
        ValueError, match=r"no weight for task\(s\) \['ocr'\]; weights are given for \['caption', 'qa', 'vqa'\]"
    ):
        build_weighting("static", TASKS, static_weights={"vqa": 1.0, "caption": 2.0, "qa": 1.0})


@pytest.mark.parametrize("bad", [-0.5, math.nan, math.inf, 0.0, True, "1.0", None])
def test_static_bad_weight_names_task(bad):
    weights = {"vqa": 1.0, "caption": bad, "ocr": 2.0}
    with pytest.raises(ValueError, match="bad weight\\(s\\): \\{'caption'"):
        build_weighting("static", TASKS, static_weights=weights)


def test_static_all_zero_names_tasks():
    with pytest.raises(ValueError, match="'vqa'.*'caption'.*'ocr'"):
        build_weighting("static", TASKS, static_weights=dict.fromkeys(TASKS, 0.0))


@pytest.mark.parametrize("tasks", [[], ["a", "a"], ["a", ""], ["a", 3]])
def test_bad_task_lists(tasks):
    with pytest.raises(ValueError):
        build_weighting("ew", tasks)


def test_tasks_must_be_a_list():
    with pytest.raises(TypeError):
        build_weighting("ew", "vqa")


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        build_weighting("rlw", TASKS, seed=seed)


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_bad_arrays(name):
    w = build_weighting(name, TASKS, static_weights=dict.fromkeys(TASKS, 1.0))
    with pytest.raises(ValueError, match="shape"):
        w.step_weights(np.ones(2))
    with pytest.raises(ValueError, match=">= 0"):
        w.step_weights(np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        w.step_weights(np.array([1.0, math.nan, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        w.observe(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match=">= 0"):
        w.observe(np.array([1.0, -2.0, 1.0]), np.ones(3))


def test_import_pulls_in_neither_torch_nor_llamafactory():
    code = (
        "import sys, cotbal_plugin.weighting as w; w.build_weighting('dwa', ['a']);"
        "print(any(m.split('.')[0] in ('torch', 'llamafactory', 'transformers') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
