"""``CustomSeq2SeqTrainer`` of LLaMA-Factory with the exact VITW loss of :mod:`cotbal_plugin.core.trainer`.

Everything about the loss, the per-task logging and the checkpointed weighting lives in the core mixin; this module
only adds what is LLaMA-Factory-specific: the settings come from the parsed YAML (``state.CotbalRun``) and the
LLaMA-Factory options the loss cannot serve are refused.
"""

from __future__ import annotations

from typing import Any

from llamafactory.train.sft.trainer import CustomSeq2SeqTrainer

from ..core.trainer import CotbalTrainerMixin
from ..weights_file import CotbalConfigError
from . import state


class CotbalSeq2SeqTrainer(CotbalTrainerMixin, CustomSeq2SeqTrainer):
    """LLaMA-Factory's SFT trainer with the VITW loss of CoTBal."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        run = state.require_active()
        if getattr(self.finetuning_args, "use_asft_loss", False):
            raise CotbalConfigError("loss: cotbal cannot be combined with use_asft_loss.")
        self._cotbal_setup(run.settings())
