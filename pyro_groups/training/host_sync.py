"""Find the places where a training step would wait for a GPU, on any device (a CPU too).

A GPU runs asynchronously; the host waits for it whenever it reads a value (``.item()``,
``bool(t)``, ``float(t)``, ``int(t)``, ``.tolist()``, ``.numpy()``, a copy to the CPU) or when an
operation's output size depends on the data (``nonzero``, boolean-mask indexing,
``masked_select``, ``unique``). :class:`HostSyncCounter` records every such call made inside its
block (a ``TorchFunctionMode``), with the caller's file and line, so that a test can assert that a
step has none, and a profile can say where they are. It needs no GPU: on a CPU run every tensor
stands for a device tensor, so a read of a host-side helper tensor counts too (keep such
bookkeeping in numpy or Python); copies to the host are only seen on a GPU. Reads inside
``torch.optim`` are not counted: a non-fused optimiser keeps its step counters on the host.
"""
from __future__ import annotations

import traceback
from collections import Counter
from typing import Any, Optional

import torch
from torch.overrides import TorchFunctionMode

__all__ = ["HostSyncCounter"]

_READS = {"item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy"}
_DATA_SIZED = {"nonzero", "argwhere", "masked_select", "unique", "unique_consecutive"}


def _name(func: Any) -> str:
    return getattr(func, "__name__", "") or str(func)


def _bool_index(args: tuple) -> bool:
    index = args[1] if len(args) > 1 else None
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in parts)


def _to_host(name: str, args: tuple, kwargs: dict) -> bool:
    """A copy of a device tensor to the host (never seen on a CPU-only run)."""
    source = args[0] if args else None
    if not isinstance(source, torch.Tensor) or source.device.type == "cpu":
        return False
    if name == "cpu":
        return True
    targets = [*args[1:], kwargs.get("device")]
    return any(str(t).startswith("cpu") for t in targets if isinstance(t, (str, torch.device)))


class HostSyncCounter(TorchFunctionMode):
    """``with HostSyncCounter() as syncs: step()`` then ``syncs.count`` (0 for a sync-free
    step) and ``syncs.where`` (a ``Counter`` of ``"op at file:line"``).

    :param skip: path fragments of callers to ignore (e.g. a test's own reads).
    """

    def __init__(self, skip: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.where: Counter[str] = Counter()
        self.skip = skip

    @property
    def count(self) -> int:
        return sum(self.where.values())

    def _record(self, op: str) -> None:
        frames = [f for f in traceback.extract_stack() if not f.filename.endswith("host_sync.py")]
        if frames and "torch/optim/" in frames[-1].filename:
            return  # an optimiser reads its host-side step counters (never a device read)
        for frame in reversed(frames):
            if "torch/" in frame.filename:
                continue
            if any(s in frame.filename for s in self.skip):
                return
            self.where[f"{op} at {frame.filename}:{frame.lineno}"] += 1
            return

    def __torch_function__(
        self, func: Any, types: Any, args: tuple = (), kwargs: Optional[dict] = None
    ) -> Any:
        kwargs = kwargs or {}
        name = _name(func)
        if (
            name in _READS or name in _DATA_SIZED
            or (name == "__getitem__" and _bool_index(args))
            or (name in ("to", "cpu") and _to_host(name, args, kwargs))
        ):
            self._record(name)
        return func(*args, **kwargs)
