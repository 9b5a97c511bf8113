"""Helpers shared by the disentanglement metrics.

Array conversion, seeding, train/test splits, histogram discretisation, discrete entropy, the
discrete mutual-information matrix between codes and factors, and the sampling helpers of the
BetaVAE and FactorVAE scores. All information quantities are in nats; every metric that uses
them is a ratio, so the base cancels.
"""
from __future__ import annotations

from typing import Any, Callable, Union

import numpy as np

from pyro_groups.validation import ArgumentError, check_finite_array, check_int

RngLike = Union[int, np.random.Generator, None]
Represent = Callable[[np.ndarray], Any]
SampleFactors = Callable[[int, np.random.Generator], Any]
PointFeatures = Callable[[np.ndarray, np.ndarray], np.ndarray]


def as_array(x: Any, *, name: str = "array", numeric: bool = True) -> np.ndarray:
    """Return ``x`` as a 2-D numpy array ``[N, D]`` with finite entries.

    :param x: array-like or torch tensor (on any device); a 1-D input becomes one column.
    :param name: name used in error messages.
    :param numeric: require numbers (``False`` also admits e.g. string factor labels).
    :raises ArgumentError: if ``x`` has more than two dimensions or NaN / inf entries (naming
        ``name``, the count and the first position), or does not hold numbers when ``numeric``.
    """
    arr = check_finite_array(x, name, ndim=(1, 2), numeric=numeric, allow_empty=True)
    return arr[:, None] if arr.ndim == 1 else arr


def check_pair(codes: Any, factors: Any) -> tuple[np.ndarray, np.ndarray]:
    """The input check of every metric: ``codes`` ``[N, D]`` as float64 and ``factors``
    ``[N, K]`` as an array.

    :raises ArgumentError: naming the argument and the problem, if either is not 1-D / 2-D, holds
        NaN or inf, ``codes`` holds no numbers, the two have different numbers of rows, or there
        are no rows or no columns.
    """
    codes_arr = as_array(codes, name="codes").astype(np.float64)
    factors_arr = as_array(factors, name="factors", numeric=False)
    if codes_arr.shape[0] != factors_arr.shape[0]:
        raise ArgumentError(
            f"codes and factors need the same number of rows, got {codes_arr.shape[0]} "
            f"and {factors_arr.shape[0]}"
        )
    if codes_arr.shape[0] == 0:
        raise ArgumentError("codes and factors are empty (no rows)")
    for name, arr in (("codes", codes_arr), ("factors", factors_arr)):
        if arr.shape[1] == 0:
            raise ArgumentError(f"{name} has no columns (shape {arr.shape})")
    return codes_arr, factors_arr


def make_rng(rng: RngLike) -> np.random.Generator:
    """A numpy ``Generator`` from a seed, ``None`` (fresh entropy) or an existing generator."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def estimator_seed(rng: np.random.Generator) -> int:
    """Draw an integer ``random_state`` for a scikit-learn estimator from ``rng``."""
    return int(rng.integers(2**31 - 1))


def split_indices(
    n: int, test_size: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random disjoint train and test row indices.

    :param n: number of rows.
    :param test_size: fraction of rows in the test part, in ``(0, 1)``.
    :returns: ``(train_idx, test_idx)``; each part holds at least one row.
    """
    n_test = int(round(n * test_size))
    if not 0 < n_test < n:
        raise ArgumentError(f"test_size={test_size} leaves an empty part of {n} rows")
    perm = rng.permutation(n)
    return perm[n_test:], perm[:n_test]


