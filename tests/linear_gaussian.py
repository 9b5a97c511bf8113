r"""Test helper: a linear-Gaussian group model with closed-form marginal likelihood and posterior.

.. math::

    u \sim \mathcal{N}(0, I), \quad v_k \sim \mathcal{N}(0, I), \quad
    x_k = A u + B v_k + \epsilon_k, \quad \epsilon_k \sim \mathcal{N}(0, s^2 I).

For a group of ``K`` observations the stacked ``x`` is a zero-mean normal with covariance
``1 1^T (x) A A^T + I_K (x) (B B^T + s^2 I)``, and the posterior factorises exactly as
``p(u | x) prod_k p(v_k | x_k, u)``: the family of the context-conditioned guide contains it.
"""
from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn

from pyro_groups.data import GroupedData
from pyro_groups.guides import make_guide
from pyro_groups.guides.encoders import MIN_SCALE


class LinearGaussianDecoder(nn.Module):
    """``p(x_k | u, v_k) = N(A u + B v_k, s^2 I)`` with fixed ``A`` [x, u], ``B`` [x, v], ``s``."""

    def __init__(self, A, B, noise: float) -> None:
        super().__init__()
        A = torch.as_tensor(A, dtype=torch.get_default_dtype())
        B = torch.as_tensor(B, dtype=torch.get_default_dtype())
        self.register_buffer("A", A)
        self.register_buffer("B", B)
        self.noise = float(noise)
        self.u_dim, self.v_dim = A.shape[1], B.shape[1]
        self.event_shape = torch.Size([A.shape[0]])

    def mean(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return u @ self.A.T + v @ self.B.T

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> dist.TorchDistribution:
        loc = self.mean(u, v)
        return dist.Normal(loc, torch.full_like(loc, self.noise)).to_event(1)


def group_covariance(dec: LinearGaussianDecoder, k: int) -> torch.Tensor:
    """Covariance ``[k * x_dim, k * x_dim]`` of a stacked group of ``k`` observations."""
    x_dim = dec.event_shape[0]
    ones = torch.ones(k, k, dtype=dec.A.dtype)
    noise = dec.B @ dec.B.T + dec.noise**2 * torch.eye(x_dim, dtype=dec.A.dtype)
    return torch.kron(ones, dec.A @ dec.A.T) + torch.kron(torch.eye(k, dtype=dec.A.dtype), noise)


def exact_log_marginal(
    dec: LinearGaussianDecoder, x: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``log p(x_i)`` ``[G]`` of each group's valid observations (ragged groups allowed)."""
    sizes = mask.sum(-1)
    out = x.new_empty(mask.shape[0])
    for k in sizes.unique().tolist():
        idx = (sizes == k).nonzero().flatten()
        xs = x[idx][mask[idx]].reshape(len(idx), -1)  # valid observations, stacked per group
        cov = group_covariance(dec, k)
        mvn = dist.MultivariateNormal(torch.zeros_like(xs[0]), covariance_matrix=cov)
        out[idx] = mvn.log_prob(xs)
    return out


def joint_posterior_precision(dec: LinearGaussianDecoder, k: int) -> torch.Tensor:
    """Precision of ``p(u, v_1..v_k | x)`` (the same for every ``x``); latents ordered u, v_1, .."""
    x_dim = dec.event_shape[0]
    # x = M z + eps with z = (u, v_1, ..., v_k)
    M = torch.cat([torch.kron(torch.ones(k, 1, dtype=dec.A.dtype), dec.A),
                   torch.kron(torch.eye(k, dtype=dec.A.dtype), dec.B)], 1)
    assert M.shape[0] == k * x_dim
    return torch.eye(M.shape[1], dtype=M.dtype) + M.T @ M / dec.noise**2


def mean_field_gap(dec: LinearGaussianDecoder, k: int) -> float:
    r"""The smallest ``log p(x) - ELBO`` of any fully factorised normal ``q(u) prod q(v_k)``.

    For a normal posterior with precision :math:`\Lambda` the best factorised normal has the exact
    means and precisions :math:`\Lambda_{ii}`, and :math:`KL = \tfrac12(\sum_i \log\Lambda_{ii} -
    \log\det\Lambda)`. An unconditional guide ``q(u | x) prod q(v_k | x_k)`` is in that family.
    """
    prec = joint_posterior_precision(dec, k)
    return 0.5 * float(prec.diagonal().log().sum() - torch.logdet(prec))


def sample_groups(
    dec: LinearGaussianDecoder, num_groups: int, k: int, seed: int = 0
) -> GroupedData:
    """``num_groups`` groups of exactly ``k`` observations, with the ground truth."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(num_groups, 1, dec.u_dim, generator=g)
    v = torch.randn(num_groups, k, dec.v_dim, generator=g)
    x = dec.mean(u, v) + dec.noise * torch.randn(num_groups, k, *dec.event_shape, generator=g)
    mask = torch.ones(num_groups, k, dtype=torch.bool)
    return GroupedData(x, mask, u_true=u.squeeze(-2), v_true=v)


def _inv_softplus(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))


def exact_guide(dec: LinearGaussianDecoder, k: int, name=None):
    """The affine CxVAE guide (DeepSets sum pooling, conditional, ``hidden=()``) whose weights are
    set to the exact posterior of groups of exactly ``k`` observations (1-D ``u`` and ``v``)."""
    assert dec.u_dim == 1 and dec.v_dim == 1, "diagonal posteriors need 1-D codes"
    A, B, s2 = dec.A, dec.B, dec.noise**2
    x_dim = A.shape[0]
    noise_cov = B @ B.T + s2 * torch.eye(x_dim, dtype=A.dtype)
    # u | x: x_k = A u + e_k, e_k ~ N(0, BB^T + s^2 I) iid
    prec_u = 1.0 + k * (A.T @ torch.linalg.solve(noise_cov, A))  # [1, 1]
    gain_u = torch.linalg.solve(noise_cov, A).T / prec_u  # [1, x_dim], applied to sum_k x_k
    # v_k | x_k, u: x_k - A u = B v_k + eps
    prec_v = 1.0 + B.T @ B / s2  # [1, 1]
    gain_v = (B.T / s2) / prec_v  # [1, x_dim], applied to x_k - A u

    guide = make_guide(x_dim, 1, 1, group="deepsets", instance="conditional", hidden=(), name=name)
    phi = guide.group_encoder.net.phi[0]
    rho = guide.group_encoder.net.rho[0]
    lin_v = guide.instance_encoder.net[0]
    with torch.no_grad():
        for p in guide.parameters():
            p.zero_()
        phi.weight[:x_dim] = torch.eye(x_dim)  # pooled features [:x_dim] = sum_k x_k
        rho.weight[0, :x_dim] = gain_u[0]
        rho.bias[1] = _inv_softplus(prec_u.rsqrt()[0, 0] - MIN_SCALE)
        lin_v.weight[0, :x_dim] = gain_v[0]  # input is [x_k, u]
        lin_v.weight[0, x_dim] = -(gain_v @ A)[0, 0]
        lin_v.bias[1] = _inv_softplus(prec_v.rsqrt()[0, 0] - MIN_SCALE)
    return guide
