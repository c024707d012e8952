"""The plugin's YAML keys, parsed by LLaMA-Factory's own ``HfArgumentParser`` as extra fine-tuning arguments."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields

from llamafactory.hparams.finetuning_args import FinetuningArguments

from ..core.config import (  # noqa: F401  (WEIGHTING_NAMES: re-exported)
    WEIGHTING_NAMES,
    resolve_chunk_tokens,
    resolve_hparams,
    resolve_tla_variant,
    resolve_weighting,
)
from ..weights_file import CotbalConfigError
from . import state
from .versions import check_versions

_OTHER_LOSSES = ("use_dft_loss", "use_asft_loss", "use_eaft_loss")
# fine-tuning options whose workflow bypasses LLaMA-Factory's SFT trainer (the one the plugin replaces)
_BYPASSING_WORKFLOWS = {
    "use_mca": "Megatron-Core (mcore_adapter) trains with its own trainer",
    "use_hyper_parallel": "hyper_parallel trains with its own trainer",
}


@dataclass
class CotbalFinetuningArguments(FinetuningArguments):
    """LLaMA-Factory's ``FinetuningArguments`` plus the keys of cotbal_plugin (all inert unless ``loss: cotbal``)."""

    loss: str | None = field(
        default=None,
        metadata={"help": "Set to `cotbal` to train with the VITW loss of CoTBal (cotbal_plugin)."},
    )
    cotbal_weights: str | None = field(
        default=None,
        metadata={"help": 'Path to weights.json: {"weights": {"<task>": <float>, ...}} (cotbal_plugin).'},
    )
    cotbal_weighting: str | None = field(
        default=None,
        metadata={"help": "Task weighting: static (default with cotbal_weights), ew, tla, rlw, dwa or igb."},
    )
    cotbal_task_key: str | None = field(
        default=None,
        metadata={"help": "Per-sample column naming the task (default: the dataset name or its cotbal_task)."},
    )
    cotbal_dwa_temperature: float | None = field(default=None, metadata={"help": "DWA temperature T (default 2.0)."})
    cotbal_dwa_window: int | None = field(
        default=None, metadata={"help": "DWA window in optimizer steps (see docs/weighting.md for the default)."}
    )
    cotbal_igb_window: int | None = field(
        default=None, metadata={"help": "IGBv1 base-loss window in optimizer steps (see docs/weighting.md)."}
    )
    cotbal_tla_variant: str | None = field(
        default=None,
        metadata={
            "help": "TLA over the whole optimizer step (`step`, default) or per micro-batch as in the authors' code "
            "(`micro_batch`)."
        },
    )
    cotbal_fused_ce: bool | None = field(
        default=None,
        metadata={
            "help": "Compute the loss from the last hidden states and the output layer in chunks, without full "
            "logits (default true; falls back with a warning where a model cannot)."
        },
    )
    cotbal_ce_chunk_tokens: int | None = field(
        default=None, metadata={"help": "Tokens per chunk of the fused cross-entropy (default: automatic)."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss is None:
            state.deactivate()
            set_keys = [
                f.name for f in fields(self) if f.name.startswith("cotbal_") and getattr(self, f.name) is not None
            ]
            if set_keys:
                raise CotbalConfigError(
                    f"{', '.join(set_keys)} given without `loss: cotbal`; add `loss: cotbal` to the YAML to train "
                    "with the VITW loss, or remove these keys."
                )
            return
        if self.loss != "cotbal":
            raise CotbalConfigError(f"loss: {self.loss!r} is not supported; the only value is `loss: cotbal`.")
        state.activate(self.build_run())

    def build_run(self) -> state.CotbalRun:
        """Validate the plugin keys and return the run configuration (raises CotbalConfigError)."""
        check_versions()
        if self.stage != "sft":
            raise CotbalConfigError(f"loss: cotbal works with `stage: sft` only (got stage: {self.stage}).")
        for other in _OTHER_LOSSES:
            if getattr(self, other, False):
                raise CotbalConfigError(
                    f"loss: cotbal cannot be combined with `{other}: true`: both replace the token loss. Remove one."
                )
        for option, why in _BYPASSING_WORKFLOWS.items():
            if getattr(self, option, False):
                raise CotbalConfigError(
                    f"loss: cotbal cannot be combined with `{option}: true`: {why}, which would train on "
                    "task-encoded labels without the VITW loss. Remove one of them."
                )
        weighting, weights, _ = resolve_weighting(self.cotbal_weighting, self.cotbal_weights)
        hparams = resolve_hparams(weighting, {key: getattr(self, key) for key in _HPARAM_FIELDS})
        tla_variant = resolve_tla_variant(weighting, self.cotbal_tla_variant)
        if self.cotbal_task_key is not None and not self.cotbal_task_key.strip():
            raise CotbalConfigError("cotbal_task_key is empty; give the name of the column that holds the task.")
        return state.CotbalRun(
            weighting=weighting,
            weights=weights,
            weights_path=self.cotbal_weights,
            task_key=self.cotbal_task_key,
            hparams=hparams,
            tla_variant=tla_variant,
            fused_ce=True if self.cotbal_fused_ce is None else bool(self.cotbal_fused_ce),
            ce_chunk_tokens=resolve_chunk_tokens(self.cotbal_ce_chunk_tokens),
        )


_HPARAM_FIELDS = ("cotbal_dwa_temperature", "cotbal_dwa_window", "cotbal_igb_window")


def plugin_keys() -> list[str]:
    """Names of the YAML keys the plugin adds."""
    base = {f.name for f in fields(FinetuningArguments)}
    return [f.name for f in fields(CotbalFinetuningArguments) if f.name not in base]


def check_unknown_cotbal_keys(args: dict) -> None:
    """Reject misspelt ``cotbal_*`` keys with a suggestion (LLaMA-Factory's own message lists every stray key)."""
    known = plugin_keys()
    for key in args:
        if isinstance(key, str) and key.startswith("cotbal") and key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            raise CotbalConfigError(
                f"unknown key {key!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; cotbal_plugin keys: {', '.join(known)}."
            )
