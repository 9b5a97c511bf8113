r"""The one switch between this package's metric conventions and ``disentanglement_lib``'s.

Every metric takes ``convention="pyro_groups"`` (default) or ``convention="disentanglement_lib"``
(or a :class:`Convention`). The second reproduces the estimators and sampling of
``disentanglement_lib`` (Locatello et al. 2019, the library behind the published numbers of the
Locatello study and of most later papers), so that scores can be set beside published ones:

=========================  ==================================  ================================
choice                     ``"pyro_groups"`` (default)         ``"disentanglement_lib"``
=========================  ==================================  ================================
train / test rows          disjoint parts of a permutation     independent draws with
                                                               replacement (like fresh samples)
SAP, discrete factors      one-feature threshold tree          ``LinearSVC(C=0.01,
                           (:math:`|V_k|` leaves), balanced    class_weight="balanced")``,
                           accuracy                            accuracy
DCI estimator              random forest (10 trees, depth 8)   ``GradientBoostingClassifier()``
modularity MI              all rows                            the training rows
explicitness, BetaVAE      ``LogisticRegression(lbfgs)``,      liblinear one-vs-rest logistic
classifier                 multinomial                         regression (C = 1)
BetaVAE features           standardised                        raw
FactorVAE, no active dim.  chance (majority vote)              0
=========================  ==================================  ================================

Why the defaults depart (each metric's docstring repeats its own case):

- *Splits*: ``disentanglement_lib`` draws its training and test samples independently with
  replacement from the whole data set (737,280 dSprites images: the parts rarely share a row).
  Drawn that way from a *sample* of rows, about :math:`1 - e^{-n_{\text{train}}/n}` of the test
  rows (half, for 10,000 of 15,000) also appear in the training part, which flatters flexible
  classifiers. When the rows are themselves i.i.d. draws (fresh images of a generator), disjoint
  parts of a permutation are two independent samples, which is what the library's fresh draws
  are; so the default keeps the permutation, and a study on fresh samples can use
  ``dataclasses.replace(DISENTANGLEMENT_LIB, split="permutation")`` (as
  ``benchmarks/disentanglement.py`` does). On a fixed balanced population (a full factor grid)
  disjoint parts are slightly *negatively* dependent instead: an uninformative code then scores
  a little below chance on the held-out part.
- *SAP*: ``LinearSVC`` on one feature with ``C = 0.01`` is a heavily regularised linear rule, so
  even a perfect code of a factor with more than two values scores well below 1, and the score
  depends on the scale of the code; the threshold tree scores a perfect monotone code 1.
- *DCI*: gradient boosting costs about 2 s per class of a factor for 10,000 rows (a dSprites
  representation: several minutes); the random forest gives the same D and C on the known
  answers at a fraction of the cost.
- *Modularity*: it trains nothing, so there is no reason to drop the test rows.
- *Logistic regression*: the multinomial lbfgs fit on standardised codes is the maximum-likelihood
  classifier and does not depend on the codes' scale; liblinear is one-vs-rest and penalises the
  intercept.
- *FactorVAE*: a representation without an active dimension carries no information, which a
  majority vote scores at chance, as for every other uninformative code.

Reference: F. Locatello et al., "Challenging common assumptions in the unsupervised learning of
disentangled representations", ICML 2019, and its library ``disentanglement_lib``
(``evaluation/metrics/{sap_score,dci,modularity_explicitness,beta_vae,factor_vae}.py``).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from threadpoolctl import threadpool_limits

from pyro_groups.evaluation.disentanglement.utils import split_indices

__all__ = [
    "CONVENTIONS",
    "Convention",
    "ConventionLike",
    "DISENTANGLEMENT_LIB",
    "PYRO_GROUPS",
    "fit_quietly",
    "logistic_regression",
    "resolve_convention",
    "train_test_rows",
]


@dataclass(frozen=True)
class Convention:
    """The choices that differ between metric conventions (see the module docstring).

    :ivar name: the convention's name.
    :ivar split: ``"permutation"`` (disjoint parts) or ``"independent"`` (draws with replacement).
    :ivar sap_classifier: ``"threshold_tree"`` or ``"linear_svc"``.
    :ivar dci_estimator: ``"random_forest"`` or ``"gbt"`` (see :func:`~.dci.dci`).
    :ivar modularity_rows: ``"all"`` or ``"train"``.
    :ivar logistic: ``"lbfgs"`` (multinomial) or ``"liblinear"`` (one-vs-rest).
    :ivar beta_vae_standardize: standardise the BetaVAE score's features.
    :ivar factor_vae_no_active: ``"chance"`` or ``"zero"``.
    """

    name: str
    split: str
    sap_classifier: str
    dci_estimator: str
    modularity_rows: str
    logistic: str
    beta_vae_standardize: bool
    factor_vae_no_active: str


PYRO_GROUPS = Convention(
    name="pyro_groups", split="permutation", sap_classifier="threshold_tree",
    dci_estimator="random_forest", modularity_rows="all", logistic="lbfgs",
    beta_vae_standardize=True, factor_vae_no_active="chance",
)
DISENTANGLEMENT_LIB = Convention(
    name="disentanglement_lib", split="independent", sap_classifier="linear_svc",
    dci_estimator="gbt", modularity_rows="train", logistic="liblinear",
    beta_vae_standardize=False, factor_vae_no_active="zero",
)
CONVENTIONS: dict[str, Convention] = {c.name: c for c in (PYRO_GROUPS, DISENTANGLEMENT_LIB)}
ConventionLike = Union[str, Convention]


def resolve_convention(convention: ConventionLike) -> Convention:
    """The :class:`Convention` named ``convention`` (or ``convention`` itself).

    :raises ValueError: for an unknown name or a wrong type.
    """
    if isinstance(convention, Convention):
        return convention
    if isinstance(convention, str) and convention in CONVENTIONS:
        return CONVENTIONS[convention]
    raise ValueError(
        f"convention must be one of {sorted(CONVENTIONS)} or a Convention, got {convention!r}"
    )


def train_test_rows(
    n: int, test_size: float, rng: np.random.Generator, convention: ConventionLike
) -> tuple[np.ndarray, np.ndarray]:
    r"""Train and test row indices of ``n`` rows under ``convention``.

    Both conventions give :math:`n_{\text{test}} = \mathrm{round}(n \cdot \text{test\_size})` test
    rows and :math:`n - n_{\text{test}}` training rows. ``"permutation"``: disjoint parts of a
    random permutation (:func:`~.utils.split_indices`). ``"independent"``: each part drawn
    uniformly with replacement, independently of the other, as ``disentanglement_lib`` draws its
    training and test samples (so ``n = 15000`` and ``test_size = 1/3`` give its 10,000 / 5,000).

    :raises ValueError: if either part would be empty.
    """
    conv = resolve_convention(convention)
    if conv.split == "permutation":
        return split_indices(n, test_size, rng)
    n_test = int(round(n * test_size))
    if not 0 < n_test < n:
        raise ValueError(f"test_size={test_size} leaves an empty part of {n} rows")
    train = rng.integers(0, n, size=n - n_test)
    return train, rng.integers(0, n, size=n_test)


def logistic_regression(convention: ConventionLike, random_state: int = 0) -> Any:
    """An unfitted logistic-regression classifier of ``convention``.

    ``"lbfgs"``: ``LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000)`` (multinomial).
    ``"liblinear"``: ``OneVsRestClassifier(LogisticRegression(solver="liblinear"))`` with
    scikit-learn's other defaults (C = 1, 100 iterations), the ``LogisticRegression()`` of
    scikit-learn < 0.22 that ``disentanglement_lib`` called (current scikit-learn only runs
    liblinear one-vs-rest through the wrapper; the probabilities are normalised the same way).
    """
    conv = resolve_convention(convention)
    if conv.logistic == "lbfgs":
        return LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000)
    return OneVsRestClassifier(LogisticRegression(solver="liblinear", random_state=random_state))


def fit_quietly(estimator: Any, x: np.ndarray, y: np.ndarray) -> Any:
    """``estimator.fit(x, y)`` with one BLAS thread and without scikit-learn's
    ``ConvergenceWarning`` (liblinear, lbfgs and ``LinearSVC`` stop at their iteration caps on
    uninformative or separable codes, as they did in ``disentanglement_lib``).

    One thread: these fits are small (a few thousand rows, ten features), and OpenBLAS threads
    spinning on a busy machine multiplied their CPU time 10-20 fold here (a ``LogisticRegressionCV``
    of 400 rows: 37 CPU-s with the default threads, 2 s with one).
    """
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(x, y)
