"""Every user mistake gets an error naming the culprit (parsed with LLaMA-Factory's own parser)."""

from __future__ import annotations

import json

import pytest

from cotbal_plugin.testing.workspace import sft_config

from ._inproc import load_data, parse


def _cfg(ws, **kw):
    return sft_config(ws / "model", ws / "data", ws / "runs" / "bad", dataset="short,long", **kw)


def _weights(tmp_path, text: str):
    p = tmp_path / "w.json"
    p.write_text(text)
    return str(p)


def test_cotbal_without_weights(text_workspace):
    with pytest.raises(ValueError, match="cotbal_weights"):
        parse(_cfg(text_workspace, loss="cotbal"))


def test_static_weighting_without_weights(text_workspace):
    with pytest.raises(ValueError, match="static needs `cotbal_weights"):
        parse(_cfg(text_workspace, loss="cotbal", cotbal_weighting="static"))


def test_missing_weights_file(text_workspace, tmp_path):
    with pytest.raises(ValueError, match=r"nope\.json.*does not exist"):
        parse(_cfg(text_workspace, loss="cotbal", cotbal_weights=str(tmp_path / "nope.json")))


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("{not json", "not valid JSON"),
        ('{"short": 1.0}', 'no "weights" object'),
        ('{"weights": {}}', "empty"),
        ('{"weights": {"short": -1.0, "long": 1}}', "'short'.*must be > 0"),
        ('{"weights": {"short": 0, "long": 0}}', "'short'.*must be > 0"),
        ('{"weights": {"short": NaN, "long": 1}}', "'short'.*nan"),
        ('{"weights": {"short": "high", "long": 1}}', "'short'.*not a number"),
        ('{"weights": {"short": true, "long": 1}}', "'short'.*not a number"),
    ],
)
def test_bad_weights_file(text_workspace, tmp_path, text, pattern):
    path = _weights(tmp_path, text)
    with pytest.raises(ValueError, match=pattern) as err:
        parse(_cfg(text_workspace, loss="cotbal", cotbal_weights=path))
    assert "w.json" in str(err.value)


def test_training_task_without_weight(text_workspace, tmp_path):
    path = _weights(tmp_path, json.dumps({"weights": {"short": 1.0, "other": 2.0}}))
    with pytest.raises(
        ValueError, match=r"no weight for task\(s\) \['long'\].*\['short', 'long'\].*\['other', 'short'\]"
    ):
        load_data(_cfg(text_workspace, loss="cotbal", cotbal_weights=path))


def test_weights_for_untrained_tasks_warn(text_workspace, tmp_path):
    path = _weights(tmp_path, json.dumps({"weights": {"short": 1.0, "long": 2.0, "extra": 3.0}}))
    with pytest.warns(UserWarning, match=r"not in training: \['extra'\]"):
        load_data(_cfg(text_workspace, loss="cotbal", cotbal_weights=path))


def test_task_key_column_absent(text_workspace):
    with pytest.raises(ValueError, match=r"column 'kind' is absent from dataset 'short'"):
        load_data(_cfg(text_workspace, loss="cotbal", cotbal_weighting="ew", cotbal_task_key="kind"))


def test_tokenized_cache_without_task_ids(text_workspace, tmp_path):
    cache = tmp_path / "tok"
    load_data(_cfg(text_workspace, tokenized_path=str(cache)))  # stock run writes the cache
    assert cache.is_dir()
    with pytest.raises(ValueError, match="written without task ids"):
        load_data(
            _cfg(
                text_workspace,
                loss="cotbal",
                cotbal_weights=str(text_workspace / "weights.json"),
                tokenized_path=str(cache),
            )
        )


def test_tokenized_cache_with_task_ids_round_trips(text_workspace, tmp_path):
    cache = tmp_path / "tok"
    cfg = _cfg(
        text_workspace, loss="cotbal", cotbal_weights=str(text_workspace / "weights.json"), tokenized_path=str(cache)
    )
    load_data(cfg)
    assert json.loads((cache / "cotbal_tasks.json").read_text()) == {"tasks": ["short", "long"], "eval_tasks": []}
    module, _, _ = load_data(cfg)
    assert len(module["train_dataset"]) == 16


def test_stage_other_than_sft(text_workspace):
    with pytest.raises(ValueError, match="stage: sft.*got stage: pt"):
        parse(_cfg(text_workspace, loss="cotbal", cotbal_weighting="ew", stage="pt"))


@pytest.mark.parametrize("other", ["use_dft_loss", "use_eaft_loss"])
def test_other_custom_losses(text_workspace, other):
    with pytest.raises(ValueError, match=other):
        parse(_cfg(text_workspace, loss="cotbal", cotbal_weighting="ew", **{other: True}))


def test_misspelt_cotbal_key(text_workspace):
    with pytest.raises(ValueError, match="unknown key 'cotbal_weight'.*did you mean 'cotbal_weights'"):
        parse(_cfg(text_workspace, loss="cotbal", cotbal_weight="w.json"))


def test_other_typos_still_rejected_by_llamafactory(text_workspace):
    with pytest.raises(ValueError, match="not used by the HfArgumentParser"):
        parse(_cfg(text_workspace, loss="cotbal", cotbal_weighting="ew", learning_rat=1.0))


def test_unknown_loss_and_orphan_keys(text_workspace):
    with pytest.raises(ValueError, match="only value is `loss: cotbal`"):
        parse(_cfg(text_workspace, loss="focal"))
    with pytest.raises(ValueError, match="without `loss: cotbal`"):
        parse(_cfg(text_workspace, cotbal_weights="w.json"))


@pytest.mark.parametrize(
    ("kw", "pattern"),
    [
        ({"cotbal_weighting": "dwaa"}, "unknown method 'dwaa'.*did you mean 'dwa'.*static, ew, tla, rlw, dwa, igb"),
        ({"cotbal_weighting": "dwa", "cotbal_dwa_window": 0}, "cotbal_dwa_window must be > 0"),
        ({"cotbal_weighting": "dwa", "cotbal_dwa_temperature": -1.0}, "cotbal_dwa_temperature must be > 0"),
        ({"cotbal_weighting": "igb", "cotbal_igb_window": -3}, "cotbal_igb_window must be > 0"),
        ({"cotbal_weighting": "ew", "cotbal_igb_window": 3}, "only applies to cotbal_weighting: igb"),
    ],
)
def test_bad_weighting_options(text_workspace, kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        parse(_cfg(text_workspace, loss="cotbal", **kw))
