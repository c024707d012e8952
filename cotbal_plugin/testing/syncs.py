"""Detect host-device synchronisations on a CPU-only machine (for tests).

On an accelerator, some operations make the host wait for the device: reading a value (``.item()``, ``bool(t)``,
``.tolist()``), copying to the host (``.cpu()``, ``.numpy()``), and every operation whose *output shape* depends on
the data (``nonzero``, boolean-mask indexing ``x[mask]`` and ``x[mask] = v``, ``masked_select``, ``bincount``,
``unique``, ``repeat_interleave`` without ``output_size``). On a CPU they cost nothing and
``torch.cuda.set_sync_debug_mode`` is unavailable, so a sync can slip into a per-micro-batch path unnoticed.

:class:`HostSyncDetector` records them anyway, at two levels:

- a ``TorchDispatchMode`` sees every aten operation (forward *and* backward, custom ``autograd.Function``
  included) and flags the syncing ones above, whatever device the tensors live on;
- a ``TorchFunctionMode`` sees the Python-level calls that are no-ops on CPU tensors and so never reach aten
  (``.cpu()``, ``.numpy()``, ``.tolist()``, ``.to("cpu")`` with a literal ``"cpu"``) — on an accelerator they are
  device-to-host copies. ``.to(some_tensor.device)`` is device-generic and is not flagged: on a CPU-only machine
  it cannot be told apart from a host copy.

Usage::

    with HostSyncDetector() as syncs:
        loss = f(x); loss.backward()
    assert not syncs.events, syncs.events

``HostSyncDetector(raise_on_sync=True)`` raises at the first one instead, with the operation's name.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

_aten = torch.ops.aten

# aten ops that read a device value on the host or whose output shape depends on the data
SYNCING_OPS = {
    _aten._local_scalar_dense,  # .item(), .tolist(), bool(t), int(t), float(t)
    _aten.is_nonzero,
    _aten.equal,
    _aten.allclose,
    _aten.nonzero,
    _aten.argwhere,
    _aten.masked_select,
    _aten.bincount,
    _aten.unique_dim,
    _aten.unique_consecutive,
    _aten.unique_dim_consecutive,
    _aten._unique,
    _aten._unique2,
}
_MASK_INDEXED = {_aten.index, _aten.index_put, _aten.index_put_, _aten._index_put_impl_}
_COPIES = {_aten._to_copy, _aten.copy_, _aten.to}


def _device_of(value: Any) -> torch.device | None:
    return value.device if isinstance(value, torch.Tensor) else None


def _crosses_host(src: torch.device | None, dst: torch.device | None) -> bool:
    if src is None or dst is None or src == dst:
        return False
    return (src.type == "cpu") != (dst.type == "cpu") and "meta" not in (src.type, dst.type)


class _DispatchSpy(TorchDispatchMode):
    def __init__(self, owner: HostSyncDetector) -> None:
        super().__init__()
        self.owner = owner

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        packet = func.overloadpacket
        if packet in SYNCING_OPS:
            self.owner._record(str(func))
        elif packet is _aten.repeat_interleave and "output_size" not in kwargs and isinstance(args[0], torch.Tensor):
            if len(args) < 2 or isinstance(args[1], torch.Tensor) or args[0].dtype in (torch.int32, torch.int64):
                self.owner._record(str(func))
        elif packet in _MASK_INDEXED and len(args) > 1:
            indices = args[1] or []
            if any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices):
                self.owner._record(f"{func} with a boolean mask")
        elif packet in _COPIES:
            src = _device_of(args[1]) if packet is _aten.copy_ else _device_of(args[0])
            dst = _device_of(args[0]) if packet is _aten.copy_ else kwargs.get("device")
            if _crosses_host(src, torch.device(dst) if isinstance(dst, str | torch.device) else dst):
                self.owner._record(f"{func} {src} -> {dst}")
        return func(*args, **kwargs)


class _FunctionSpy(TorchFunctionMode):
    _HOST_CALLS = {torch.Tensor.cpu: ".cpu()", torch.Tensor.numpy: ".numpy()", torch.Tensor.tolist: ".tolist()"}

    def __init__(self, owner: HostSyncDetector) -> None:
        super().__init__()
        self.owner = owner

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in self._HOST_CALLS:
            self.owner._record(self._HOST_CALLS[func])
        elif func is torch.Tensor.to:
            # only a literal "cpu" string: ``.to(other.device)`` is device-generic code and cannot be told apart
            # from a host copy when everything already lives on the CPU
            target = kwargs.get("device", next((a for a in args[1:] if isinstance(a, str)), None))
            if isinstance(target, str) and torch.device(target).type == "cpu":
                self.owner._record(".to('cpu')")
        return func(*args, **kwargs)


class HostSyncDetector:
    """Context manager that records (or raises on) operations that synchronise host and device on an accelerator.

    ``events`` lists the offending operations in the order met; ``raise_on_sync=True`` raises ``RuntimeError``
    at the first one.
    """

    def __init__(self, raise_on_sync: bool = False) -> None:
        self.raise_on_sync = raise_on_sync
        self.events: list[str] = []
        self._modes: list[Any] = []

    def _record(self, what: str) -> None:
        self.events.append(what)
        if self.raise_on_sync:
            raise RuntimeError(f"host-device synchronisation: {what}")

    def __enter__(self) -> HostSyncDetector:
        self._modes = [_FunctionSpy(self), _DispatchSpy(self)]
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)
        self._modes = []
