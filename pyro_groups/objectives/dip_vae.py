r"""DIP-VAE-I and DIP-VAE-II (Kumar et al. 2018): moment matching of the aggregate posterior.

The covariance of the aggregate posterior :math:`q(z) = \mathbb{E}_{p(x)} q(z \mid x)` is

.. math::
    \operatorname{Cov}_{q(z)}[z] = \mathbb{E}_{p(x)}\big[\operatorname{diag}\sigma^2(x)\big]
    + \operatorname{Cov}_{p(x)}\big[\mu(x)\big].

DIP-VAE-I penalises :math:`C = \operatorname{Cov}_{p(x)}[\mu(x)]` (the covariance of the
encoder's means), DIP-VAE-II the full :math:`C = \operatorname{Cov}_{q(z)}[z]`, both towards the
identity:

.. math::
    \mathcal{L} = -\mathrm{ELBO} + \hat N \Big(\lambda_{od} \sum_{i \ne j} C_{ij}^2
    + \lambda_d \sum_i (C_{ii} - 1)^2\Big).

Choices where the paper is vague, following ``disentanglement_lib`` (Locatello et al. 2019): the
expectations are minibatch averages of the valid observations (the biased covariance, divided by
:math:`M`, not :math:`M - 1`); the penalty is added once per batch, put on the ELBO's scale by
:math:`\hat N` (:func:`~pyro_groups.objectives.elbo_terms.observation_scale`); defaults
:math:`\lambda_d = 10 \lambda_{od}` for DIP-VAE-I and :math:`\lambda_d = \lambda_{od}` for
DIP-VAE-II (Locatello et al.'s grid: :math:`\lambda_{od} \in \{1, 2, 5, 10, 20, 50\}`).

Reference: Kumar, Sattigeri and Balakrishnan 2018, "Variational inference of disentangled latent
concepts from unlabeled observations", ICLR.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from pyro_groups.objectives.elbo_terms import AggregatePosteriorLoss, PosteriorCodes

__all__ = ["DIPVAELoss", "dip_covariance", "dip_penalty", "weighted_covariance"]


def weighted_covariance(x: Tensor, weights: Optional[Tensor] = None) -> Tensor:
    r"""Biased covariance ``[D, D]`` of rows ``x`` ``[M, D]``:
    :math:`\sum_n w_n (x_n - \bar x)(x_n - \bar x)^\top / \sum_n w_n` (uniform weights by default;
    a boolean mask works as weights, and rows of weight 0 never contribute)."""
    if weights is None:
        weights = torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
    w = weights.to(x.dtype)
    x = torch.where(w.unsqueeze(-1) > 0, x, torch.zeros_like(x))
    total = w.sum().clamp(min=torch.finfo(x.dtype).tiny)
    mean = (w.unsqueeze(-1) * x).sum(0) / total
    centred = (x - mean) * w.sqrt().unsqueeze(-1)
    return centred.T @ centred / total


def dip_covariance(
    loc: Tensor, scale: Optional[Tensor] = None, weights: Optional[Tensor] = None
) -> Tensor:
    r"""The covariance DIP-VAE matches to the identity, ``[D, D]``.

    :param loc: posterior means :math:`\mu(x_n)` ``[M, D]``.
    :param scale: posterior standard deviations ``[M, D]``; ``None`` gives DIP-VAE-I's
        :math:`\operatorname{Cov}[\mu]`, a tensor DIP-VAE-II's
        :math:`\operatorname{Cov}[\mu] + \mathbb{E}[\operatorname{diag}\sigma^2]`.
    :param weights: optional ``[M]`` row weights or mask.
    """
    cov = weighted_covariance(loc, weights)
    if scale is None:
        return cov
    var = scale.pow(2)
    if weights is None:
        mean_var = var.mean(0)
    else:
        w = weights.to(var.dtype)
        var = torch.where(w.unsqueeze(-1) > 0, var, torch.zeros_like(var))
        mean_var = (w.unsqueeze(-1) * var).sum(0) / w.sum().clamp(min=torch.finfo(var.dtype).tiny)
    return cov + torch.diag_embed(mean_var)


def dip_penalty(cov: Tensor, lambda_od: float, lambda_d: float) -> Tensor:
    r"""The penalty (a scalar):

    .. math:: \lambda_{od} \sum_{i \ne j} C_{ij}^2 + \lambda_d \sum_i (C_{ii} - 1)^2
    """
    diag = torch.diagonal(cov, dim1=-2, dim2=-1)
    off = cov - torch.diag_embed(diag)
    return lambda_od * off.pow(2).sum((-2, -1)) + lambda_d * (diag - 1.0).pow(2).sum(-1)


class DIPVAELoss(AggregatePosteriorLoss):
    """Loss callable of DIP-VAE: ``-ELBO + N * dip_penalty(C)``.

    :param lambda_od: weight of the off-diagonal entries.
    :param lambda_d: weight of the diagonal entries (default: ``10 * lambda_od`` for ``"i"``,
        ``lambda_od`` for ``"ii"``).
    :param kind: ``"i"`` (covariance of the means) or ``"ii"`` (covariance of :math:`q(z)`).
    :param sites: latent sites whose concatenation is the code (``("z",)`` for ``IIDVAE``).
    :param analytic_kl: closed-form KL in the ELBO (default).
    """

    def __init__(
        self,
        lambda_od: float = 10.0,
        lambda_d: Optional[float] = None,
        *,
        kind: str = "i",
        sites: Sequence[str] = ("z",),
        analytic_kl: bool = True,
    ) -> None:
        super().__init__(sites=sites, analytic_kl=analytic_kl)
        kind = kind.lower()
        if kind not in ("i", "ii"):
            raise ValueError(f"kind must be 'i' or 'ii', got {kind!r}")
        self.kind = kind
        self.lambda_od = float(lambda_od)
        if lambda_d is None:
            lambda_d = (10.0 if kind == "i" else 1.0) * lambda_od
        self.lambda_d = float(lambda_d)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, lambda_od={self.lambda_od}, lambda_d={self.lambda_d}"

    def penalty(self, codes: PosteriorCodes, n_obs: Tensor) -> Tensor:
        """``N * dip_penalty(C)`` with ``C`` the covariance of the codes' means (``"i"``) or of
        :math:`q(z)` (``"ii"``)."""
        cov = dip_covariance(codes.loc, codes.scale if self.kind == "ii" else None)
        return n_obs * dip_penalty(cov, self.lambda_od, self.lambda_d)
