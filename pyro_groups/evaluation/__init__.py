"""Evaluation: codes, reconstruction and translation; metrics; posterior predictive checks."""
from pyro_groups.evaluation.codes import decode, encode, interpolate, reconstruct, swap, translate
from pyro_groups.evaluation.exam_scores import exam_scores_errors, prediction_error

__all__ = [
    "decode",
    "encode",
    "exam_scores_errors",
    "interpolate",
    "prediction_error",
    "reconstruct",
    "swap",
    "translate",
]
