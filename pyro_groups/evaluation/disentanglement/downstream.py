r"""Downstream factor prediction and its sample efficiency (Locatello et al. 2019, Sec. 5.5).

The simplest downstream task: predict every ground-truth factor from the representation with a
multi-class classifier trained on few or many labelled rows. Locatello et al. train
``LogisticRegressionCV(Cs=10, cv=KFold(5))`` ("logistic") and ``GradientBoostingClassifier()``
("gbt") on 10, 100, 1,000 and 10,000 samples, score accuracy on 5,000 fresh ones, and define
the *statistical efficiency* as the mean accuracy from 100 samples divided by the mean accuracy
from 10,000.
"""
from __future__ import annotations

import inspect
from typing import Any, Sequence

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import KFold

from pyro_groups.evaluation.disentanglement.conventions import (
    ConventionLike,
    fit_quietly,
    resolve_convention,
)
from pyro_groups.evaluation.disentanglement.utils import (
    RngLike,
    check_pair,
    estimator_seed,
    factor_labels,
    make_rng,
)

__all__ = ["PREDICTORS", "downstream_accuracy", "make_predictor"]

PREDICTORS = ("logistic", "gbt")


def make_predictor(predictor: str, random_state: int = 0) -> Any:
    """An unfitted downstream classifier: ``"logistic"`` is ``LogisticRegressionCV(Cs=10,
    cv=KFold(n_splits=5))`` with accuracy as the selection score (L2 penalty), ``"gbt"`` is
    ``GradientBoostingClassifier()``; scikit-learn's other defaults, as ``disentanglement_lib``.
    One departure: current scikit-learn fits the logistic regression multinomially, where the
    library's scikit-learn (< 0.22) fitted one binary model per class (one-vs-rest; one fit per
    class, so much slower for dSprites' 32- and 40-valued factors)."""
    if predictor == "gbt":
        return GradientBoostingClassifier(random_state=random_state)
    if predictor != "logistic":
        raise ValueError(f"predictor must be one of {PREDICTORS}, got {predictor!r}")
    params = inspect.signature(LogisticRegressionCV).parameters
    extra: dict[str, Any] = {}
    if "use_legacy_attributes" in params:  # scikit-learn >= 1.8: same fit, no FutureWarning
        extra = {"use_legacy_attributes": False, "l1_ratios": (0.0,)}
    return LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5), scoring="accuracy", **extra)


def _draws(
    n: int, sizes: Sequence[int], num_test: int, rng: np.random.Generator, independent: bool
) -> tuple[list[np.ndarray], np.ndarray]:
    if independent:
        return [rng.integers(0, n, size=s) for s in sizes], rng.integers(0, n, size=num_test)
    if num_test + max(sizes) > n:
        raise ValueError(
            f"{n} rows cannot hold {num_test} test rows and {max(sizes)} disjoint training rows; "
            "pass more rows or use convention='disentanglement_lib' (draws with replacement)"
        )
    perm = rng.permutation(n)
    return [perm[num_test : num_test + s] for s in sizes], perm[:num_test]


def downstream_accuracy(
    codes: Any,
    factors: Any,
    *,
    rng: RngLike = 0,
    predictor: str = "logistic",
    num_train: Sequence[int] = (100, 10000),
    num_test: int = 5000,
    convention: ConventionLike = "pyro_groups",
) -> dict[str, float]:
    r"""Accuracy of predicting each factor from ``num_train`` labelled rows, and its efficiency.

    For each training size :math:`n` and factor :math:`v_k` one classifier
    (:func:`make_predictor`) is fitted on :math:`n` rows and scored on ``num_test`` other rows;

    .. math::
        \mathrm{acc}(n) = \frac{1}{K} \sum_k \mathrm{accuracy}_k(n), \qquad
        \text{efficiency} = \frac{\mathrm{acc}(n_{\min})}{\mathrm{acc}(n_{\max})}.

    Rows: ``convention="disentanglement_lib"`` draws every training set and the test set
    independently with replacement (as Locatello et al. draw fresh samples); ``"pyro_groups"``
    takes the test rows and nested training sets (the small one a prefix of the large one) from
    one permutation, disjoint from the test rows, so sizes are compared on the same rows (needs
    ``num_test + max(num_train)`` rows). The classifiers are the same in both conventions.
    A factor whose training rows hold a single value is predicted as that value. Factors are
    treated as discrete.

    Cost: dominated by ``"gbt"``, about 2.6 ms per class and boosting round for 1,000 rows
    (a dSprites factor set, 113 classes: 30 s at 1,000 rows, 5 min at 10,000); ``"logistic"``
    takes 3 s for a 40-class factor at 10,000 rows.

    :param codes: ``[N, D]`` representation.
    :param factors: ``[N, K]`` ground-truth factors.
    :param rng: seed or generator of the draws and the classifiers.
    :param predictor: ``"logistic"`` or ``"gbt"``.
    :param num_train: training sizes (Locatello et al.: 100 and 10,000 for the efficiency).
    :param num_test: test rows.
    :param convention: how rows are drawn (see above).
    :returns: ``{"<predictor>_<n>_train", "<predictor>_<n>_test"}`` for each size and
        ``"<predictor>_efficiency"`` (smallest over largest size's test accuracy).
    """
    conv = resolve_convention(convention)
    codes_arr, factors_arr = check_pair(codes, factors)
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor must be one of {PREDICTORS}, got {predictor!r}")
    sizes = [int(s) for s in num_train]
    if not sizes or min(sizes) < 1 or num_test < 1:
        raise ValueError(f"need positive training sizes and num_test, got {num_train}, {num_test}")
    labels = factor_labels(factors_arr)
    gen = make_rng(rng)
    trains, test = _draws(codes_arr.shape[0], sizes, num_test, gen, conv.split == "independent")
    seed = estimator_seed(gen)
    out: dict[str, float] = {}
    for size, rows in zip(sizes, trains):
        acc_train, acc_test = [], []
        for k in range(labels.shape[1]):
            y = labels[rows, k]
            if np.unique(y).size < 2:
                acc_train.append(1.0)
                acc_test.append(float(np.mean(labels[test, k] == y[0])))
                continue
            model = fit_quietly(make_predictor(predictor, seed), codes_arr[rows], y)
            acc_train.append(float(np.mean(model.predict(codes_arr[rows]) == y)))
            acc_test.append(float(np.mean(model.predict(codes_arr[test]) == labels[test, k])))
        out[f"{predictor}_{size}_train"] = float(np.mean(acc_train))
        out[f"{predictor}_{size}_test"] = float(np.mean(acc_test))
    small, large = out[f"{predictor}_{min(sizes)}_test"], out[f"{predictor}_{max(sizes)}_test"]
    out[f"{predictor}_efficiency"] = small / large if large > 0 else float("nan")
    return out
