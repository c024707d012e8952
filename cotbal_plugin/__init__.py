"""cotbal_plugin: CoTBal task balancing (VITW loss, probe-based task weights) for LLaMA-Factory.

Public API (imported lazily, so ``import cotbal_plugin`` costs nothing):

- :func:`install` — activate the LLaMA-Factory integration in this process (the ``.pth`` file does it for you).
- :func:`cotbal_weights` — CoTBal weights from a contribution matrix and difficulties (paper eqs. 4–11).

Outside LLaMA-Factory: ``cotbal_plugin.hf.CotbalTrainer`` and ``cotbal_plugin.hf.make_cotbal_trainer`` (plain HF
``Trainer``, TRL ``SFTTrainer``, LLaVA's ``LLaVATrainer``; see ``docs/hf.md``).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "cotbal_weights", "install"]


def __getattr__(name: str) -> Any:
    if name == "install":
        from ._hook import install

        return install
    if name == "cotbal_weights":
        from .probe.weights import cotbal_weights

        return cotbal_weights
    raise AttributeError(f"module 'cotbal_plugin' has no attribute {name!r}")
