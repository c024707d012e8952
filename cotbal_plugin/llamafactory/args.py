"""The plugin's YAML keys, parsed by LLaMA-Factory's own ``HfArgumentParser`` as extra fine-tuning arguments."""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, fields

from llamafactory.hparams.finetuning_args import FinetuningArguments

from ..weights_file import CotbalConfigError, load_weights
from . import state
from .versions import check_versions

WEIGHTING_NAMES = ("static", "ew", "tla", "rlw", "dwa", "igb")
_NEEDS_WEIGHTS = {"static"}
_HPARAM_KEYS = {
    "cotbal_dwa_temperature": ("dwa", "temperature"),
    "cotbal_dwa_window": ("dwa", "window"),
    "cotbal_igb_window": ("igb", "window"),
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
        for other in ("use_dft_loss", "use_asft_loss", "use_eaft_loss"):
            if getattr(self, other, False):
                raise CotbalConfigError(
                    f"loss: cotbal cannot be combined with `{other}: true`: both replace the token loss. Remove one."
                )
        weighting = self.cotbal_weighting
        if weighting is None:
            if self.cotbal_weights is None:
                raise CotbalConfigError(
                    "loss: cotbal needs `cotbal_weights: path/to/weights.json` (from `cotbal weights`), or a "
                    f"weighting that needs none: `cotbal_weighting: {' | '.join(WEIGHTING_NAMES[1:])}`."
                )
            weighting = "static"
        weighting = weighting.strip().lower()
        if weighting not in WEIGHTING_NAMES:
            hint = difflib.get_close_matches(weighting, WEIGHTING_NAMES, n=1)
            raise CotbalConfigError(
                f"cotbal_weighting: unknown method {self.cotbal_weighting!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; valid methods: {', '.join(WEIGHTING_NAMES)}."
            )
        weights = None
        if weighting in _NEEDS_WEIGHTS:
            if self.cotbal_weights is None:
                raise CotbalConfigError(
                    f"cotbal_weighting: {weighting} needs `cotbal_weights: path/to/weights.json` "
                    "(from `cotbal weights`)."
                )
            weights = load_weights(self.cotbal_weights)
        elif self.cotbal_weights is not None:
            raise CotbalConfigError(
                f"cotbal_weights is set but cotbal_weighting: {weighting} ignores static weights; remove one of them."
            )
        hparams = {}
        for key, (method, name) in _HPARAM_KEYS.items():
            value = getattr(self, key)
            if value is None:
                continue
            if method != weighting:
                raise CotbalConfigError(f"{key} only applies to cotbal_weighting: {method} (got {weighting}).")
            if isinstance(value, float) and not math.isfinite(value) or value <= 0:
                raise CotbalConfigError(f"{key} must be > 0 (got {value}).")
            hparams[name] = value
        if self.cotbal_task_key is not None and not self.cotbal_task_key.strip():
            raise CotbalConfigError("cotbal_task_key is empty; give the name of the column that holds the task.")
        return state.CotbalRun(
            weighting=weighting,
            weights=weights,
            weights_path=self.cotbal_weights,
            task_key=self.cotbal_task_key,
            hparams=hparams,
        )


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
