"""Plain ``torch.nn`` building blocks: multilayer perceptrons and DeepSets pooling.

Nothing here calls ``pyro.sample``; models and guides compose these blocks and turn them into
``PyroModule`` s.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class MLP(nn.Sequential):
    """A multilayer perceptron ``in_dim -> hidden... -> out_dim`` with an activation between layers.

    :param in_dim: input features.
    :param hidden: widths of the hidden layers (may be empty: a single affine map).
    :param out_dim: output features.
    :param activation: activation module class placed after every hidden layer.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        layers: list[nn.Module] = []
        widths = [in_dim, *hidden]
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
