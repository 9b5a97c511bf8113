"""Objectives: the ELBO variants of the unsupervised baselines (beta, capacity, beta-TC, DIP terms).

Loss callables ``loss(model, guide, x, mask, num_groups=N)`` for ``SVI(..., loss=...)`` and
``fit(loss=...)``; their pure estimator functions (``beta_tcvae.log_qz_mws``,
``dip_vae.dip_covariance``) sit beside them. Penalties with an adversary (MI critics, TC
discriminators) are in :mod:`pyro_groups.adversary`.
"""
from pyro_groups.objectives.annealed_vae import AnnealedVAELoss, linear_capacity
from pyro_groups.objectives.beta_tcvae import BetaTCVAELoss, log_qz_mws, total_correlation_mws
from pyro_groups.objectives.beta_vae import BetaVAELoss
from pyro_groups.objectives.dip_vae import DIPVAELoss, dip_covariance, dip_penalty

__all__ = [
    "AnnealedVAELoss",
    "BetaTCVAELoss",
    "BetaVAELoss",
    "DIPVAELoss",
    "dip_covariance",
    "dip_penalty",
    "linear_capacity",
    "log_qz_mws",
    "total_correlation_mws",
]
