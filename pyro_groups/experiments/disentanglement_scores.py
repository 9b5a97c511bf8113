"""The scores of one trained model in the Locatello study: every metric under
``disentanglement_lib``'s conventions, two of them also under ours, the Gaussian total correlation
of the mean and the sampled representation, and the downstream factor prediction.

Rows: ``codes`` / ``samples`` ``[n, D]`` are posterior means / draws of ``n`` fresh images and
``factors`` ``[n, K]`` their factors. The convention is ``disentanglement_lib``'s with one change,
:data:`STUDY`: since the rows are i.i.d. fresh images, disjoint parts of a permutation are the
independent fresh samples the library draws (drawing with replacement from 15,000 rows would put
half of the test rows in a 10,000-row training draw; see
:mod:`~pyro_groups.evaluation.disentanglement.conventions`). With ``n = 15,000`` and
``test_size = 1/3`` the parts have the library's 10,000 and 5,000 rows.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional, Sequence

import numpy as np

from pyro_groups.evaluation import disentanglement as dm

__all__ = ["DOWNSTREAM", "STUDY", "score", "unsupervised_scores"]

#: disentanglement_lib's estimators, with fresh samples as disjoint parts of i.i.d. rows.
STUDY = replace(dm.DISENTANGLEMENT_LIB, name="disentanglement_lib_fresh_samples",
                split="permutation")
DL = STUDY
# The downstream keys every run has: accuracy from few and many labels, and their ratio.
DOWNSTREAM = ("logistic_small", "logistic_large", "logistic_efficiency", "gbt_small",
              "gbt_large", "gbt_efficiency")


def unsupervised_scores(codes: np.ndarray, samples: np.ndarray) -> dict[str, float]:
    """Gaussian total correlation of the mean (``tc_mean``) and sampled (``tc_sampled``)
    representation (Locatello et al. 2019, Fig. 1)."""
    return {"tc_mean": dm.gaussian_total_correlation(codes),
            "tc_sampled": dm.gaussian_total_correlation(samples)}


def downstream(codes: np.ndarray, factors: np.ndarray, seed: int, sizes: Sequence[int],
               num_test: int, predictors: Sequence[str], dci_info: Optional[float]
               ) -> dict[str, float]:
    """Logistic regression from ``sizes[0]`` and ``sizes[-1]`` labelled rows, gradient boosting
    from ``sizes[0]``; the large-sample gradient boosting accuracy is DCI's informativeness (the
    same ``GradientBoostingClassifier`` on DCI's training rows, scored on its test rows). A
    predictor not in ``predictors`` gives ``nan``."""
    small, large = sizes[0], sizes[-1]
    out = {k: float("nan") for k in DOWNSTREAM}
    if "logistic" in predictors:
        lr = dm.downstream_accuracy(codes, factors, rng=seed, predictor="logistic",
                                    num_train=(small, large), num_test=num_test, convention=DL)
        out.update(logistic_small=lr[f"logistic_{small}_test"],
                   logistic_large=lr[f"logistic_{large}_test"],
                   logistic_efficiency=lr["logistic_efficiency"])
    if "gbt" in predictors and dci_info is not None:
        few = dm.downstream_accuracy(codes, factors, rng=seed, predictor="gbt", num_train=(small,),
                                     num_test=num_test, convention=DL)[f"gbt_{small}_test"]
        out.update(gbt_small=few, gbt_large=dci_info, gbt_efficiency=few / dci_info)
    return out


def score(codes: np.ndarray, samples: np.ndarray, factors: np.ndarray, code_blocks: list[str],
          factor_blocks: list[str], cfg: Any, seed: int) -> dict[str, float]:
    """Every metric of the study for one model (see the module docstring).

    ``cfg`` supplies ``score_points`` (BetaVAE / FactorVAE training and evaluation points),
    ``dci_rows`` (rows given to DCI; a third of them are its test draw), ``dci_estimator``
    (``None``: the convention's gradient boosting), ``downstream_sizes``, ``downstream_test``,
    ``downstream_predictors`` and ``fast_metrics`` (modularity from the MI matrix only).
    """
    n_train, n_eval = cfg.score_points
    test_size = 1 / 3
    out: dict[str, float] = {}
    out.update(dm.beta_vae_score(codes, factors, rng=seed, num_train=n_train, num_eval=n_eval,
                                 convention=DL))
    out.update(dm.factor_vae_score(codes, factors, rng=seed, num_train=n_train,
                                   num_eval=n_eval, convention=DL))
    out.update(dm.mig(codes, factors, convention=DL))
    few = slice(0, min(cfg.dci_rows, codes.shape[0]))
    out.update(dm.dci(codes[few], factors[few], rng=seed, estimator=cfg.dci_estimator,
                      test_size=test_size, convention=DL))
    out.update(dm.sap(codes, factors, rng=seed, test_size=test_size, convention=DL))
    if cfg.fast_metrics:
        mi = dm.mutual_info_matrix(dm.discretize(codes), dm.factor_labels(factors))
        out.update(dm.modularity_from_mi(mi))
        out.update({"explicitness_train": float("nan"), "explicitness_test": float("nan")})
    else:
        out.update(dm.modularity_explicitness(codes, factors, rng=seed, test_size=test_size,
                                              convention=DL))
    out.update(dm.group_mig(codes, factors, code_blocks=code_blocks, factor_blocks=factor_blocks))
    out["sap_pyro_groups"] = dm.sap(codes, factors, rng=seed)["sap"]
    ours = dm.dci(codes[few], factors[few], rng=seed, estimator="random_forest")
    out["dci_disentanglement_pyro_groups"] = ours["dci_disentanglement"]
    out.update(unsupervised_scores(codes, samples))
    info = out["dci_informativeness_test"] if cfg.dci_estimator in (None, "gbt") else None
    out.update(downstream(codes, factors, seed, cfg.downstream_sizes, cfg.downstream_test,
                          cfg.downstream_predictors, info))
    return {k: float(v) for k, v in out.items() if "_factor_" not in k}
