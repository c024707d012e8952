"""Where the plugin hooks into LLaMA-Factory: three modules, each patched right after it is imported.

- ``llamafactory.hparams.parser``: the fine-tuning argument class gains the plugin keys; misspelt ``cotbal_*``
  keys get a suggestion; the parsed data/training arguments are remembered for the data hook.
- ``llamafactory.data.loader``: the task-id data hook (:mod:`cotbal_plugin.llamafactory.data`).
- ``llamafactory.train.sft.workflow``: the trainer class becomes a factory returning the VITW trainer when the
  YAML says ``loss: cotbal`` and LLaMA-Factory's own trainer otherwise.

Every patch is inert unless ``loss: cotbal`` was parsed in this process.
"""

from __future__ import annotations

import functools
import os
from types import ModuleType
from typing import Any

from . import state

_MARK = "_cotbal_patched"


# What each patched module must provide; a LLaMA-Factory release that renamed one of these cannot be patched.
REQUIRED_NAMES = {
    "llamafactory.hparams.parser": (
        "FinetuningArguments", "_TRAIN_ARGS", "_parse_args", "read_args", "_parse_train_args",
    ),
    "llamafactory.data.loader": (
        "get_dataset_list", "align_dataset", "_get_dataset_processor", "load_from_disk", "get_dataset_module",
    ),
    "llamafactory.train.sft.workflow": ("CustomSeq2SeqTrainer",),
}  # fmt: skip
# Modules that lacked a required name, with the names: reported when `loss: cotbal` is parsed (never for stock runs).
INCOMPATIBLE: dict[str, list[str]] = {}


def _once(module: ModuleType) -> bool:
    if getattr(module, _MARK, False):
        return False
    setattr(module, _MARK, True)
    missing = [name for name in REQUIRED_NAMES.get(module.__name__, ()) if not hasattr(module, name)]
    if missing:
        INCOMPATIBLE[module.__name__] = missing
        return False  # leave an incompatible module untouched; stock runs are unaffected
    return True


def check_patched() -> None:
    """Raise a clear error when a LLaMA-Factory module could not be patched (called when loss: cotbal is parsed)."""
    if INCOMPATIBLE:
        from ..weights_file import CotbalConfigError

        detail = "; ".join(f"{mod} lacks {', '.join(names)}" for mod, names in sorted(INCOMPATIBLE.items()))
        raise CotbalConfigError(
            f"this LLaMA-Factory release is not supported by cotbal_plugin ({detail}). Install a tested release: "
            "pip install 'llamafactory>=0.9.5,<0.9.6'."
        )


def patch_parser(module: ModuleType) -> None:
    """Swap ``FinetuningArguments`` for the plugin's subclass in every argument list of the parser."""
    if not _once(module):
        return
    from .args import CotbalFinetuningArguments, check_unknown_cotbal_keys

    base = module.FinetuningArguments
    for name in ("_TRAIN_ARGS", "_INFER_ARGS", "_EVAL_ARGS", "_TRAIN_MCA_ARGS"):
        arg_list = getattr(module, name, None)
        if isinstance(arg_list, list):
            arg_list[:] = [CotbalFinetuningArguments if cls is base else cls for cls in arg_list]

    original_parse_args = module._parse_args

    @functools.wraps(original_parse_args)
    def _parse_args(parser: Any, args: Any = None, allow_extra_keys: bool = False) -> Any:
        resolved = module.read_args(args)
        if isinstance(resolved, dict):
            check_unknown_cotbal_keys(resolved)
        return original_parse_args(parser, resolved, allow_extra_keys=allow_extra_keys)

    module._parse_args = _parse_args

    original_parse_train = module._parse_train_args

    @functools.wraps(original_parse_train)
    def _parse_train_args(args: Any = None) -> Any:
        state.deactivate()
        parsed = original_parse_train(args)
        run = state.active()
        if run is not None:
            run.data_args, run.training_args = parsed[1], parsed[2]
            _check_run_args(run, parsed[0])
        return parsed

    module._parse_train_args = _parse_train_args


