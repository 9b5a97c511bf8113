r"""Pairs of observations from the same group: the weak supervision of match pairing.

The group-tcVAE paper (Tran et al., "Weakly-supervised group disentanglement using total
correlation", Sec. 2) trains on pairs :math:`(x, x')` drawn i.i.d. from one group :math:`g_C`, i.e.
two observations that share the group factors :math:`c`. A pair is a group of :math:`K = 2`, so
the result is a :class:`~pyro_groups.data.GroupedData` with ``x`` ``[P, 2, *event]`` that every
model and guide of the package takes (GVAE and ML-VAE pairs, or the per-member group posteriors of
:mod:`pyro_groups.guides.paired`).

* :func:`pair_indices` -- the pure sampler: indices of two *different* observations with equal
  labels.
* :func:`sample_pairs` -- pairs from a :class:`~pyro_groups.data.GroupedData` (pairs inside its
  groups) or from ``x`` with ``labels`` (pairs inside each label).
* :func:`pairs_from_factors` -- pairs from a factor data set that share a *fixed* set of factors
  (the content :math:`c`) and differ in all others; for pairs sharing ``k`` *random* factors
  (Locatello et al. 2020) use :func:`~pyro_groups.data.factors.pairs_sharing` and its
  ``.grouped()``.

Choice where the paper is silent: by default a pair is drawn uniformly among all unordered pairs
of distinct observations with equal labels (a group of :math:`K_i` observations is chosen with
probability proportional to :math:`K_i (K_i - 1)`); ``weight="groups"`` chooses groups uniformly
and ``weight="observations"`` in proportion to :math:`K_i`. Groups of one observation never give
a pair. The two members are ordered at random.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch

from pyro_groups.data.dataset import GroupedData
from pyro_groups.data.factors import FactorDataset, RngLike, _check_dtype, _grouped, as_rng
from pyro_groups.validation import ArgumentError, check_choice, check_int

__all__ = ["pair_indices", "pairs_from_factors", "sample_pairs"]

WEIGHTS = ("pairs", "groups", "observations")


def _as_numpy(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def pair_indices(
    labels: Any, num_pairs: int, *, rng: RngLike = None, weight: str = "pairs"
) -> torch.Tensor:
    r"""Indices ``[P, 2]`` (int64) of pairs of different observations with equal labels.

    For a chosen group :math:`g` with members :math:`o_0, \dots, o_{K-1}`, the first member is
    :math:`o_i`, :math:`i \sim \mathcal{U}\{0..K-1\}`, the second :math:`o_{(i + 1 + j) \bmod K}`,
    :math:`j \sim \mathcal{U}\{0..K-2\}`: a uniform ordered pair of distinct members.

    :param labels: ``[n]`` group labels (any values ``numpy.unique`` can sort).
    :param num_pairs: number of pairs ``P``.
    :param rng: a seed, numpy or torch generator.
    :param weight: how groups are chosen: ``"pairs"`` (default, uniform over all pairs),
        ``"groups"`` or ``"observations"`` (see the module docstring).
    :raises ValueError: if no label occurs twice, or for a bad ``weight``.
    """
    check_choice(weight, "weight", WEIGHTS)
    num_pairs = check_int(num_pairs, "num_pairs", min=1)
    lab = _as_numpy(labels)
    if lab.ndim != 1:
        raise ArgumentError(f"labels must be one-dimensional, got shape {lab.shape}")
    if lab.dtype.kind == "f" and not np.isfinite(lab).all():
        raise ArgumentError("labels has NaN/inf entries; a NaN is not a group label")
    g = as_rng(rng)
    _, inverse, counts = np.unique(lab, return_inverse=True, return_counts=True)
    eligible = counts >= 2
    if not eligible.any():
        raise ArgumentError("no group has two observations: cannot form pairs")
    c = counts.astype(np.float64)
    w = {"pairs": c * (c - 1), "groups": np.ones_like(c), "observations": c}[weight] * eligible
    groups = g.choice(len(counts), size=num_pairs, p=w / w.sum())
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    k = counts[groups]
    first = np.floor(g.random(num_pairs) * k).astype(np.int64)
    step = 1 + np.floor(g.random(num_pairs) * (k - 1)).astype(np.int64)
    second = (first + step) % k
    idx = np.stack([order[starts[groups] + first], order[starts[groups] + second]], 1)
    return torch.as_tensor(idx, dtype=torch.long)


def sample_pairs(
    data: GroupedData | torch.Tensor,
    num_pairs: int,
    *,
    labels: Optional[Any] = None,
    factors: Optional[Any] = None,
    rng: RngLike = None,
    weight: str = "pairs",
) -> GroupedData:
    """Pairs of observations from the same group, as a :class:`GroupedData` with ``K = 2``.

    Either ``data`` is a :class:`GroupedData` (pairs are drawn inside its groups, padded slots never
    take part) or ``data`` is ``x`` ``[n, *event]`` and ``labels`` ``[n]`` gives each
    observation's group.

    :param factors: with ``x`` and ``labels``: optional per-observation ground truth ``[n, ...]``,
        returned as ``v_true`` ``[P, 2, ...]``.
    :param rng: a seed, numpy or torch generator.
    :param weight: see :func:`pair_indices`.
    :returns: ``x`` ``[P, 2, *event]``, ``mask`` all true; ``u_true`` ``[P, ...]`` is the group's
        ``u_true`` (a :class:`GroupedData` that has one), else its index in ``data`` (for a
        :class:`GroupedData`) or its label (with ``labels``, when they are numeric); ``v_true`` the
        two members' ``v_true`` (or ``factors``) when given.
    """
    if isinstance(data, GroupedData):
        if labels is not None or factors is not None:
            raise ArgumentError(
                "labels and factors are only for raw observations, not a GroupedData"
            )
        valid = data.mask.nonzero()  # [n, 2]: (group, slot) of every real observation
        idx = pair_indices(valid[:, 0].cpu(), num_pairs, rng=rng, weight=weight).to(data.device)
        grp, slot = valid[idx, 0], valid[idx, 1]  # [P, 2]
        x = data.x[grp, slot]
        u = data.u_true[grp[:, 0]] if data.u_true is not None else grp[:, 0]
        v = data.v_true[grp, slot] if data.v_true is not None else None
        return GroupedData(x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device), u, v)
    if labels is None:
        raise ArgumentError(
            "pass labels [n] with raw observations x [n, *event] (or a GroupedData)"
        )
    x = torch.as_tensor(data)
    lab = _as_numpy(labels)
    if lab.shape[:1] != x.shape[:1]:
        n_labels = lab.shape[0] if lab.ndim else 0
        raise ArgumentError(f"labels has {n_labels} entries, x has {x.shape[0]}")
    idx = pair_indices(lab, num_pairs, rng=rng, weight=weight)
    xi = x[idx.to(x.device)]
    u = None
    if np.issubdtype(lab.dtype, np.number):
        u = torch.as_tensor(lab[idx[:, 0].numpy()], device=x.device)
    v = None
    if factors is not None:
        f = torch.as_tensor(factors)
        v = f[idx.to(f.device)]
    mask = torch.ones(xi.shape[:2], dtype=torch.bool, device=x.device)
    return GroupedData(xi, mask, u, v)


def pairs_from_factors(
    data: FactorDataset,
    num_pairs: int,
    shared: Sequence[int | str],
    *,
    rng: RngLike = None,
    distinct: bool = True,
    dtype: torch.dtype = torch.float32,
) -> GroupedData:
    """Pairs that share the factors ``shared`` (the content :math:`c`) and differ in the others.

    The first observation's factors are uniform; the second copies the ``shared`` ones and, with
    ``distinct=True``, re-draws every other factor uniformly among the classes *different* from the
    first's (factors with one class stay equal), so the members differ in every non-content factor,
    as in :func:`~pyro_groups.data.factors.pairs_sharing`. With ``distinct=False`` they are drawn
    independently (this is :func:`~pyro_groups.data.factors.group_by_factors` with groups of 2).

    :param shared: content factors, by name or index (at least one, not all).
    :returns: :class:`GroupedData` with ``x`` ``[P, 2, C, H, W]``, ``u_true`` the shared factor
        classes ``[P, n_shared]`` and ``v_true`` the others ``[P, 2, F - n_shared]`` (int64), in
        the data set's factor order.
    """
    num_pairs = check_int(num_pairs, "num_pairs", min=1)
    _check_dtype(dtype)
    if isinstance(shared, (str, int)):
        shared = [shared]
    cols = sorted({data.factor_index(f) for f in shared})
    if not 0 < len(cols) < data.num_factors:
        raise ArgumentError(
            f"shared must name between 1 and {data.num_factors - 1} factors, got {shared}"
        )
    g = as_rng(rng)
    first = data.sample_factors(num_pairs, g)
    sizes = np.asarray(data.factor_sizes)
    if distinct:
        offset = 1 + (g.random(first.shape) * np.maximum(sizes - 1, 1)).astype(np.int64)
        second = (first + offset) % sizes
    else:
        second = data.sample_factors(num_pairs, g)
    second[:, cols] = first[:, cols]
    rows = np.stack([first, second], 1)
    return _grouped(data, rows, np.full(num_pairs, 2), g, dtype, cols)