def standardize(
    train: np.ndarray, *others: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Centre and scale columns by the mean and standard deviation of ``train``.

    Constant columns are only centred (scale 1), so they become exactly zero.
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return tuple((a - mean) / std for a in (train, *others))


def factor_labels(factors: Any) -> np.ndarray:
    """Integer labels ``[N, K]``: column ``k`` holds the rank of each value among the distinct
    values of factor ``k`` (so ``0 .. n_k - 1``, ordered as the values sort)."""
    arr = as_array(factors, name="factors", numeric=False)
    out = np.empty(arr.shape, dtype=np.int64)
    for k in range(arr.shape[1]):
        out[:, k] = np.unique(arr[:, k], return_inverse=True)[1].reshape(-1)
    return out


def discretize(codes: Any, num_bins: int = 20) -> np.ndarray:
    r"""Histogram discretisation of each code dimension into ``num_bins`` equal-width bins.

    Column :math:`z_j` is mapped to
    :math:`\min(\lfloor B (z_j - \min z_j) / (\max z_j - \min z_j) \rfloor, B - 1)`, the bins
    of ``np.histogram(z_j, B)``, as in Locatello et al. (2019). A constant column falls in bin 0.

    :param codes: ``[N, D]`` codes.
    :param num_bins: number of bins ``B``.
    :returns: ``[N, D]`` integer bin indices in ``0 .. B - 1``.
    """
    num_bins = check_int(num_bins, "num_bins", min=1)
    arr = as_array(codes, name="codes").astype(np.float64)
    lo = arr.min(axis=0)
    width = arr.max(axis=0) - lo
    scaled = (arr - lo) / np.where(width > 0, width, 1.0)
    return np.clip(np.floor(scaled * num_bins).astype(np.int64), 0, num_bins - 1)


def entropy(labels: Any) -> np.ndarray:
    r"""Empirical entropy (nats) of each column of discrete labels.

    .. math:: H(v_k) = -\sum_a \hat p(a) \log \hat p(a)

    :param labels: ``[N, K]`` non-negative integer labels (see :func:`factor_labels`).
    :returns: ``[K]`` entropies; exactly 0 for a constant column.
    """
    arr = as_array(labels, name="labels")
    n = arr.shape[0]
    out = np.empty(arr.shape[1])
    for k in range(arr.shape[1]):
        p = np.bincount(arr[:, k])
        p = p[p > 0] / n
        out[k] = -np.sum(p * np.log(p))
    return out


def _mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    n = a.shape[0]
    nb = int(b.max()) + 1
    joint = np.bincount(a * nb + b).astype(np.int64)
    joint = np.pad(joint, (0, (-joint.size) % nb)).reshape(-1, nb)
    ca = joint.sum(axis=1, keepdims=True)
    cb = joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    ratio = (joint * n)[nz] / (ca * cb)[nz]
    return max(float(np.sum(joint[nz] / n * np.log(ratio))), 0.0)


def mutual_info_matrix(code_labels: Any, factor_labels: Any) -> np.ndarray:
    r"""Empirical mutual information (nats) between every discrete code and factor column.

    .. math:: I(z_j; v_k) = \sum_{a, b} \hat p(a, b) \log \frac{\hat p(a, b)}{\hat p(a) \hat p(b)}

    computed from integer counts, so independent columns of a full factor grid and constant
    columns give exactly 0.

    :param code_labels: ``[N, D]`` non-negative integer labels, e.g. :func:`discretize` output.
    :param factor_labels: ``[N, K]`` non-negative integer labels.
    :returns: ``[D, K]`` matrix.
    """
    a = as_array(code_labels, name="code_labels").astype(np.int64)
    b = as_array(factor_labels, name="factor_labels").astype(np.int64)
    if a.shape[0] != b.shape[0]:
        raise ArgumentError("code_labels and factor_labels need the same number of rows")
    out = np.empty((a.shape[1], b.shape[1]))
    for j in range(a.shape[1]):
        for k in range(b.shape[1]):
            out[j, k] = _mutual_info(a[:, j], b[:, k])
    return out


def rows_sharing_value(
    labels: np.ndarray,
    anchors: np.ndarray,
    size: int,
    rng: np.random.Generator,
    *,
    exclude_anchor: bool = False,
) -> np.ndarray:
    """For each anchor row, draw ``size`` rows (with replacement) whose label equals its label.

    :param labels: ``[N]`` integer labels of one factor.
    :param anchors: ``[M]`` row indices.
    :param size: rows drawn per anchor.
    :param exclude_anchor: draw among the *other* rows with the anchor's label; an anchor whose
        value occurs once is then returned as its own partner.
    :returns: ``[M, size]`` row indices.
    """
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels)
    starts = np.cumsum(counts) - counts
    values = labels[anchors]
    count = counts[values][:, None]
    start = starts[values][:, None]
    if not exclude_anchor:
        return order[start + rng.integers(0, count, size=(anchors.size, size))]
    rank = np.empty(labels.size, dtype=np.int64)
    rank[order] = np.arange(labels.size)
    pos = rank[anchors][:, None] - start
    r = rng.integers(0, np.maximum(count - 1, 1), size=(anchors.size, size))
    r = np.where(count > 1, r + (r >= pos), pos)
    return order[start + r]


