r"""A leading batch of independent networks: ``R`` copies of one module tree with stacked weights.

:func:`stack_modules` takes ``R`` modules of the same structure (built, say, under ``R`` seeds)
and returns one module of that structure in which every ``nn.Linear`` is a
:class:`ReplicatedLinear` holding the copies' weights ``[R, out, in]`` and biases ``[R, out]``.
It maps ``[R, ..., in]`` to ``[R, ..., out]`` with one batched matrix product, slice ``r``
through copy ``r``'s weights,

.. math:: y_r = x_r W_r^\top + b_r, \qquad r = 1, \dots, R,

so the Python code around the layers (activations, pooling, aggregators, Pyro sites) runs once on
tensors with a leading replicate dimension, and replicate ``r``'s output depends on replicate
``r``'s input and weights only. On CPU the products are one matrix product per replicate in one
autograd node (measured faster than ``torch.baddbmm`` for these thin layers); on other devices
one ``torch.baddbmm``. :func:`unstack_into` copies replicate ``r`` back into a solo
module of the original structure (to evaluate it with the solo tools, or to keep training it
alone).

An elementwise optimiser (Adam, SGD, AdamW, ...) over the stacked parameters takes, slice by
slice, the step that ``R`` separate optimisers would take on the copies: every update of such an
optimiser is a function of one entry's own gradient history. :func:`stack_optimizer_states` and
:func:`optimizer_state_slice` convert the optimisers' states.
"""
from __future__ import annotations

import copy
from typing import Any, Optional, Sequence, cast

import torch
from pyro.nn import PyroModule
from torch import Tensor, nn

from pyro_groups._naming import unique_name
from pyro_groups.errors import ArgumentError

__all__ = [
    "ReplicatedLinear",
    "optimizer_state_slice",
    "stack_modules",
    "stack_optimizer_states",
    "unstack_into",
]

_CONFIG_TYPES = (bool, int, float, str, tuple, type(None))
_RELUS = (nn.ReLU, PyroModule[nn.ReLU])


