"""DCI disentanglement, completeness and informativeness (Eastwood & Williams, 2018)."""
from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import Lasso

from pyro_groups.evaluation.disentanglement.conventions import (
    ConventionLike,
    resolve_convention,
    train_test_rows,
)
from pyro_groups.evaluation.disentanglement.utils import (
    RngLike,
    as_array,
    check_pair,
    estimator_seed,
    factor_labels,
    make_rng,
    standardize,
)

ESTIMATORS = ("random_forest", "gbt", "lasso")

_DEFAULTS: dict[str, dict[str, Any]] = {
    "random_forest": {"n_estimators": 10, "max_depth": 8, "max_features": None},
    "gbt": {},
    "lasso": {"alpha": 0.01},
}


def _normalised_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy of each row of non-negative weights ``p`` (rows sum to 1), in base ``base``."""
    if base <= 1:
        return np.zeros(p.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=1) / np.log(base)


def dci_from_importance(importance: Any) -> dict[str, float]:
    r"""DCI disentanglement and completeness from an importance matrix.

    With :math:`R_{jk} \ge 0` the importance of code :math:`z_j` for predicting factor
    :math:`v_k` (``D`` codes, ``K`` factors), :math:`P_{jk} = R_{jk} / \sum_{k'} R_{jk'}` and
    :math:`\tilde P_{jk} = R_{jk} / \sum_{j'} R_{j'k}`:

    .. math::
        D = \sum_j \rho_j \Big(1 - H_K(P_{j\cdot})\Big), \quad
        \rho_j = \frac{\sum_k R_{jk}}{\sum_{jk} R_{jk}}, \qquad
        C = \sum_k \tilde\rho_k \Big(1 - H_D(\tilde P_{\cdot k})\Big), \quad
        \tilde\rho_k = \frac{\sum_j R_{jk}}{\sum_{jk} R_{jk}},

    where :math:`H_b` is the entropy in base :math:`b`. Eastwood & Williams (2018), "A framework
    for the quantitative evaluation of disentangled representations", ICLR, define both; the
    importance-weighted average of completeness follows Locatello et al. (2019) (equal to the
    plain mean when every column sums to 1, as tree importances do).

    Choices: rows or columns with zero total importance get weight 0 (an all-zero matrix scores
    0 and 0); with one factor (one code) every code (factor) is trivially disentangled
    (complete). Absolute values are taken, so signed regression coefficients may be passed.

    :param importance: ``[D, K]`` importance matrix.
    :returns: ``{"dci_disentanglement": float, "dci_completeness": float}``.
    """
    r = np.abs(as_array(importance, name="importance").astype(np.float64))
    total = r.sum()
    if total == 0:
        return {"dci_disentanglement": 0.0, "dci_completeness": 0.0}
    num_codes, num_factors = r.shape
    code_weight = r.sum(axis=1)
    factor_weight = r.sum(axis=0)
    p_code = r / np.where(code_weight > 0, code_weight, 1.0)[:, None]
    p_factor = (r / np.where(factor_weight > 0, factor_weight, 1.0)[None, :]).T
    disentanglement = 1.0 - _normalised_entropy(p_code, num_factors)
    completeness = 1.0 - _normalised_entropy(p_factor, num_codes)
    return {
        "dci_disentanglement": float(np.sum(code_weight / total * disentanglement)),
        "dci_completeness": float(np.sum(factor_weight / total * completeness)),
    }


def _fit_factor(
    estimator: str,
    params: Mapping[str, Any],
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    random_state: int,
) -> tuple[np.ndarray, float, float]:
    if estimator == "lasso":
        model = Lasso(**params).fit(*train)
        return np.abs(model.coef_), model.score(*train), model.score(*test)
    cls = RandomForestClassifier if estimator == "random_forest" else GradientBoostingClassifier
    model = cls(random_state=random_state, **params).fit(*train)
    accuracy = [float(np.mean(model.predict(x) == y)) for x, y in (train, test)]
    return model.feature_importances_, accuracy[0], accuracy[1]


def importance_matrix(
    codes_train: np.ndarray,
    labels_train: np.ndarray,
    codes_test: np.ndarray,
    labels_test: np.ndarray,
    *,
    estimator: str = "random_forest",
    estimator_params: Optional[Mapping[str, Any]] = None,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit one predictor per factor and return ``(importance [D, K], train score [K], test score
    [K])``; see :func:`dci` for the estimators and their scores.

    :param codes_train: ``[N_train, D]`` codes.
    :param labels_train: ``[N_train, K]`` integer factor labels (see ``factor_labels``).
    :param codes_test: ``[N_test, D]`` codes.
    :param labels_test: ``[N_test, K]`` integer factor labels.
    :param estimator: ``"random_forest"``, ``"gbt"`` or ``"lasso"``.
    :param estimator_params: keyword arguments overriding the estimator defaults.
    :param random_state: seed of the tree ensembles.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    params = {**_DEFAULTS[estimator], **(estimator_params or {})}
    if estimator == "lasso":
        codes_train, codes_test = standardize(codes_train, codes_test)
        labels_train, labels_test = standardize(labels_train.astype(np.float64), labels_test)
    num_factors = labels_train.shape[1]
    importance = np.zeros((codes_train.shape[1], num_factors))
    train_score = np.zeros(num_factors)
    test_score = np.zeros(num_factors)
    for k in range(num_factors):
        importance[:, k], train_score[k], test_score[k] = _fit_factor(
            estimator,
            params,
            (codes_train, labels_train[:, k]),
            (codes_test, labels_test[:, k]),
            random_state,
        )
    return importance, train_score, test_score


def dci(
    codes: Any,
    factors: Any,
    *,
    rng: RngLike = 0,
    estimator: Optional[str] = None,
    estimator_params: Optional[Mapping[str, Any]] = None,
    test_size: float = 0.2,
    convention: ConventionLike = "pyro_groups",
) -> dict[str, float]:
    r"""DCI disentanglement, completeness and informativeness (Eastwood & Williams, 2018).

    The rows are split into train and test parts (``test_size``; see ``convention``). For each
    factor :math:`v_k` one predictor is fitted on the train codes; its feature importances form
    column :math:`k` of :math:`R`, and :func:`dci_from_importance` gives D and C.
    Informativeness is the mean over factors of the predictor's score (higher is better).

    Estimators (all seeded from ``rng``; ``estimator_params`` overrides the defaults; ``None``
    takes the convention's: ``"random_forest"`` for ``"pyro_groups"``, ``"gbt"`` for
    ``"disentanglement_lib"``):

    - ``"random_forest"`` (this package's default): ``RandomForestClassifier(n_estimators=10,
      max_depth=8, max_features=None)``, the non-linear predictor of Eastwood & Williams;
      importance = mean decrease in impurity; score = classification accuracy. All features
      are considered at every split, so uninformative codes get no importance and duplicated
      codes share it.
      About 0.5-1 s per factor for 8,000 train rows x 10 codes x 10 classes.
    - ``"gbt"``: ``GradientBoostingClassifier()`` with sklearn defaults, as Locatello et al.
      (2019); score = accuracy. Slow: about 20 s per factor for 8,000 rows x 10 codes x 10
      classes (one tree per class and boosting round), 2.6 s for 1,000 rows. This cost is why it
      is not the default: on the known answers the forest's importances are the same.
    - ``"lasso"``: ``Lasso(alpha=0.01)`` on standardised codes regressing the standardised
      factor rank (the linear predictor of Eastwood & Williams); importance = ``|coef|``;
      score = :math:`R^2` (not an accuracy). About 0.1 s in all, but linear only, and it puts
      all the weight of duplicated codes on one copy.

    Factors are treated as discrete classes; each distinct value is one class.

    ``convention="disentanglement_lib"`` (Locatello et al.'s library) draws the train and test
    parts independently with replacement and defaults to ``"gbt"``; ``"pyro_groups"`` splits a
    permutation into disjoint parts (test rows unseen) and defaults to ``"random_forest"``.

    :param codes: ``[N, D]`` representation.
    :param factors: ``[N, K]`` ground-truth factors.
    :param rng: seed or generator for the split and the estimators.
    :param estimator: ``"random_forest"``, ``"gbt"``, ``"lasso"`` or ``None`` (the convention's).
    :param estimator_params: keyword arguments overriding the estimator defaults.
    :param test_size: fraction of rows held out to score informativeness.
    :param convention: ``"pyro_groups"`` or ``"disentanglement_lib"`` (see
        :mod:`~pyro_groups.evaluation.disentanglement.conventions`).
    :returns: ``{"dci_disentanglement", "dci_completeness", "dci_informativeness_train",
        "dci_informativeness_test"}``.
    """
    conv = resolve_convention(convention)
    codes_arr, factors_arr = check_pair(codes, factors)
    labels = factor_labels(factors_arr)
    gen = make_rng(rng)
    train, test = train_test_rows(codes_arr.shape[0], test_size, gen, conv)
    importance, train_score, test_score = importance_matrix(
        codes_arr[train],
        labels[train],
        codes_arr[test],
        labels[test],
        estimator=estimator or conv.dci_estimator,
        estimator_params=estimator_params,
        random_state=estimator_seed(gen),
    )
    out = dci_from_importance(importance)
    out["dci_informativeness_train"] = float(train_score.mean())
    out["dci_informativeness_test"] = float(test_score.mean())
    return out
