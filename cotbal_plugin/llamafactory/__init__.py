"""Everything that touches LLaMA-Factory internals lives in this sub-package.

:func:`install` is idempotent: it registers an import hook that patches three LLaMA-Factory modules right after
they are imported (see :mod:`.patches`), and patches any of them that is already imported. The ``.pth`` file the
package installs calls it at interpreter start, so ``llamafactory-cli`` and its torchrun / DeepSpeed children
are covered. Nothing changes unless a YAML says ``loss: cotbal``.
"""

from __future__ import annotations

from .._hook import install

__all__ = ["install"]
