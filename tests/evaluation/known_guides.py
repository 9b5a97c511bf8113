"""Hand-built guides with known answers for the evaluation tests (not a test module).

- :func:`inverse_guide`: deterministic codes computed from the data, the decoder's exact inverse:
  ``mu = mean(x) / 2``, ``sigma = std(x)``, ``v_k = (x_k - 2 mu) / (sigma^2 + 1)``.
- :func:`oracle_guide`: the ground truth ``u_true``, ``v_true`` of a data set, looked up by each
  group's first observation, with a tiny posterior scale.
- :func:`useless_guide`: ``N(0, scale^2)`` for every group and observation: the prior for
  ``scale=1``, a point mass at zero for a tiny scale.

All are :class:`~pyro_groups.guides.GroupGuide` s, so they also run as Pyro guides.
"""
from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn

from pyro_groups.data import GroupedData
from pyro_groups.guides import GroupGuide


class _Anchor(nn.Module):
    """One unused parameter, so that a parameter-free guide's ``parameters()`` is not empty."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))


class InverseGroupEncoder(_Anchor):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> dist.TorchDistribution:
        w = mask.unsqueeze(-1).to(x.dtype)
        n = w.sum(-2)
        mean = (x * w).sum(-2) / n
        std = (((x - mean.unsqueeze(-2)) ** 2 * w).sum(-2) / n).sqrt()
        loc = torch.cat([mean / 2, std], -1).unsqueeze(-2)  # [G, 1, 2]
        return dist.Normal(loc, torch.full_like(loc, self.scale)).to_event(1)


class InverseInstanceEncoder(_Anchor):
    u_dim = 2

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> dist.TorchDistribution:
        mu, sigma = u[..., :1], u[..., 1:2]
        loc = (x - 2 * mu) / (sigma**2 + 1)
        return dist.Normal(loc, torch.full_like(loc, self.scale)).to_event(1)


def inverse_guide(scale: float = 1e-4) -> GroupGuide:
    return GroupGuide(InverseGroupEncoder(scale), InverseInstanceEncoder(scale))


class _Lookup(_Anchor):
    def __init__(self, data: GroupedData, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.u_true, self.v_true = data.u_true, data.v_true
        self.row = {key: i for i, key in enumerate(data.x[:, 0, 0].tolist())}
        assert len(self.row) == len(data), "first observations must identify the groups"

    def index(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self.row[key] for key in x[:, 0, 0].tolist()], device=x.device)


class OracleGroupEncoder(_Lookup):
    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> dist.TorchDistribution:
        loc = self.u_true[self.index(x)].unsqueeze(-2).to(x)
        return dist.Normal(loc, torch.full_like(loc, self.scale)).to_event(1)


class OracleInstanceEncoder(_Lookup):
    def forward(self, x: torch.Tensor, u: torch.Tensor = None) -> dist.TorchDistribution:
        loc = self.v_true[self.index(x), : x.shape[1]].to(x)
        return dist.Normal(loc, torch.full_like(loc, self.scale)).to_event(1)


def oracle_guide(data: GroupedData, scale: float = 1e-4) -> GroupGuide:
    return GroupGuide(OracleGroupEncoder(data, scale), OracleInstanceEncoder(data, scale))


class ZeroGroupEncoder(_Anchor):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> dist.TorchDistribution:
        loc = x.new_zeros(x.shape[0], 1, 2)
        return dist.Normal(loc, torch.full_like(loc, self.scale)).to_event(1)


class ZeroInstanceEncoder(ZeroGroupEncoder):
    def forward(self, x: torch.Tensor, u: torch.Tensor = None) -> dist.TorchDistribution:
        loc = x.new_zeros(*x.shape[:2], 1)
        return dist.Normal(loc, torch.full_like(loc, self.scale)).to_event(1)


def useless_guide(scale: float = 1.0) -> GroupGuide:
    return GroupGuide(ZeroGroupEncoder(scale), ZeroInstanceEncoder(scale))
