r"""beta-TCVAE (Chen et al. 2018): the total correlation of the aggregate posterior, estimated by
minibatch-weighted sampling (MWS), weighted by :math:`\beta`.

The KL term of the ELBO, averaged over the data, splits into index-code mutual information, total
correlation and dimension-wise KL; beta-TCVAE weights only the total correlation:

.. math::
    \mathcal{L} = -\mathrm{ELBO} + (\beta - 1)\, \hat N\, \widehat{\mathrm{TC}}, \qquad
    \mathrm{TC} = \mathrm{KL}\Big(q(z) \,\Big\|\, \prod_j q(z_j)\Big)
    = \mathbb{E}_{q(z)}\Big[\log q(z) - \sum_j \log q(z_j)\Big],

(:math:`\alpha = \gamma = 1` in the paper's eq. 4, written as in ``disentanglement_lib``:
:math:`-\mathrm{ELBO}` already holds one TC). With a minibatch :math:`n_1, \dots, n_M` of a data
set of size :math:`N` and :math:`z_i \sim q(z \mid n_i)`, MWS (the paper's eq. 3) estimates

.. math::
    \log q(z_i) \approx \log \frac{1}{NM} \sum_{j=1}^{M} q(z_i \mid n_j), \qquad
    \log q(z_{ij}) \approx \log \frac{1}{NM} \sum_{l=1}^{M} q(z_{ij} \mid n_l),

and :math:`\widehat{\mathrm{TC}}` is the batch mean of the difference. The estimator is biased
(its expectation is a lower bound of :math:`\log q(z)`); the constant :math:`\log NM` offsets
:math:`\widehat{\mathrm{TC}}` by :math:`(D - 1) \log NM` and has no gradient
(``disentanglement_lib`` drops it; we keep the paper's form, so the reported TC is the paper's
number). The penalty is put on the ELBO's scale by :math:`\hat N`
(:func:`~pyro_groups.objectives.elbo_terms.observation_scale`), which is also the :math:`N` of
the estimator.

References: Chen, Li, Grosse and Duvenaud 2018, "Isolating sources of disentanglement in
variational autoencoders", NeurIPS; Locatello et al. 2019 (grid
:math:`\beta \in \{1, 2, 4, 6, 8, 10\}`).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import torch
from torch import Tensor

from pyro_groups.objectives.elbo_terms import AggregatePosteriorLoss, PosteriorCodes

__all__ = [
    "BetaTCVAELoss",
    "LogQz",
    "gaussian_log_density_matrix",
    "log_qz_mws",
    "total_correlation_mws",
]

_LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density_matrix(z: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
    r"""``[M, M, D]`` matrix of :math:`\log \mathcal{N}(z_{id}; \mu_{jd}, \sigma_{jd}^2)` for
    codes ``z`` ``[M, D]`` (row ``i``) under the posteriors ``loc``, ``scale`` ``[M, D]``
    (column ``j``)."""
    diff = (z.unsqueeze(1) - loc.unsqueeze(0)) / scale.unsqueeze(0)
    return -0.5 * diff.pow(2) - scale.log().unsqueeze(0) - 0.5 * _LOG_2PI


class LogQz(NamedTuple):
    """MWS estimates: ``joint`` :math:`\\log q(z_i)` ``[M]`` and ``marginals``
    :math:`\\log q(z_{ij})` ``[M, D]``."""

    joint: Tensor
    marginals: Tensor


def log_qz_mws(z: Tensor, loc: Tensor, scale: Tensor, dataset_size: float) -> LogQz:
    r"""Minibatch-weighted-sampling estimates of :math:`\log q(z_i)` and :math:`\log q(z_{ij})`.

    .. math:: \log q(z_i) \approx \operatorname{logsumexp}_j \log q(z_i \mid n_j) - \log(NM)

    :param z: codes ``[M, D]``, row ``i`` drawn from :math:`q(z \mid n_i)`.
    :param loc: posterior means ``[M, D]``.
    :param scale: posterior standard deviations ``[M, D]`` (diagonal normal posteriors).
    :param dataset_size: :math:`N`, the number of observations in the data set.
    """
    if z.dim() != 2 or loc.shape != z.shape or scale.shape != z.shape:
        shapes = f"{tuple(z.shape)}, {tuple(loc.shape)}, {tuple(scale.shape)}"
        raise ValueError(f"z, loc and scale must all be [M, D], got {shapes}")
    m = z.shape[0]
    log_nm = math.log(float(dataset_size) * m)
    log_q = gaussian_log_density_matrix(z, loc, scale)  # [M, M, D]
    joint = torch.logsumexp(log_q.sum(-1), dim=1) - log_nm
    marginals = torch.logsumexp(log_q, dim=1) - log_nm
    return LogQz(joint, marginals)


def total_correlation_mws(z: Tensor, loc: Tensor, scale: Tensor, dataset_size: float) -> Tensor:
    r""":math:`\widehat{\mathrm{TC}} = \frac1M \sum_i \big(\log q(z_i) - \sum_j \log q(z_{ij})\big)`
    with the estimates of :func:`log_qz_mws` (a scalar, nats)."""
    est = log_qz_mws(z, loc, scale, dataset_size)
    return (est.joint - est.marginals.sum(-1)).mean()


class BetaTCVAELoss(AggregatePosteriorLoss):
    """Loss callable of beta-TCVAE: ``-ELBO + (beta - 1) * N * TC_mws``.

    :param beta: weight of the total correlation (``1``: the plain VAE).
    :param sites: latent sites whose concatenation is the code (``("z",)`` for ``IIDVAE``).
    :param analytic_kl: closed-form KL in the ELBO (default).
    """

    def __init__(
        self, beta: float = 6.0, *, sites: Sequence[str] = ("z",), analytic_kl: bool = True
    ) -> None:
        super().__init__(sites=sites, analytic_kl=analytic_kl)
        self.beta = float(beta)
        self.last_tc: Optional[float] = None

    def extra_repr(self) -> str:
        return f"beta={self.beta}, sites={self.sites}"

    def penalty(self, codes: PosteriorCodes, n_obs: Tensor) -> Tensor:
        """``(beta - 1) * N * TC_mws`` of the codes; the TC estimate is kept in ``last_tc``."""
        tc = total_correlation_mws(codes.z, codes.loc, codes.scale, float(n_obs))
        self.last_tc = float(tc.detach())
        return (self.beta - 1.0) * n_obs * tc
