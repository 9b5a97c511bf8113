"""Evaluation: codes, reconstruction and translation; ML-VAE's grids, accumulated evidence and
k-shot classification; metrics; posterior predictive checks."""
from pyro_groups.evaluation.clusters import cluster_assignments, cluster_probabilities
from pyro_groups.evaluation.codes import decode, encode, interpolate, reconstruct, swap, translate
from pyro_groups.evaluation.evidence import (
    Evidence,
    accumulating_evidence,
    content_posterior,
    reconstruction_nll,
    single_observations,
    strategy_reconstruction,
)
from pyro_groups.evaluation.exam_scores import exam_scores_errors, prediction_error
from pyro_groups.evaluation.gradient_variance import elbo_gradient_variance
from pyro_groups.evaluation.grids import SwapGrid, generate, interpolation_grid, swap_grid
from pyro_groups.evaluation.k_shot import classifier_scores, fit_classifier, k_shot
from pyro_groups.evaluation.mi_probe import mi_probe
from pyro_groups.evaluation.ppc import (
    plot_ppc,
    posterior_predictive,
    ppc_summary,
    to_inference_data,
)

__all__ = [
    "Evidence",
    "SwapGrid",
    "accumulating_evidence",
    "classifier_scores",
    "content_posterior",
    "cluster_assignments",
    "cluster_probabilities",
    "decode",
    "elbo_gradient_variance",
    "encode",
    "exam_scores_errors",
    "fit_classifier",
    "generate",
    "interpolate",
    "interpolation_grid",
    "k_shot",
    "mi_probe",
    "plot_ppc",
    "posterior_predictive",
    "ppc_summary",
    "prediction_error",
    "reconstruct",
    "reconstruction_nll",
    "single_observations",
    "strategy_reconstruction",
    "swap",
    "swap_grid",
    "to_inference_data",
    "translate",
]
