r"""CxVAE on Exam-Scores written in plain PyTorch: the baseline of ``benchmarks/speed.py``.

The same model and guide as ``GroupVAE(ExamScoresDecoder()) + preset_guide("cxvae", 1, 2, 1)``,
without Pyro:

- group encoder (DeepSets): :math:`(\mu_u, r) = \rho\big(\sum_k \phi(x_k)\big)`,
  :math:`\sigma_u = \operatorname{softplus}(r) + 10^{-4}`, with MLPs (ReLU) :math:`\phi`:
  1 -> 64 -> 64 -> 64 and :math:`\rho`: 64 -> 64 -> 64 -> 4;
- instance encoder (conditional): :math:`q(v_k \mid x_k, u)`, the same way from an MLP of
  :math:`[x_k, u]`, 3 -> 64 -> 64 -> 2;
- decoder: :math:`x_k \sim \mathcal{N}(2\mu + (\sigma^2 + 1) v_k, 0.1^2)`,
  :math:`u = (\mu, \sigma)`;
- a reparameterised single-sample ELBO, padded slots masked out, every term scaled by
  :math:`N / G` (the data-set size over the batch's groups), as Pyro's subsampled ``"groups"``
  plate does.

Noise is drawn in Pyro's order (``u`` then ``v``) with ``torch.empty(shape).normal_()``, as
``torch.distributions.Normal.rsample`` does, so after the same seed both draw identical codes.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor, nn
from torch.nn.functional import softplus

MIN_SCALE = 1e-4
LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int) -> nn.Sequential:
    """Linear layers with ReLU between them (the layout of ``pyro_groups.nn.MLP``)."""
    layers: list[nn.Module] = []
    widths = [in_dim, *hidden]
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(widths[-1], out_dim))
    return nn.Sequential(*layers)


def normal_log_prob(value: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Elementwise log density of a normal."""
    return -0.5 * ((value - loc) / scale).pow(2) - scale.log() - LOG_SQRT_2PI


def std_normal_log_prob(value: torch.Tensor) -> torch.Tensor:
    return -0.5 * value.pow(2) - LOG_SQRT_2PI


class HandwrittenCxVAE(nn.Module):
    """The CxVAE guide's encoders and the Exam-Scores model's negative ELBO, in plain PyTorch."""

    def __init__(
        self,
        x_dim: int = 1,
        u_dim: int = 2,
        v_dim: int = 1,
        hidden: Sequence[int] = (64, 64),
        set_dim: int = 64,
        noise: float = 0.1,
    ) -> None:
        super().__init__()
        self.u_dim, self.v_dim, self.noise = u_dim, v_dim, noise
        self.phi = mlp(x_dim, hidden, set_dim)
        self.rho = mlp(set_dim, hidden, 2 * u_dim)
        self.instance = mlp(x_dim + u_dim, hidden, 2 * v_dim)

    @classmethod
    def from_guide(cls, guide: nn.Module, **kwargs) -> "HandwrittenCxVAE":
        """A copy with the weights of a ``preset_guide("cxvae", ...)`` guide."""
        ds = guide.group_encoder.net
        phi_in, rho_in = ds.phi[0].in_features, ds.rho[0].in_features
        hidden = [m.out_features for m in ds.phi if isinstance(m, nn.Linear)][:-1]
        out = cls(
            x_dim=phi_in,
            u_dim=ds.rho[-1].out_features // 2,
            v_dim=guide.instance_encoder.net[-1].out_features // 2,
            hidden=hidden,
            set_dim=rho_in,
            **kwargs,
        )
        out.phi.load_state_dict(ds.phi.state_dict())
        out.rho.load_state_dict(ds.rho.state_dict())
        out.instance.load_state_dict(guide.instance_encoder.net.state_dict())
        return out

    def group_posterior(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[Tensor, Tensor]:
        """``(loc, scale)`` ``[G, 1, u_dim]`` of ``q(u | x_1..K)``."""
        h = (self.phi(x) * mask.unsqueeze(-1).to(x.dtype)).sum(-2)
        loc, raw = self.rho(h).chunk(2, -1)
        return loc.unsqueeze(-2), (softplus(raw) + MIN_SCALE).unsqueeze(-2)

    def instance_posterior(self, x: torch.Tensor, u: torch.Tensor) -> tuple[Tensor, Tensor]:
        """``(loc, scale)`` ``[G, K, v_dim]`` of ``q(v_k | x_k, u)``."""
        h = torch.cat([x, u.expand(*x.shape[:-1], u.shape[-1])], -1)
        loc, raw = self.instance(h).chunk(2, -1)
        return loc, softplus(raw) + MIN_SCALE

    def loss(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        num_groups: Optional[int] = None,
        noise: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
    ) -> torch.Tensor:
        """The negative ELBO of ``x`` ``[G, K, 1]`` with ``mask`` ``[G, K]``, scaled by ``N / G``.

        :param noise: optional standard-normal draws ``(eps_u [G, 1, u_dim], eps_v [G, K, v_dim])``;
            drawn from the global RNG (``u`` first) when not given.
        """
        g = mask.shape[0]
        scale = 1.0 if num_groups is None else num_groups / g
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
        u_loc, u_scale = self.group_posterior(x, mask)
        eps_u = noise[0] if noise is not None else torch.empty_like(u_loc).normal_()
        u = u_loc + eps_u * u_scale
        v_loc, v_scale = self.instance_posterior(x, u)
        eps_v = noise[1] if noise is not None else torch.empty_like(v_loc).normal_()
        v = v_loc + eps_v * v_scale
        # log p(u) - log q(u), per group [G]
        group_term = (std_normal_log_prob(u) - normal_log_prob(u, u_loc, u_scale)).sum((-2, -1))
        # log p(v_k) + log p(x_k | u, v_k) - log q(v_k | x_k, u), per observation [G, K]
        mu, sigma = u[..., :1], u[..., 1:2]
        x_loc = 2.0 * mu + (sigma.pow(2) + 1.0) * v
        obs = (
            std_normal_log_prob(v).sum(-1)
            + normal_log_prob(x, x_loc, x.new_tensor(self.noise)).sum(-1)
            - normal_log_prob(v, v_loc, v_scale).sum(-1)
        )
        obs = torch.where(mask, obs, obs.new_zeros(()))
        return -scale * (group_term.sum() + obs.sum())
