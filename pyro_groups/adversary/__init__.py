"""The auxiliary adversary module: penalties whose estimate needs a network trained against the VAE.

- :mod:`~pyro_groups.adversary.base`: the :class:`Penalty` protocol, :class:`AdversarialPenalty`
  (the adversary's own optimiser and checkpoint state) and :func:`detached_call`;
- :mod:`~pyro_groups.adversary.estimators`: pure lower bounds on mutual information (DV, MINE,
  NWJ, InfoNCE) from critic scores;
- :mod:`~pyro_groups.adversary.critics`: MI critics, one-observation (:class:`PairCritic`) and
  set-based (:class:`SetCritic`), and the pair sampler;
- :mod:`~pyro_groups.adversary.mi_penalty`: :class:`MIPenalty` (Németh 2020; CxVAE);
- :mod:`~pyro_groups.adversary.tc`: total correlation by a density-ratio discriminator at three
  factorisation levels; :mod:`~pyro_groups.adversary.factor_vae` (FactorVAE) and
  :mod:`~pyro_groups.adversary.group_tc` (group-tcVAE) penalties;
- :mod:`~pyro_groups.adversary.penalized`: :class:`PenalizedLoss`, a base loss plus penalties,
  one guide pass per step (what ``fit`` runs, and what a plain ``pyro.infer.SVI`` loop takes).
"""
from pyro_groups.adversary.base import AdversarialPenalty, Penalty, detached_call, guide_trace
from pyro_groups.adversary.critics import CriticScores, PairCritic, SetCritic, sample_pairs
from pyro_groups.adversary.estimators import (
    dv_bound,
    infonce_bound,
    mine_bound,
    mine_ema_init,
    nwj_bound,
)
from pyro_groups.adversary.factor_vae import FactorVAEPenalty
from pyro_groups.adversary.group_tc import GroupTCVAEPenalty, PairKLPenalty, pair_kl
from pyro_groups.adversary.mi_penalty import MIPenalty, nemeth_penalty, set_penalty
from pyro_groups.adversary.penalized import PenalizedLoss
from pyro_groups.adversary.tc import (
    TCDiscriminator,
    discriminator_loss,
    permute_dims,
    tc_blocks,
    tc_estimate,
)

__all__ = [
    "AdversarialPenalty",
    "CriticScores",
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
    "discriminator_loss",
    "dv_bound",
    "guide_trace",
    "infonce_bound",
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
]
