"""In-process access to LLaMA-Factory's parser and data pipeline with the plugin installed."""

from __future__ import annotations

from typing import Any

import cotbal_plugin

cotbal_plugin.install()


def parse(config: dict[str, Any]) -> tuple:
    """``get_train_args`` on a config dict (the YAML path of llamafactory-cli, minus the file)."""
    from llamafactory.hparams import get_train_args

    return get_train_args(dict(config))


def load_data(config: dict[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    """Parse ``config``, run LLaMA-Factory's ``get_dataset``; return (dataset module, tokenizer module, template)."""
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.model import load_tokenizer

    model_args, data_args, training_args, _, _ = parse(config)
    tokenizer_module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    dataset_module = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer_module)
    return dataset_module, tokenizer_module, template