class _PerReplicateAffine(torch.autograd.Function):
    """``y[r] = x[r] @ W[r].T + b[r]`` (then ``relu``, if fused) by one matrix product per
    replicate, written into slices of one output, and likewise the gradients, replicate by
    replicate. These are the kernels of ``R`` solo layers without their Python overhead; working
    replicate by replicate keeps each slice in the CPU's cache while the activation and its
    gradient are applied (a ReLU over all ``R`` slices at once is memory-bound and ran about 3x
    slower per element), and the thin layers of these networks (one input feature, two outputs)
    avoid ``torch.baddbmm``'s slow backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Optional[Tensor],
                relu: bool) -> Tensor:
        y = x.new_empty(x.shape[0], x.shape[1], weight.shape[1])
        for r in range(x.shape[0]):
            if bias is None:
                torch.mm(x[r], weight[r].t(), out=y[r])
            else:
                torch.addmm(bias[r], x[r], weight[r].t(), out=y[r])
            if relu:
                y[r].relu_()
        ctx.has_bias, ctx.relu = bias is not None, relu
        ctx.save_for_backward(x, weight, y if relu else None)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Optional[Tensor], ...]:
        x, weight, y = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x = torch.empty_like(x) if need_x else None
        grad_w = torch.empty_like(weight) if need_w else None
        grad_b = weight.new_empty(weight.shape[:2]) if need_b and ctx.has_bias else None
        for r in range(x.shape[0]):
            g = grad[r]
            if ctx.relu:
                g = torch.ops.aten.threshold_backward(g, y[r], 0)
            if grad_x is not None:
                torch.mm(g, weight[r], out=grad_x[r])
            if grad_w is not None:
                torch.mm(g.t(), x[r], out=grad_w[r])
            if grad_b is not None:
                torch.sum(g, 0, out=grad_b[r])
        return grad_x, grad_w, grad_b, None


class ReplicatedLinear(nn.Module):
    """``R`` independent affine maps applied to the ``R`` slices of a leading dimension.

    :param weight: ``[R, out_features, in_features]``.
    :param bias: ``[R, out_features]`` or ``None``.
    :param relu: apply a ReLU to the output (fused: :func:`stack_modules` folds an ``nn.ReLU``
        that follows the layer in an ``nn.Sequential`` into it).
    """

    def __init__(self, weight: Tensor, bias: Optional[Tensor] = None, relu: bool = False) -> None:
        super().__init__()
        self.relu = bool(relu)
        if weight.dim() != 3:
            raise ArgumentError(f"weight must be [R, out, in], got {tuple(weight.shape)}")
        if bias is not None and bias.shape != weight.shape[:2]:
            raise ArgumentError(
                f"bias must be [R, out] = {tuple(weight.shape[:2])}, got {tuple(bias.shape)}"
            )
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias) if bias is not None else None

    @classmethod
    def stack(cls, layers: Sequence[nn.Linear]) -> "ReplicatedLinear":
        """The layers' weights stacked (copied) along a new leading dimension."""
        with torch.no_grad():
            weight = torch.stack([layer.weight.detach() for layer in layers]).clone()
            has_bias = [layer.bias is not None for layer in layers]
            if any(has_bias) and not all(has_bias):
                raise ArgumentError("cannot stack nn.Linear layers with and without a bias")
            bias = (
                torch.stack([layer.bias.detach() for layer in layers]).clone()
                if all(has_bias) else None
            )
        return cls(weight, bias)

    @property
    def replicas(self) -> int:
        return self.weight.shape[0]

    def extra_repr(self) -> str:
        r, out, inp = self.weight.shape
        return (f"replicas={r}, in_features={inp}, out_features={out}, "
                f"bias={self.bias is not None}, relu={self.relu}")

    def forward(self, x: Tensor) -> Tensor:
        """``[R, ..., in]`` to ``[R, ..., out]``."""
        r, out, inp = self.weight.shape
        if x.dim() < 2 or x.shape[0] != r or x.shape[-1] != inp:
            raise ArgumentError(
                f"ReplicatedLinear with {r} replicas of {inp} -> {out} needs input [{r}, ..., "
                f"{inp}], got {tuple(x.shape)}"
            )
        flat = x.reshape(r, -1, inp)
        if flat.device.type == "cpu":
            y = _PerReplicateAffine.apply(flat, self.weight, self.bias, self.relu)
        else:
            y = torch.bmm(flat, self.weight.transpose(1, 2)) if self.bias is None else (
                torch.baddbmm(self.bias.unsqueeze(1), flat, self.weight.transpose(1, 2))
            )
            y = torch.relu(y) if self.relu else y
        return y.reshape(*x.shape[:-1], out)


def _config(module: nn.Module) -> dict[str, Any]:
    """A module's plain settings (``aggregator``, ``pooling``, sizes, ...) that must agree."""
    return {
        k: v for k, v in vars(module).items()
        if not k.startswith("_") and k != "training" and isinstance(v, _CONFIG_TYPES)
    }


def _signature(module: nn.Module) -> list[Any]:
    return [
        [(name, type(m), _config(m)) for name, m in module.named_modules()],
        [(name, tuple(p.shape), p.dtype, p.device) for name, p in module.named_parameters()],
        [(name, tuple(b.shape)) for name, b in module.named_buffers()],
    ]


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def _fuse_relu(module: nn.Module) -> None:
    """Fold every ``nn.ReLU`` that follows a :class:`ReplicatedLinear` in an ``nn.Sequential``
    into it (the ReLU's slot becomes an ``nn.Identity``; same function, same parameters)."""
    for seq in module.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            layer, act = seq[i], seq[i + 1]
            if isinstance(layer, ReplicatedLinear) and type(act) in _RELUS and not act.inplace:
                layer.relu = True
                seq[i + 1] = nn.Identity()


