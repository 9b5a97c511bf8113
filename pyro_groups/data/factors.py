r"""Data sets with ground-truth factors of variation, and the groupings drawn from them.

A *factor data set* has ``num_factors`` discrete factors; factor :math:`j` takes the classes
``0 .. factor_sizes[j] - 1``. Observations are produced from rows of factor classes ``[n, F]``
(int64), so any combination can be drawn; this is the interface of ``disentanglement_lib``
(Locatello et al. 2019) that the BetaVAE / FactorVAE scores sample from.

Groupings (all seeded, all returning :class:`~pyro_groups.data.GroupedData` unless stated):

* :func:`group_by_factors` -- the ``shared`` factors are drawn once per group (the group code
  ``u_true``), the others once per observation (``v_true``); fixed or ragged group sizes.
* :func:`random_groups` -- groups of random observations with nothing shared (UG-VAE batches).
* :func:`pairs_sharing` -- weak supervision of Locatello et al. (2020): two observations that
  share ``k`` randomly chosen factors and differ (re-drawn) in the rest.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch

from pyro_groups.data.dataset import GroupedData
from pyro_groups.validation import (
    ArgumentError,
    ArgumentKeyError,
    ArgumentTypeError,
    check_float,
    check_int,
)

RngLike = Union[int, np.random.Generator, torch.Generator, None]
GroupSize = Union[int, tuple[int, int], Callable[[int, np.random.Generator], np.ndarray]]


def as_rng(rng: RngLike = None) -> np.random.Generator:
    """A numpy ``Generator`` from a seed, ``None`` (fresh entropy), a numpy or a torch generator.

    A ``torch.Generator`` is consumed once to seed a new numpy generator, so the result is
    reproducible from the torch generator's seed.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, torch.Generator):
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=rng)))
    if isinstance(rng, (bool, float, str)):
        raise ArgumentTypeError(
            f"rng must be a seed (int), a numpy or torch generator, or None; got {rng!r}"
        )
    try:
        return np.random.default_rng(rng)
    except (TypeError, ValueError) as e:
        raise ArgumentError(f"rng={rng!r} cannot seed a generator: {e}") from None


class FactorDataset:
    """Base class of the data sets with discrete ground-truth factors.

    Subclasses set ``factor_sizes``, ``factor_names`` and ``observation_shape`` (``(C, H, W)``) and
    implement :meth:`images`.
    """

    factor_sizes: tuple[int, ...] = ()
    factor_names: tuple[str, ...] = ()
    observation_shape: tuple[int, ...] = ()

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def __len__(self) -> int:
        """Number of distinct factor combinations."""
        return int(np.prod(self.factor_sizes))

    def factor_index(self, factor: int | str) -> int:
        """The column of a factor given by name or index."""
        if isinstance(factor, str):
            if factor not in self.factor_names:
                raise ArgumentKeyError(
                    f"unknown factor {factor!r}; factors are {self.factor_names}"
                )
            return self.factor_names.index(factor)
        j = check_int(factor, "factor (a name or an index)")
        if not -self.num_factors <= j < self.num_factors:
            raise ArgumentError(f"factor index {j} out of range for {self.num_factors} factors")
        return j % self.num_factors

    def check_factors(self, factors) -> np.ndarray:
        """``factors`` as int64 ``[n, F]``; raises ``ValueError`` on bad shapes or classes."""
        if isinstance(factors, torch.Tensor):
            factors = factors.detach().cpu().numpy()
        f = np.asarray(factors)
        if f.ndim == 1 and self.num_factors > 0:
            f = f[None]
        if f.ndim != 2 or f.shape[1] != self.num_factors:
            raise ArgumentError(f"factors must have shape [n, {self.num_factors}], got {f.shape}")
        if f.size and not np.issubdtype(f.dtype, np.integer):
            if not np.array_equal(f, np.round(f)):
                raise ArgumentError("factors must be integer classes")
        f = f.astype(np.int64)
        sizes = np.asarray(self.factor_sizes)
        if f.size and (f.min() < 0 or (f >= sizes).any()):
            bad = int(np.argmax(((f < 0) | (f >= sizes)).any(0)))
            raise ArgumentError(
                f"factor {self.factor_names[bad]!r} must be in [0, {sizes[bad]}), "
                f"got values in [{f[:, bad].min()}, {f[:, bad].max()}]"
            )
        return f

    def factor_values(self, factors) -> np.ndarray:
        """The physical values ``[n, F]`` (float64) of factor classes, e.g. a scale or an angle.

        Uses the subclass's ``values`` (one array of values per factor) when it has one, else the
        classes themselves."""
        f = self.check_factors(factors)
        values = getattr(self, "values", None)
        if values is None:
            return f.astype(np.float64)
        return np.stack([np.asarray(v, dtype=np.float64)[f[:, j]] for j, v in enumerate(values)], 1)

    def sample_factors(self, n: int, rng: RngLike = None) -> np.ndarray:
        """``n`` factor rows drawn uniformly and independently, int64 ``[n, F]``."""
        n = check_int(n, "n", min=0)
        g = as_rng(rng)
        return np.stack([g.integers(0, s, size=n) for s in self.factor_sizes], 1).astype(np.int64)

    def images(self, factors) -> torch.Tensor:
        """Observations ``[n, *observation_shape]`` in ``[0, 1]`` of factor rows ``[n, F]``."""
        raise NotImplementedError

    def sample_observations_from_factors(self, factors, rng: RngLike = None) -> torch.Tensor:
        """Observations of factor rows ``[n, F]`` (``rng`` is unused by deterministic renderers)."""
        return self.images(factors)

    def sample(self, n: int, rng: RngLike = None) -> tuple[np.ndarray, torch.Tensor]:
        """``(factors [n, F], observations [n, C, H, W])`` drawn uniformly."""
        g = as_rng(rng)
        f = self.sample_factors(n, g)
        return f, self.sample_observations_from_factors(f, g)


