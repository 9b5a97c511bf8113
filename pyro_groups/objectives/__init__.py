"""Objectives: ELBO variants, penalties and adversaries (MI critics, TC discriminators).

Pure estimator functions (``estimators``, ``tc``, ``beta_tcvae.log_qz_mws``,
``dip_vae.dip_covariance``) are kept apart from the modules that own parameters and optimisers.
"""
from pyro_groups.objectives.adversary import AdversarialPenalty, Penalty, detached_call
from pyro_groups.objectives.annealed_vae import AnnealedVAELoss, linear_capacity
from pyro_groups.objectives.beta_tcvae import BetaTCVAELoss, log_qz_mws, total_correlation_mws
from pyro_groups.objectives.beta_vae import BetaVAELoss
from pyro_groups.objectives.critics import CriticScores, PairCritic, SetCritic, sample_pairs
from pyro_groups.objectives.dip_vae import DIPVAELoss, dip_covariance, dip_penalty
from pyro_groups.objectives.estimators import (
    dv_bound,
    infonce_bound,
    mine_bound,
    mine_ema_init,
    nwj_bound,
)
from pyro_groups.objectives.factor_vae import FactorVAEPenalty
from pyro_groups.objectives.group_tc import GroupTCVAEPenalty, PairKLPenalty, pair_kl
from pyro_groups.objectives.mi_penalty import MIPenalty, nemeth_penalty, set_penalty
from pyro_groups.objectives.penalized import PenalizedLoss
from pyro_groups.objectives.tc import (
    TCDiscriminator,
    discriminator_loss,
    permute_dims,
    tc_blocks,
    tc_estimate,
)

__all__ = [
    "AdversarialPenalty",
    "AnnealedVAELoss",
    "BetaTCVAELoss",
    "BetaVAELoss",
    "CriticScores",
    "DIPVAELoss",
    "FactorVAEPenalty",
    "GroupTCVAEPenalty",
    "MIPenalty",
    "PairCritic",
    "PairKLPenalty",
    "PenalizedLoss",
    "Penalty",
    "SetCritic",
    "TCDiscriminator",
    "detached_call",
    "dip_covariance",
    "dip_penalty",
    "discriminator_loss",
    "dv_bound",
    "infonce_bound",
    "linear_capacity",
    "log_qz_mws",
    "mine_bound",
    "mine_ema_init",
    "nemeth_penalty",
    "nwj_bound",
    "pair_kl",
    "permute_dims",
    "sample_pairs",
    "set_penalty",
    "tc_blocks",
    "tc_estimate",
    "total_correlation_mws",
]
