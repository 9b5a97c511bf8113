"""``torch.compile`` for the networks inside models, guides and penalties, with a clean fallback.

Pyro's trace machinery (effect handlers, plates, distributions) is dynamic Python that
``torch.compile`` would break into many small graphs, and a ``PyroModule`` 's parameter lookup
calls ``pyro.param`` on every access. So only the *networks* are compiled: the maximal
submodules that map tensors to tensors (:class:`~pyro_groups.nn.MLP`,
:class:`~pyro_groups.nn.DeepSets`, the convolutional encoder and decoder networks). Each is compiled
as a plain ``torch.nn`` twin that shares the original's parameter and buffer tensors, so the
optimiser, checkpoints (``state_dict`` keys are unchanged) and devices work as before; the
compiled twin becomes the module's ``forward``.

Where compiling is impossible (an unsupported Python, no C++ compiler for the CPU backend, an
operation the compiler rejects) the first call, which compiles the forward *and* the backward
graph, fails inside a ``try``: one :class:`CompileFallbackWarning` is emitted and that network runs
eagerly from then on. The parameters of a compiled network no longer pass through
``pyro.param`` statements, so use it with ``fit`` (which optimises the modules' parameters
directly), not in a ``pyro.infer.SVI`` loop that collects parameters from the trace; undo it with
:func:`uncompile_networks`.

The penalties' critics are not compiled by ``fit``: an adversarial penalty takes its critic's
gradient from the VAE step's graph (``retain_graph=True``), and a compiled backward graph frees its
saved buffers after one use ("donated buffers", on by default in ``torch._functorch.config``).
"""
from __future__ import annotations

import copy
import warnings
from typing import Any, Optional, Sequence

import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_groups.nn import MLP, DeepSets
from pyro_groups.nn_conv import ConvDecoderNet, ConvEncoder

__all__ = ["NETWORKS", "CompileFallbackWarning", "compile_networks", "uncompile_networks"]

NETWORKS: tuple[type[nn.Module], ...] = (MLP, DeepSets, ConvEncoder, ConvDecoderNet)


class CompileFallbackWarning(UserWarning):
    """``torch.compile`` could not compile a network; it runs eagerly."""


def _plain_twin(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose parameters and buffers *are* the original's tensors and whose
    submodules are plain ``torch.nn`` classes (no ``PyroModule`` attribute hooks)."""
    memo: dict[int, Any] = {id(t): t for t in (*module.parameters(), *module.buffers())}
    twin = copy.deepcopy(module, memo)
    for sub in twin.modules():
        cls = type(sub)
        if issubclass(cls, PyroModule):
            sub.__class__ = next(b for b in cls.__mro__
                                 if issubclass(b, nn.Module) and not issubclass(b, PyroModule))
        sub.__dict__.pop("forward", None)
    return twin


class _CompiledForward:
    """The ``forward`` of a compiled network; falls back to the eager forward on failure."""

    def __init__(self, module: nn.Module, options: dict[str, Any]) -> None:
        self.module = module
        self.name = type(module).__name__
        self.compiled: Optional[Any] = None
        self.checked = False
        try:
            self.compiled = torch.compile(_plain_twin(module), **options)
        except Exception as e:  # torch.compile refuses this platform (e.g. Python version)
            self._fall_back(e)

    def _eager(self, *args: Any, **kwargs: Any) -> Any:
        return type(self.module).forward(self.module, *args, **kwargs)

    def _fall_back(self, error: BaseException) -> None:
        self.compiled = None
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        reason = " ".join(lines[:2]) if lines else type(error).__name__
        warnings.warn(
            f"torch.compile could not compile {self.name} ({type(error).__name__}: {reason}); "
            "it runs eagerly", CompileFallbackWarning, stacklevel=2,
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is None:
            return self._eager(*args, **kwargs)
        if self.checked:
            return self.compiled(*args, **kwargs)
        try:
            if torch.is_grad_enabled():
                self._probe(args, kwargs)
            return self.compiled(*args, **kwargs)
        except Exception as e:
            self._fall_back(e)
            return self._eager(*args, **kwargs)

    def _probe(self, args: tuple, kwargs: dict[str, Any]) -> None:
        """Compile the forward and (lazily compiled) backward graphs on a copy of the inputs,
        computing parameter gradients without storing them in ``.grad``."""
        assert self.compiled is not None
        params = [p for p in self.module.parameters() if p.requires_grad]
        copies = [_detached(a) for a in args]
        out = self.compiled(*copies, **{k: _detached(v) for k, v in kwargs.items()})
        if params and isinstance(out, torch.Tensor) and out.requires_grad:
            torch.autograd.grad(out.sum(), params, allow_unused=True)
            self.checked = True

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        # A deep copy of the module gets an eager forward of its own, never this one (which
        # would run the original's parameters).
        new = memo.get(id(self.module))
        return _EagerForward(new) if new is not None else self


def _detached(a: Any) -> Any:
    """A tensor's detached copy with the same ``requires_grad`` (the same compiled graph)."""
    if isinstance(a, torch.Tensor):
        return a.detach().requires_grad_(a.requires_grad)
    return a


class _EagerForward:
    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return type(self.module).forward(self.module, *args, **kwargs)


def _networks(modules: Sequence[nn.Module]) -> list[nn.Module]:
    found: list[nn.Module] = []
    inside: set[int] = set()
    for root in modules:
        for m in root.modules():
            if id(m) in inside:
                continue
            if isinstance(m, NETWORKS):
                found.append(m)
                inside.update(id(s) for s in m.modules())
    return found


def compile_networks(
    *modules: nn.Module, dynamic: Optional[bool] = True, **options: Any
) -> list[str]:
    """Compile the networks inside ``modules`` in place (see the module docstring).

    :param dynamic: ``torch.compile`` 's ``dynamic`` (default ``True``: one graph for every batch
        size and group size, as ragged batches change both).
    :param options: more ``torch.compile`` arguments (``mode``, ``backend``, ...).
    :returns: the names of the networks compiled (already compiled ones are left alone).
    """
    names = []
    for m in _networks(modules):
        if isinstance(m.__dict__.get("forward"), _CompiledForward):
            continue
        compiled = _CompiledForward(m, {"dynamic": dynamic, **options})
        m.forward = compiled  # type: ignore[method-assign]
        names.append(type(m).__name__)
    return names


def uncompile_networks(*modules: nn.Module) -> None:
    """Undo :func:`compile_networks`: the networks run eagerly again."""
    for m in _networks(modules):
        if isinstance(m.__dict__.get("forward"), (_CompiledForward, _EagerForward)):
            del m.forward
