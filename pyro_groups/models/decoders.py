r"""Decoders :math:`p(x_k \mid u, v_k)`: modules mapping codes to a distribution over one
observation.

A decoder takes ``u`` ``[..., G, 1, u_dim]`` and ``v`` ``[..., G, K, v_dim]`` and returns a
distribution with batch shape ``[..., G, K]`` and the observation's event shape. Models take
a decoder as an argument.
"""
from __future__ import annotations

from typing import Sequence

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn.functional import softplus

from pyro_groups.data.exam_scores import exam_scores_mean
from pyro_groups.nn import MLP
from pyro_groups.validation import check_choice, check_int, check_positive_float


class ExamScoresDecoder(nn.Module):
    r"""The known Exam-Scores process, with no learned parameters (as in the CxVAE paper).

    .. math:: p(x_k \mid u, v_k) = \mathcal{N}\big(2\mu + (\sigma^2 + 1) v_k,\; s^2\big),
        \quad u = (\mu, \sigma)

    :param noise: the likelihood's standard deviation ``s`` (0.1, the data's noise, by default).
    :raises ArgumentError: if ``noise`` is not a finite positive number (a zero scale would make
        every log-likelihood infinite).
    """

    u_dim = 2
    v_dim = 1
    event_shape = torch.Size([1])

    def __init__(self, noise: float = 0.1) -> None:
        super().__init__()
        self.noise = check_positive_float(noise, "noise")

    def mean(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return exam_scores_mean(u, v)

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> dist.TorchDistribution:
        loc = self.mean(u, v)
        return dist.Normal(loc, torch.full_like(loc, self.noise)).to_event(1)


class MLPDecoder(nn.Module):
    r"""A decoder for vector data: an MLP of the concatenated codes.

    .. math:: p(x_k \mid u, v_k) = \mathcal{N}\big(f_\theta([u, v_k]),\;
        \operatorname{diag} s_\theta^2\big)
        \quad\text{or}\quad \mathrm{Bernoulli}\big(\operatorname{sigmoid} f_\theta([u, v_k])\big)

    :param u_dim: group code size.
    :param v_dim: instance code size.
    :param x_dim: observation size (a vector).
    :param hidden: hidden layer widths.
    :param likelihood: ``"normal"`` (learned per-feature scale) or ``"bernoulli"``.
    """

    def __init__(
        self,
        u_dim: int,
        v_dim: int,
        x_dim: int,
        hidden: Sequence[int] = (64, 64),
        likelihood: str = "normal",
    ) -> None:
        super().__init__()
        check_choice(likelihood, "likelihood", ("normal", "bernoulli"))
        u_dim, v_dim = check_int(u_dim, "u_dim", min=0), check_int(v_dim, "v_dim", min=1)
        x_dim = check_int(x_dim, "x_dim", min=1)
        self.u_dim, self.v_dim, self.likelihood = u_dim, v_dim, likelihood
        self.event_shape = torch.Size([x_dim])
        self.net = MLP(u_dim + v_dim, hidden, x_dim)
        self.raw_scale = nn.Parameter(torch.zeros(x_dim))

    def _logits(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        u = u.expand(*v.shape[:-1], u.shape[-1])
        return self.net(torch.cat([u, v], -1))

    def mean(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = self._logits(u, v)
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> dist.TorchDistribution:
        out = self._logits(u, v)
        if self.likelihood == "bernoulli":
            return dist.Bernoulli(logits=out).to_event(1)
        scale = softplus(self.raw_scale) + 1e-4
        return dist.Normal(out, scale.expand_as(out)).to_event(1)