def group_sizes(num_groups: int, group_size: GroupSize, rng: RngLike = None) -> np.ndarray:
    """Draw ``num_groups`` group sizes: an int (fixed), ``(low, high)`` (uniform, inclusive) or a
    callable ``(num_groups, rng) -> sizes`` such as :func:`poisson_sizes`."""
    num_groups = check_int(num_groups, "num_groups", min=1)
    g = as_rng(rng)
    if callable(group_size):
        drawn = np.asarray(group_size(num_groups, g))
        if drawn.dtype.kind not in "iu":
            raise ArgumentTypeError(
                f"group_size callable must return integers, got dtype {drawn.dtype}"
            )
        sizes = drawn.astype(np.int64)
    elif isinstance(group_size, tuple):
        if len(group_size) != 2:
            raise ArgumentError(f"group_size range must be (low, high), got {group_size}")
        low = check_int(group_size[0], "group_size low", min=1)
        high = check_int(group_size[1], "group_size high", min=1)
        if not low <= high:
            raise ArgumentError(
                f"group size range must satisfy 1 <= low <= high, got {group_size}"
            )
        sizes = g.integers(low, high + 1, size=num_groups)
    else:
        size = check_int(group_size, "group_size (an int, a (low, high) range or a callable)")
        if size < 1:
            raise ArgumentError(f"group_size must be >= 1, got {size}")
        sizes = np.full(num_groups, size, dtype=np.int64)
    if sizes.shape != (num_groups,) or (sizes < 1).any():
        raise ArgumentError(f"group sizes must be {num_groups} positive integers")
    return sizes.astype(np.int64)


def poisson_sizes(
    mean: float, min_size: int = 1
) -> Callable[[int, np.random.Generator], np.ndarray]:
    """Ragged sizes ``min_size + Poisson(mean)`` (the Exam-Scores recipe), for ``group_size``."""
    mean = check_float(mean, "mean", min=0.0)
    min_size = check_int(min_size, "min_size", min=1)
    return lambda n, g: min_size + g.poisson(mean, size=n)


def _check_dtype(dtype: torch.dtype) -> None:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ArgumentTypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")


def _grouped(
    data: FactorDataset, rows: np.ndarray, sizes: np.ndarray, g, dtype, shared
) -> GroupedData:
    """Render factor rows ``[G, K, F]`` into a padded :class:`GroupedData`."""
    num_groups, k_max, _ = rows.shape
    mask = torch.as_tensor(np.arange(k_max) < sizes[:, None])
    flat = rows[mask.numpy()]
    obs = data.sample_observations_from_factors(flat, g).to(dtype)
    x = obs.new_zeros((num_groups, k_max, *obs.shape[1:]))
    x[mask] = obs
    rows_t = torch.as_tensor(rows).masked_fill(~mask.unsqueeze(-1), 0)
    rest = [j for j in range(data.num_factors) if j not in (shared or ())]
    u_true = rows_t[:, 0, shared] if shared is not None else None
    return GroupedData(x, mask, u_true=u_true, v_true=rows_t[..., rest])


