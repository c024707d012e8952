"""LLaMA-Factory paths the VITW loss cannot serve are refused at start-up, with one line naming the option."""

from __future__ import annotations

import types

import pytest

from cotbal_plugin.testing.workspace import sft_config

from ._inproc import parse


def _cfg(ws, **kw):
    return sft_config(ws / "model", ws / "data", ws / "runs" / "refused", dataset="short,long", loss="cotbal", **kw)


@pytest.mark.parametrize(
    ("kw", "pattern"),
    [
        ({"label_smoothing_factor": 0.1}, r"label_smoothing_factor: 0\.1 is not supported.*remove label_smoothing"),
        ({"use_unsloth": True}, r"`use_unsloth: true`.*Remove use_unsloth"),
        ({"use_mca": True}, r"`use_mca: true`.*Megatron"),
        ({"use_hyper_parallel": True}, r"`use_hyper_parallel: true`"),
        ({"template": "minicpm_v"}, r"template: minicpm_v.*MiniCPM-V's collator"),
        ({"cotbal_weighting": "ew", "cotbal_tla_variant": "micro_batch"}, r"only applies to cotbal_weighting: tla"),
        ({"cotbal_weighting": "tla", "cotbal_tla_variant": "token"}, r"cotbal_tla_variant: 'token' is not one of"),
        ({"cotbal_weighting": "ew", "cotbal_ce_chunk_tokens": 0}, r"cotbal_ce_chunk_tokens must be an integer >= 1"),
    ],
)
def test_refused_with_the_option_named(text_workspace, kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        parse(_cfg(text_workspace, **({"cotbal_weighting": "ew"} | kw)))


def test_the_same_options_pass_without_the_plugin_keys(text_workspace):
    """The refusals are the plugin's: stock LLaMA-Factory accepts label smoothing on the same config."""
    cfg = sft_config(
        text_workspace / "model", text_workspace / "data", text_workspace / "runs" / "ok", dataset="short,long"
    )
    parse({**cfg, "label_smoothing_factor": 0.1})


def test_context_parallelism_refused():
    from cotbal_plugin.core.config import check_training_args
    from cotbal_plugin.weights_file import CotbalConfigError

    args = types.SimpleNamespace(label_smoothing_factor=0.0, parallelism_config=types.SimpleNamespace(cp_size=2))
    with pytest.raises(CotbalConfigError, match=r"parallelism_config with \{'cp_size': 2\}"):
        check_training_args(args)
    check_training_args(types.SimpleNamespace(label_smoothing_factor=0.0, parallelism_config=None))
