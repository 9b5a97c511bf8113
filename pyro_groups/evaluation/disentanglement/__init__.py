"""Disentanglement metrics of Locatello et al. (2019) and group-MIG, as functions on arrays.

Every metric takes ``codes`` ``[N, D]`` and ground-truth ``factors`` ``[N, K]`` (numpy arrays or
torch tensors) and keyword options, and returns a ``dict[str, float]``; randomness comes from
``rng`` (a seed or a numpy ``Generator``), so the same seed gives the same numbers. Rows are
instances: for padded group batches pass only the real ones (``codes[mask]``,
``factors[mask]``), so padded slots never enter a metric. ``convention="disentanglement_lib"``
switches every metric to the estimators and sampling of Locatello et al.'s library
(:mod:`~pyro_groups.evaluation.disentanglement.conventions`).
"""
from pyro_groups.evaluation.disentanglement.beta_vae import (
    beta_vae_score,
    beta_vae_score_from_sampler,
)
from pyro_groups.evaluation.disentanglement.conventions import (
    DISENTANGLEMENT_LIB,
    PYRO_GROUPS,
    Convention,
)
from pyro_groups.evaluation.disentanglement.dci import dci, dci_from_importance, importance_matrix
from pyro_groups.evaluation.disentanglement.downstream import downstream_accuracy
from pyro_groups.evaluation.disentanglement.factor_vae import (
    factor_vae_score,
    factor_vae_score_from_sampler,
)
from pyro_groups.evaluation.disentanglement.mig import group_mig, mig
from pyro_groups.evaluation.disentanglement.modularity import (
    modularity_explicitness,
    modularity_from_mi,
)
from pyro_groups.evaluation.disentanglement.sap import sap, sap_score_matrix
from pyro_groups.evaluation.disentanglement.unsupervised import gaussian_total_correlation
from pyro_groups.evaluation.disentanglement.utils import (
    discretize,
    entropy,
    factor_labels,
    mutual_info_matrix,
)

__all__ = [
    "Convention",
    "DISENTANGLEMENT_LIB",
    "PYRO_GROUPS",
    "beta_vae_score",
    "beta_vae_score_from_sampler",
    "dci",
    "dci_from_importance",
    "discretize",
    "downstream_accuracy",
    "entropy",
    "factor_labels",
    "factor_vae_score",
    "factor_vae_score_from_sampler",
    "gaussian_total_correlation",
    "group_mig",
    "importance_matrix",
    "mig",
    "modularity_explicitness",
    "modularity_from_mi",
    "mutual_info_matrix",
    "sap",
    "sap_score_matrix",
]
