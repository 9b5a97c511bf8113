"""Pyro's JIT ELBOs (``JitTrace_ELBO`` and kin) compile with ``torch.jit.trace``, which warns
(a ``DeprecationWarning`` that it is deprecated, and ``TracerWarning`` s about Python values baked
into the trace). The library chose the JIT for the user: those warnings are ours to handle, so
they are filtered wherever the library runs a JIT ELBO, and nowhere else."""
from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator

import torch
from pyro.infer import JitTrace_ELBO, JitTraceEnum_ELBO, JitTraceGraph_ELBO, JitTraceMeanField_ELBO

__all__ = ["JIT_ELBOS", "quiet_jit", "uses_jit"]

JIT_ELBOS = (JitTrace_ELBO, JitTraceEnum_ELBO, JitTraceGraph_ELBO, JitTraceMeanField_ELBO)


def uses_jit(loss: Any) -> bool:
    """Whether ``loss`` is a JIT ELBO, or wraps one as its ``base`` (``PenalizedLoss``)."""
    return isinstance(loss, JIT_ELBOS) or isinstance(getattr(loss, "base", None), JIT_ELBOS)


@contextlib.contextmanager
def quiet_jit(enabled: bool = True) -> Iterator[None]:
    """Inside the block, ``torch.jit.trace``'s deprecation warning and tracer warnings are
    ignored (a no-op when ``enabled`` is false: changing the warning filters resets Python's
    once-per-location registry, so it is done only where a JIT ELBO runs)."""
    if not enabled:
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.trace.*",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield
