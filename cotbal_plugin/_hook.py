"""Post-import hook (no LLaMA-Factory import here): patch LLaMA-Factory modules when Python imports them.

Kept tiny because the ``.pth`` file imports it in every Python process of the environment.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # not imported at run time: the .pth file runs this module in every Python process
    from typing import Any

_TARGETS = (
    "llamafactory.hparams.parser",
    "llamafactory.data.loader",
    "llamafactory.train.sft.workflow",
    "llamafactory.extras.ploting",  # per-task curves in plot_loss / LlamaBoard (llamafactory/plots.py)
    "llamafactory.train.callbacks",
)


def _apply(name: str, module: Any) -> None:
    from .llamafactory.patches import PATCHES

    PATCHES[name](module)


class _PatchingLoader:
    """Delegates to the real loader and patches the module right after it executed."""

    def __init__(self, wrapped: Any, name: str) -> None:
        self._wrapped = wrapped
        self._name = name

    def create_module(self, spec: Any) -> Any:
        return self._wrapped.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._wrapped.exec_module(module)
        _apply(self._name, module)

    def __getattr__(self, item: str) -> Any:
        return getattr(self._wrapped, item)


class _Finder:
    """Wraps the real loader of the target modules; every other import is untouched."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in _TARGETS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader, fullname)
                return spec
        return None


_FINDER = _Finder()


def install() -> None:
    """Activate the plugin in this process (idempotent).

    Call it before training when LLaMA-Factory is driven from Python and the ``.pth`` file is not in use;
    modules already imported are patched at once.
    """
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    for name in _TARGETS:
        module = sys.modules.get(name)
        if module is not None:
            _apply(name, module)


DISABLE_ENV = "COTBAL_PLUGIN_DISABLE"
DISABLE_VALUES = ("1", "true", "yes", "on")  # the same tuple is spelled out in cotbal_plugin.pth


def disabled(environ: Any = None) -> bool:
    """Whether ``COTBAL_PLUGIN_DISABLE`` switches the start-up hook off.

    One rule, shared with the ``.pth`` line: off when the value, stripped and lower-cased, is one of
    ``1 / true / yes / on``; anything else — unset, empty, ``0``, ``false``, ``no``, ``off`` — leaves it on.
    """
    value = (os.environ if environ is None else environ).get(DISABLE_ENV, "")
    return value.strip().lower() in DISABLE_VALUES


def autoload() -> None:
    """Entry point of the ``.pth`` file: install the hook unless :func:`disabled`."""
    if disabled():
        return
    install()