def stack_modules(modules: Sequence[nn.Module]) -> nn.Module:
    """One module running ``len(modules)`` copies at once on a leading replicate dimension.

    :param modules: ``R >= 1`` modules of identical structure: the same submodule types, settings
        and parameter shapes; their parameters must all live in ``nn.Linear`` layers.
    :returns: a deep copy of ``modules[0]`` whose ``nn.Linear`` layers are
        :class:`ReplicatedLinear` layers holding every module's weights; ``PyroModule`` s get a
        fresh name, so the copy never shares Pyro's parameter store with the originals.
    :raises ValueError: when the modules differ, or hold parameters or buffers outside
        ``nn.Linear`` layers (a learned scale, a convolution: their code would need to know
        about the replicate dimension).
    """
    if len(modules) == 0:
        raise ArgumentError("stack_modules needs at least one module")
    first = _signature(modules[0])
    for r, m in enumerate(modules[1:], start=1):
        if _signature(m) != first:
            raise ArgumentError(
                f"replicate {r} ({type(m).__name__}) differs from replicate 0 in its submodules, "
                "settings or parameter shapes; only modules of identical structure can be stacked"
            )
    linear = {name for name, m in modules[0].named_modules() if isinstance(m, nn.Linear)}
    others = [
        name for name, _ in modules[0].named_parameters()
        if name.rpartition(".")[0] not in linear
    ]
    buffers = [name for name, _ in modules[0].named_buffers()]
    if others or buffers:
        raise ArgumentError(
            f"{type(modules[0]).__name__} holds parameters or buffers outside nn.Linear layers "
            f"({(others + buffers)[:3]}); stack_modules replicates nn.Linear layers only"
        )
    out = copy.deepcopy(modules[0])
    for name in sorted(linear, key=len, reverse=True):
        replicated = ReplicatedLinear.stack([cast(nn.Linear, m.get_submodule(name))
                                             for m in modules])
        if name == "":
            return replicated
        _set_submodule(out, name, replicated)
    _fuse_relu(out)
    if isinstance(out, PyroModule):
        root = unique_name(f"{out._pyro_name}_replicated_")
        for name, sub in out.named_modules():
            if isinstance(sub, PyroModule):
                sub._pyro_name = f"{root}.{name}" if name else root
    return out


def unstack_into(stacked: nn.Module, r: int, solo: nn.Module) -> nn.Module:
    """Copy replicate ``r`` of ``stacked`` (from :func:`stack_modules`) into ``solo`` in place.

    :returns: ``solo``, whose parameters now equal slice ``r`` of the stacked ones.
    """
    params = dict(stacked.named_parameters())
    with torch.no_grad():
        for name, p in solo.named_parameters():
            if name not in params:
                raise ArgumentError(
                    f"{type(solo).__name__} has a parameter {name!r} that the stacked module lacks"
                )
            p.copy_(params[name][r])
    return solo


def stack_optimizer_states(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``state_dict`` of one optimiser over stacked parameters, from the ``state_dict`` s of
    ``R`` optimisers of the same kind over the copies (in the same parameter order).

    Per-entry tensors (Adam's moments) are stacked; scalars (the step count) must agree.
    """
    first = states[0]
    for s in states[1:]:
        if set(s["state"]) != set(first["state"]):
            raise ArgumentError("the replicates' optimisers have state for different parameters")
    stacked: dict[int, dict[str, Any]] = {}
    for i, entry in first["state"].items():
        stacked[i] = {}
        for key, value in entry.items():
            values = [s["state"][i][key] for s in states]
            if isinstance(value, Tensor) and value.dim() > 0:
                stacked[i][key] = torch.stack(values)
            elif any(not torch.equal(torch.as_tensor(v), torch.as_tensor(value)) for v in values):
                raise ArgumentError(
                    f"the replicates' optimisers disagree on {key!r} ({values}); they must have "
                    "taken the same number of steps"
                )
            else:
                stacked[i][key] = copy.deepcopy(value)
    return {"state": stacked, "param_groups": copy.deepcopy(first["param_groups"])}


def optimizer_state_slice(state: dict[str, Any], r: int) -> dict[str, Any]:
    """Replicate ``r``'s part of a stacked optimiser's ``state_dict`` (the inverse of
    :func:`stack_optimizer_states`)."""
    return {
        "state": {
            i: {
                k: (v[r].clone() if isinstance(v, Tensor) and v.dim() > 0 else copy.deepcopy(v))
                for k, v in entry.items()
            }
            for i, entry in state["state"].items()
        },
        "param_groups": copy.deepcopy(state["param_groups"]),
    }