def group_by_factors(
    data: FactorDataset,
    shared: Sequence[int | str],
    num_groups: int,
    group_size: GroupSize = 8,
    *,
    rng: RngLike = None,
    dtype: torch.dtype = torch.float32,
) -> GroupedData:
    """Groups whose observations share the ``shared`` factors and draw the others independently.

    :param shared: the group factors (names or indices); the rest are instance factors.
    :param group_size: an int, a ``(low, high)`` range or a callable (see :func:`group_sizes`).
    :returns: :class:`GroupedData` with ``x`` ``[G, K, C, H, W]``, ``u_true`` ``[G, n_shared]`` and
        ``v_true`` ``[G, K, F - n_shared]`` (int64 factor classes; padded slots hold 0).
    """
    _check_dtype(dtype)
    g = as_rng(rng)
    if isinstance(shared, (str, int)):
        shared = [shared]
    cols = sorted({data.factor_index(f) for f in shared})
    sizes = group_sizes(num_groups, group_size, g)
    k_max = int(sizes.max())
    rows = data.sample_factors(num_groups * k_max, g).reshape(num_groups, k_max, -1)
    if cols:
        rows[:, :, cols] = rows[:, :1, cols]
    return _grouped(data, rows, sizes, g, dtype, cols)


def random_groups(
    data: FactorDataset,
    num_groups: int,
    group_size: GroupSize = 8,
    *,
    rng: RngLike = None,
    dtype: torch.dtype = torch.float32,
) -> GroupedData:
    """Groups of independent random observations (UG-VAE's random batches): ``u_true`` is
    ``None`` and ``v_true`` ``[G, K, F]`` holds every factor."""
    _check_dtype(dtype)
    g = as_rng(rng)
    sizes = group_sizes(num_groups, group_size, g)
    k_max = int(sizes.max())
    rows = data.sample_factors(num_groups * k_max, g).reshape(num_groups, k_max, -1)
    return _grouped(data, rows, sizes, g, dtype, None)


@dataclass
class FactorPairs:
    """Pairs of observations sharing some factors (Locatello et al. 2020).

    :ivar x1: first observations ``[n, C, H, W]``.
    :ivar x2: second observations ``[n, C, H, W]``.
    :ivar factors1: factor classes of ``x1`` ``[n, F]`` (int64).
    :ivar factors2: factor classes of ``x2`` ``[n, F]``.
    :ivar shared: ``[n, F]`` bool, the factors each pair was made to share.
    """

    x1: torch.Tensor
    x2: torch.Tensor
    factors1: torch.Tensor
    factors2: torch.Tensor
    shared: torch.Tensor

    def __len__(self) -> int:
        return self.x1.shape[0]

    def grouped(self) -> GroupedData:
        """The pairs as groups of two (``u_true`` = the shared-factor mask as float)."""
        x = torch.stack([self.x1, self.x2], 1)
        v = torch.stack([self.factors1, self.factors2], 1)
        mask = torch.ones(x.shape[:2], dtype=torch.bool)
        return GroupedData(x, mask, u_true=self.shared.to(torch.get_default_dtype()), v_true=v)


def pairs_sharing(
    data: FactorDataset,
    num_pairs: int,
    k: Optional[int] = 1,
    *,
    rng: RngLike = None,
    distinct: bool = True,
    dtype: torch.dtype = torch.float32,
) -> FactorPairs:
    """Pairs that share exactly ``k`` randomly chosen factors and differ in the others.

    :param k: number of shared factors, ``0 <= k < F``; ``None`` draws ``k`` uniformly from
        ``1 .. F-1`` for every pair (the "unknown k" setting of Locatello et al. 2020).
    :param distinct: re-draw every non-shared factor so it differs from the first observation's
        (factors with a single class cannot differ and are always shared); with ``False`` the
        non-shared factors are drawn independently and may coincide.
    """
    f = data.num_factors
    num_pairs = check_int(num_pairs, "num_pairs", min=1)
    if k is not None:
        k = check_int(k, "k (the number of shared factors)")
        if not 0 <= k < f:
            raise ArgumentError(f"k must be in [0, {f}), got {k}")
    _check_dtype(dtype)
    g = as_rng(rng)
    ks = np.full(num_pairs, k) if k is not None else g.integers(1, max(f, 2), size=num_pairs)
    order = np.argsort(g.random((num_pairs, f)), axis=1)
    shared = np.zeros((num_pairs, f), dtype=bool)
    np.put_along_axis(shared, order, np.arange(f)[None] < ks[:, None], axis=1)
    first = data.sample_factors(num_pairs, g)
    sizes = np.asarray(data.factor_sizes)
    shared |= sizes[None] == 1
    if distinct:
        offset = 1 + (g.random((num_pairs, f)) * np.maximum(sizes - 1, 1)).astype(np.int64)
        second = (first + offset) % sizes
    else:
        second = data.sample_factors(num_pairs, g)
    second = np.where(shared, first, second)
    x1 = data.sample_observations_from_factors(first, g).to(dtype)
    x2 = data.sample_observations_from_factors(second, g).to(dtype)
    as_t = torch.as_tensor
    return FactorPairs(x1, x2, as_t(first), as_t(second), as_t(shared))