def _check_run_args(run: state.CotbalRun, model_args: Any) -> None:
    """Refuse, at start-up, the model / data / training options the VITW loss cannot serve (one line each)."""
    from ..weights_file import CotbalConfigError

    data_args, training_args = run.data_args, run.training_args
    if getattr(data_args, "streaming", False) and run.task_key is not None:
        raise CotbalConfigError("cotbal_task_key is not supported with `streaming: true`; turn streaming off.")
    if getattr(model_args, "use_unsloth", False):
        raise CotbalConfigError(
            "loss: cotbal cannot be combined with `use_unsloth: true`: unsloth replaces the model's forward and loss "
            "path the plugin relies on. Remove use_unsloth."
        )
    if getattr(model_args, "use_kt", False):
        raise CotbalConfigError(
            "loss: cotbal cannot be combined with `use_kt: true` (KTransformers trains with its own trainer). "
            "Remove use_kt."
        )
    template = str(getattr(data_args, "template", "") or "")
    if template.startswith("minicpm_v") or template.startswith("minicpm_o"):
        raise CotbalConfigError(
            f"loss: cotbal does not support `template: {template}`: MiniCPM-V's collator nests the labels inside "
            "its own inputs, out of the plugin's reach. Use another model family, or train without loss: cotbal."
        )
    from ..core.config import check_training_args

    check_training_args(training_args)
    if (
        getattr(model_args, "moe_aux_loss_coef", None)
        and not getattr(model_args, "disable_gradient_checkpointing", False)
        and getattr(model_args, "use_reentrant_gc", True)
    ):
        import warnings

        warnings.warn(
            "moe_aux_loss_coef has no effect on the gradients with LLaMA-Factory's default reentrant gradient "
            "checkpointing (the router logits are recorded inside the checkpoint's no-grad forward; stock training "
            "is affected the same way). Set `use_reentrant_gc: false` (or `disable_gradient_checkpointing: true`) "
            "for the router load-balancing loss to train.",
            stacklevel=2,
        )


def patch_loader(module: ModuleType) -> None:
    """Install the task-id data hook in ``llamafactory.data.loader``."""
    if not _once(module):
        return
    from . import data

    get_dataset_list = module.get_dataset_list

    @functools.wraps(get_dataset_list)
    def _get_dataset_list(dataset_names: Any, dataset_dir: Any) -> Any:
        return data.tag_dataset_list(dataset_names, dataset_dir, get_dataset_list(dataset_names, dataset_dir))

    module.get_dataset_list = _get_dataset_list

    align_dataset = module.align_dataset

    @functools.wraps(align_dataset)
    def _align_dataset(dataset: Any, dataset_attr: Any, *args: Any, **kwargs: Any) -> Any:
        aligned = align_dataset(dataset, dataset_attr, *args, **kwargs)
        return data.add_task_column(dataset, aligned, dataset_attr)

    module.align_dataset = _align_dataset

    get_processor = module._get_dataset_processor

    @functools.wraps(get_processor)
    def _get_dataset_processor(*args: Any, **kwargs: Any) -> Any:
        return data.tagging_processor(get_processor(*args, **kwargs))

    module._get_dataset_processor = _get_dataset_processor

    load_from_disk = module.load_from_disk

    @functools.wraps(load_from_disk)
    def _load_from_disk(path: Any, *args: Any, **kwargs: Any) -> Any:
        if state.active() is not None:
            data.read_tasks_sidecar(str(path))
        return load_from_disk(path, *args, **kwargs)

    module.load_from_disk = _load_from_disk

    get_dataset_module = module.get_dataset_module

    @functools.wraps(get_dataset_module)
    def _get_dataset_module(dataset: Any) -> Any:
        run = state.active()
        if run is not None and run.data_args is not None and run.data_args.tokenized_path is not None:
            path = run.data_args.tokenized_path
            if os.path.isdir(path) and run.training_args is not None and run.training_args.should_save:
                if not os.path.isfile(os.path.join(path, data.TASKS_SIDECAR)):
                    data.write_tasks_sidecar(path)
        if run is not None and run.weights is not None and run.tasks:
            from ..weights_file import check_weights_cover

            check_weights_cover(run.weights, run.tasks, run.weights_path or "cotbal_weights")
        return get_dataset_module(dataset)

    module.get_dataset_module = _get_dataset_module


def patch_workflow(module: ModuleType) -> None:
    """Make the SFT workflow build the VITW trainer when ``loss: cotbal`` is active."""
    if not _once(module):
        return
    stock_trainer = module.CustomSeq2SeqTrainer

    def trainer_factory(*args: Any, **kwargs: Any) -> Any:
        finetuning_args = kwargs.get("finetuning_args")
        if getattr(finetuning_args, "loss", None) == "cotbal":
            from .trainer import CotbalSeq2SeqTrainer

            return CotbalSeq2SeqTrainer(*args, **kwargs)
        return stock_trainer(*args, **kwargs)

    trainer_factory.stock_trainer = stock_trainer  # type: ignore[attr-defined]
    module.CustomSeq2SeqTrainer = trainer_factory


from . import plots  # noqa: E402 - per-task curves in LLaMA-Factory's plots; acts only on logs with per-task keys

PATCHES = {
    "llamafactory.hparams.parser": patch_parser,
    "llamafactory.data.loader": patch_loader,
    "llamafactory.train.sft.workflow": patch_workflow,
    "llamafactory.extras.ploting": plots.patch_ploting,
    "llamafactory.train.callbacks": plots.patch_callbacks,
}
