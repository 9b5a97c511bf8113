"""Plain ``torch.nn`` building blocks: multilayer perceptrons and DeepSets pooling.

Nothing here calls ``pyro.sample``; models and guides compose these blocks and turn them into
``PyroModule`` s.
"""
from __future__ import annotations

from typing import Callable, Sequence, Union

import torch
from torch import nn


Hidden = Union[int, Sequence[int]]
Activation = Callable[[], nn.Module]


class MLP(nn.Sequential):
    """A multilayer perceptron ``in_dim -> hidden... -> out_dim`` with an activation between layers.

    :param in_dim: input features.
    :param hidden: widths of the hidden layers (may be empty: a single affine map; an int is one
        hidden layer).
    :param out_dim: output features.
    :param activation: zero-argument callable making the activation placed after every hidden
        layer (a module class such as ``nn.ReLU``, or ``partial(nn.LeakyReLU, 0.2)``).
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Hidden,
        out_dim: int,
        activation: Activation = nn.ReLU,
    ) -> None:
        layers: list[nn.Module] = []
        widths = [in_dim, *([hidden] if isinstance(hidden, int) else hidden)]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), activation()]
        layers.append(nn.Linear(widths[-1], out_dim))
        super().__init__(*layers)
        self.in_dim = in_dim
        self.out_dim = out_dim


def masked_pool(h: torch.Tensor, mask: torch.Tensor, pooling: str = "sum") -> torch.Tensor:
    """Pool features ``h`` ``[G, K, F]`` over valid slots of ``mask`` ``[G, K]``.

    Padded slots contribute exactly zero. ``pooling`` is ``"sum"`` or ``"mean"``.
    """
    m = mask.unsqueeze(-1).to(h.dtype)
    total = (h * m).sum(-2)
    if pooling == "sum":
        return total
    if pooling == "mean":
        return total / m.sum(-2).clamp(min=1.0)
    raise ValueError(f"pooling must be 'sum' or 'mean', got {pooling!r}")


class DeepSets(nn.Module):
    r"""Permutation-invariant set function (Zaheer et al. 2017).

    .. math:: f(\{x_1, \dots, x_K\}) = \rho\Big(\operatorname{pool}_{k} \phi(x_k)\Big)

    :param phi: per-element network applied to ``[..., F_in]``.
    :param rho: network applied to the pooled features.
    :param pooling: ``"sum"`` (Zaheer et al., CxVAE) or ``"mean"``.
    """

    def __init__(self, phi: nn.Module, rho: nn.Module, pooling: str = "sum") -> None:
        super().__init__()
        self.phi = phi
        self.rho = rho
        self.pooling = pooling

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` ``[G, K, F_in]``, ``mask`` ``[G, K]`` -> ``[G, F_out]``."""
        return self.rho(masked_pool(self.phi(x), mask, self.pooling))


class ParallelMLP(nn.Module):
    """``copies`` independent MLPs ``in_dim -> hidden... -> out_dim`` evaluated in one batched pass.

    Every copy has its own weights (stored as ``[copies, in, out]`` tensors and applied with one
    ``einsum`` per layer, no Python loop over copies), initialised like ``nn.Linear``. All copies
    read the same input.

    :param in_dim: input features.
    :param hidden: widths of the hidden layers (may be empty: one affine map per copy).
    :param out_dim: output features of each copy.
    :param copies: number of independent networks.
    :param activation: activation module class placed after every hidden layer.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        copies: int,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        if copies < 1:
            raise ValueError(f"copies must be >= 1, got {copies}")
        widths = [in_dim, *hidden, out_dim]
        self.num_layers = len(widths) - 1
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            bound = a**-0.5
            weight = torch.empty(copies, a, b).uniform_(-bound, bound)
            setattr(self, f"weight{i}", nn.Parameter(weight))
            setattr(self, f"bias{i}", nn.Parameter(torch.empty(copies, b).uniform_(-bound, bound)))
        self.activation = activation()
        self.in_dim, self.out_dim, self.copies = in_dim, out_dim, copies

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[..., in_dim]`` -> ``[..., copies, out_dim]``."""
        for i in range(self.num_layers):
            w: torch.Tensor = getattr(self, f"weight{i}")
            b: torch.Tensor = getattr(self, f"bias{i}")
            if i == 0:
                h = torch.einsum("...i,cio->...co", x, w) + b
            else:
                h = torch.einsum("...ci,cio->...co", self.activation(h), w) + b
        return h