def points_fixing_a_factor(
    labels: np.ndarray,
    out: np.ndarray,
    features: PointFeatures,
    rng: np.random.Generator,
    *,
    num_anchors: int,
    num_partners: int,
    exclude_anchor: bool = False,
) -> np.ndarray:
    r"""Fill ``out`` with the features of points that each hold one factor fixed, drawn from a
    finite labelled sample (the sampling of the finite-sample BetaVAE and FactorVAE scores).

    Point :math:`m` (one of ``M = len(out)``) draws a factor index :math:`k_m` uniformly, then
    ``num_anchors`` (:math:`A`) rows uniformly, then for each anchor ``num_partners``
    (:math:`P`) rows with the anchor's value of :math:`v_{k_m}` (:func:`rows_sharing_value`).
    The points that fix the same factor go together to ``features(anchors, partners)``, with
    ``anchors`` ``[n, A]`` and ``partners`` ``[n, A, P]`` row indices, and its ``[n, ...]``
    result is written to ``out`` at those points. The generator draws all :math:`k_m`, then all
    anchors, then the partners factor by factor.

    :param labels: ``[N, K]`` integer labels (see :func:`factor_labels`).
    :param out: ``[M, ...]`` array written in place.
    :param features: maps the rows of ``n`` points to their ``[n, ...]`` features.
    :param rng: numpy generator.
    :param num_anchors: rows drawn uniformly per point (:math:`A`).
    :param num_partners: rows sharing the fixed value drawn per anchor (:math:`P`).
    :param exclude_anchor: draw partners among the *other* rows (see :func:`rows_sharing_value`).
    :returns: the fixed factor indices :math:`k_m`, ``[M]``.
    """
    num_rows, num_factors = labels.shape
    num_points = out.shape[0]
    fixed = rng.integers(0, num_factors, size=num_points)
    anchors = rng.integers(0, num_rows, size=(num_points, num_anchors))
    for k in range(num_factors):
        points = np.flatnonzero(fixed == k)
        if points.size == 0:
            continue
        partners = rows_sharing_value(
            labels[:, k], anchors[points].reshape(-1), num_partners, rng,
            exclude_anchor=exclude_anchor,
        )
        shape = (points.size, num_anchors, num_partners)
        out[points] = features(anchors[points], partners.reshape(shape))
    return fixed


def fix_factor_per_point(
    factors: np.ndarray, reference: np.ndarray, batch_size: int, rng: np.random.Generator
) -> np.ndarray:
    r"""Hold one factor fixed per point of freshly sampled factors (the sampling of the BetaVAE
    and FactorVAE scores from a sampler).

    ``factors`` ``[M * L, K]`` holds ``M`` points of ``L = batch_size`` consecutive rows. Point
    :math:`m` draws a factor index :math:`k_m` uniformly, and factor :math:`k_m` of each of its
    rows is set, in place, to its value in ``reference``: in the same row for ``[M * L, K]``
    (pairs of rows sharing :math:`v_{k_m}`), in row :math:`m` for ``[M, K]`` (a batch sharing
    one value of :math:`v_{k_m}`). ``reference`` may be a view of ``factors``.

    :returns: the fixed factor indices :math:`k_m`, ``[M]``.
    """
    num_points = factors.shape[0] // batch_size
    fixed = rng.integers(0, factors.shape[1], size=num_points)
    rows = np.arange(num_points * batch_size)
    column = np.repeat(fixed, batch_size)
    source = rows if reference.shape[0] == rows.size else rows // batch_size
    factors[rows, column] = reference[source, column]
    return fixed


def represent_in_chunks(represent: Represent, factors: np.ndarray, chunk_size: int) -> np.ndarray:
    """Codes ``[n, D]`` of ``represent`` applied to ``factors`` ``[n, K]``, ``chunk_size`` rows at
    a time."""
    chunk_size = check_int(chunk_size, "chunk_size", min=1)
    parts = [
        as_array(represent(factors[i : i + chunk_size]), name="codes").astype(np.float64)
        for i in range(0, factors.shape[0], chunk_size)
    ]
    return np.concatenate(parts, axis=0)


def mutual_info_and_entropy(
    codes: Any, factors: Any, num_bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """Discretise ``codes``, label ``factors`` and return ``(I [D, K], H(v) [K])``."""
    codes_arr, factors_arr = check_pair(codes, factors)
    labels = factor_labels(factors_arr)
    return mutual_info_matrix(discretize(codes_arr, num_bins), labels), entropy(labels)
