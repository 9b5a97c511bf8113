"""Evaluation: codes, reconstruction and translation; metrics; posterior predictive checks."""
from pyro_groups.evaluation.clusters import cluster_assignments, cluster_probabilities
from pyro_groups.evaluation.codes import decode, encode, interpolate, reconstruct, swap, translate
from pyro_groups.evaluation.exam_scores import exam_scores_errors, prediction_error
from pyro_groups.evaluation.mi_probe import mi_probe
from pyro_groups.evaluation.ppc import (
    plot_ppc,
    posterior_predictive,
    ppc_summary,
    to_inference_data,
)

__all__ = [
    "cluster_assignments",
    "cluster_probabilities",
    "decode",
    "encode",
    "exam_scores_errors",
    "interpolate",
    "mi_probe",
    "plot_ppc",
    "posterior_predictive",
    "ppc_summary",
    "prediction_error",
    "reconstruct",
    "swap",
    "to_inference_data",
    "translate",
]
