"""BetaVAE score (Higgins et al., 2017)."""
from __future__ import annotations

from typing import Any

import numpy as np

from pyro_groups.evaluation.disentanglement.conventions import (
    Convention,
    ConventionLike,
    fit_quietly,
    logistic_regression,
    resolve_convention,
)
from pyro_groups.evaluation.disentanglement.utils import (
    Represent,
    RngLike,
    SampleFactors,
    as_array,
    check_pair,
    estimator_seed,
    factor_labels,
    fix_factor_per_point,
    make_rng,
    points_fixing_a_factor,
    represent_in_chunks,
    standardize,
)


def _fit_and_score(
    z_train: np.ndarray,
    k_train: np.ndarray,
    z_eval: np.ndarray,
    k_eval: np.ndarray,
    conv: Convention,
    seed: int,
) -> dict[str, float]:
    x_train, x_eval = (z_train, z_eval)
    if conv.beta_vae_standardize:
        x_train, x_eval = standardize(z_train, z_eval)
    model = fit_quietly(logistic_regression(conv, seed), x_train, k_train)
    return {
        "beta_vae_score": float(np.mean(model.predict(x_eval) == k_eval)),
        "beta_vae_train_accuracy": float(np.mean(model.predict(x_train) == k_train)),
    }


def _points_from_sample(
    codes: np.ndarray,
    labels: np.ndarray,
    num_points: int,
    batch_size: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    def mean_abs_difference(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return np.abs(codes[first] - codes[second[:, :, 0]]).mean(axis=1)

    z_diff = np.empty((num_points, codes.shape[1]))
    fixed = points_fixing_a_factor(
        labels, z_diff, mean_abs_difference, rng,
        num_anchors=batch_size, num_partners=1, exclude_anchor=True,
    )
    return z_diff, fixed


def _points_from_sampler(
    represent: Represent,
    sample_factors: SampleFactors,
    num_points: int,
    batch_size: int,
    rng: np.random.Generator,
    chunk_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    first = as_array(sample_factors(num_points * batch_size, rng), name="factors").copy()
    second = as_array(sample_factors(num_points * batch_size, rng), name="factors").copy()
    fixed = fix_factor_per_point(second, first, batch_size, rng)
    codes_first = represent_in_chunks(represent, first, chunk_size)
    codes_second = represent_in_chunks(represent, second, chunk_size)
    diff = np.abs(codes_first - codes_second).reshape(num_points, batch_size, -1)
    return diff.mean(axis=1), fixed


def beta_vae_score(
    codes: Any,
    factors: Any,
    *,
    rng: RngLike = 0,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    convention: ConventionLike = "pyro_groups",
) -> dict[str, float]:
    r"""BetaVAE score of Higgins et al. (2017), "beta-VAE: learning basic visual concepts with a
    constrained variational framework", ICLR, computed from a finite labelled sample.

    One training point: draw a factor index :math:`k` uniformly, draw ``batch_size`` pairs of
    observations whose factor :math:`k` is equal, and take the mean absolute code difference

    .. math::
        z_{\text{diff}} = \frac{1}{L} \sum_{l=1}^{L} \big| z(x_{l,1}) - z(x_{l,2}) \big|,
        \qquad v_k(x_{l,1}) = v_k(x_{l,2}),

    labelled :math:`k`. A linear classifier predicts :math:`k` from :math:`z_{\text{diff}}`; the
    score is its accuracy on ``num_eval`` fresh points. A factor captured by one dimension
    leaves that dimension at zero difference.

    Finite-sample variant (this function): instead of generating observations, the first row of
    each pair is drawn uniformly from the rows given and the second uniformly among the *other*
    rows with the same value of :math:`v_k` (the row itself if its value is unique). The other
    factors of the pair then follow their empirical distribution given :math:`v_k`; for a full
    grid or independent factors this is the paper's sampling. Use
    :func:`beta_vae_score_from_sampler` when new observations can be generated.

    Choices: the classifier is ``LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000)`` on
    features standardised with the training points' statistics (deterministic, multinomial, and
    independent of the codes' scale). ``convention="disentanglement_lib"`` uses Locatello et
    al.'s classifier instead: scikit-learn's old default logistic regression (liblinear,
    one-vs-rest, C = 1, penalised intercept) on the raw features, whose score changes when the
    codes are rescaled. Chance is about :math:`1/K`.
    Defaults (``batch_size=64``, 10,000 / 5,000 points) follow Locatello et al. (2019).

    Cost: about 0.5 s with the defaults for 10,000 rows x 10 codes x 10 factors.

    :param codes: ``[N, D]`` representation.
    :param factors: ``[N, K]`` ground-truth factors (``K >= 2``), treated as discrete.
    :param rng: seed or generator.
    :param batch_size: pairs averaged per point (:math:`L`).
    :param num_train: training points for the classifier.
    :param num_eval: evaluation points.
    :param convention: ``"pyro_groups"`` or ``"disentanglement_lib"`` (see
        :mod:`~pyro_groups.evaluation.disentanglement.conventions`).
    :returns: ``{"beta_vae_score": eval accuracy, "beta_vae_train_accuracy": float}``.
    """
    conv = resolve_convention(convention)
    codes_arr, factors_arr = check_pair(codes, factors)
    labels = factor_labels(factors_arr)
    if labels.shape[1] < 2:
        raise ValueError("the BetaVAE score needs at least two factors")
    gen = make_rng(rng)
    train = _points_from_sample(codes_arr, labels, num_train, batch_size, gen)
    evaluation = _points_from_sample(codes_arr, labels, num_eval, batch_size, gen)
    return _fit_and_score(*train, *evaluation, conv, estimator_seed(gen))


def beta_vae_score_from_sampler(
    represent: Represent,
    sample_factors: SampleFactors,
    *,
    rng: RngLike = 0,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    chunk_size: int = 4096,
    convention: ConventionLike = "pyro_groups",
) -> dict[str, float]:
    r"""BetaVAE score (see :func:`beta_vae_score`) with fresh observations, as in the paper.

    Each pair draws two factor vectors with ``sample_factors``, copies factor :math:`k` of the
    first into the second, and encodes both with ``represent``.

    Cost: ``2 * batch_size * (num_train + num_eval)`` rows go through ``represent`` (1.92
    million with the defaults), which dominates; the classifier costs as in
    :func:`beta_vae_score`.

    :param represent: maps a factor array ``[n, K]`` to codes ``[n, D]``, typically by
        generating observations and encoding them (it may be random; use your own generator).
    :param sample_factors: ``sample_factors(n, rng)`` returns ``n`` factor vectors ``[n, K]``
        drawn from the factor distribution using the numpy generator ``rng``.
    :param rng: seed or generator passed (as a generator) to ``sample_factors``.
    :param batch_size: pairs averaged per point.
    :param num_train: training points.
    :param num_eval: evaluation points.
    :param chunk_size: maximum rows per call of ``represent``.
    :param convention: the classifier's convention (see :func:`beta_vae_score`).
    :returns: ``{"beta_vae_score": eval accuracy, "beta_vae_train_accuracy": float}``.
    """
    conv = resolve_convention(convention)
    gen = make_rng(rng)
    train = _points_from_sampler(represent, sample_factors, num_train, batch_size, gen, chunk_size)
    evaluation = _points_from_sampler(
        represent, sample_factors, num_eval, batch_size, gen, chunk_size
    )
    return _fit_and_score(*train, *evaluation, conv, estimator_seed(gen))
