r"""Critics :math:`T` for the mutual-information penalties between instance codes and groups.

Two forms, both scoring the same grid of anchors :math:`(i, k)` of a padded batch
``x`` ``[G, K, x_dim]``, ``mask`` ``[G, K]``, codes ``v`` ``[G, K, v_dim]``:

- :class:`PairCritic`, the one-observation form of Németh (2020) (CxVAE paper, Sec. 2.3):
  :math:`I_r(x, v)` between an observation :math:`x_{ik}` and the instance code
  :math:`v_{il}` of another observation :math:`l \ne k` of the same group.
- :class:`SetCritic`, the set-based form of CxVAE (Sec. 4, eq. 3): :math:`I_r(\mathbf{x}_{-k},
  v_k)` between the rest of the group :math:`\mathbf{x}_{i,-k}` and the code :math:`v_{ik}`.

Only groups with at least two valid observations have a non-empty :math:`\mathbf{x}_{-k}` (or
another member :math:`l \ne k`); the others are left out of both expectations and counted in
``num_excluded_groups`` so the caller can warn. Padded slots never enter a pair. Feed the
returned scores to :mod:`pyro_groups.adversary.estimators` with ``mask`` for both arguments.

Marginal pairs follow the papers' recipe "choose two groups :math:`i \ne j`, an instance
:math:`k` in :math:`i` and :math:`l` in :math:`j`" exactly as follows: every eligible anchor
:math:`(i, k)` draws :math:`(j, l)` uniformly among all valid observations of the *other*
eligible groups. Hence the code marginal of the negatives matches that of the joint pairs (uniform
over eligible observations) up to the exclusion of the anchor's own group.

A critic step, on detached codes::

    s = critic(x, mask, v.detach(), generator)      # SetCritic; PairCritic.group_scores alike
    loss = -dv_bound(s.joint, s.marginal, s.mask, s.mask)
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from pyro_groups.data.batch import zero_padding
from pyro_groups.nn import MLP, Activation, Hidden

__all__ = [
    "CriticScores",
    "PairCritic",
    "PairIndices",
    "SetCritic",
    "sample_pairs",
]


class PairIndices(NamedTuple):
    """Index grids from :func:`sample_pairs`, all ``[G, K]``.

    :ivar joint_slot: :math:`l \\ne k`, a valid slot of the anchor's own group.
    :ivar marginal_group: :math:`j \\ne i`, another eligible group.
    :ivar marginal_slot: :math:`l`, a valid slot of group ``marginal_group``.
    :ivar mask: eligible anchors: valid slots of groups with at least two valid observations.
        Entries of the index grids outside it point at the anchor itself and must be ignored.
    :ivar num_excluded_groups: 0-d long tensor, groups with exactly one valid observation
        (fully padded groups hold no data and are not counted).
    """

    joint_slot: Tensor
    marginal_group: Tensor
    marginal_slot: Tensor
    mask: Tensor
    num_excluded_groups: Tensor


class CriticScores(NamedTuple):
    """Critic scores on the anchor grid, all ``[G, K]``.

    :ivar joint: :math:`T` on joint pairs.
    :ivar marginal: :math:`T` on marginal pairs (code from another group).
    :ivar mask: eligible anchors; pass it as both ``joint_mask`` and ``marginal_mask``.
    :ivar num_excluded_groups: 0-d long tensor, see :class:`PairIndices`.
    """

    joint: Tensor
    marginal: Tensor
    mask: Tensor
    num_excluded_groups: Tensor


def _uniform_below(n: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    """Independent uniform integers in ``[0, n)`` for every entry of ``n`` (``n >= 1``)."""
    u = torch.rand(n.shape, generator=generator, device=n.device)
    return torch.minimum((u * n).long(), n - 1)


def sample_pairs(mask: Tensor, generator: Optional[torch.Generator] = None) -> PairIndices:
    r"""Sample one joint and one marginal partner for every eligible anchor :math:`(i, k)`.

    - Joint (:math:`r(x, v)`, Németh): :math:`l` uniform over the valid slots of group :math:`i`
      other than :math:`k`; the pair is :math:`(x_{ik}, v_{il})`. (The set-based joint pair
      :math:`(\mathbf{x}_{i,-k}, v_{ik})` needs no partner.)
    - Marginal (:math:`r(x) r(v)`): :math:`(j, l)` uniform over all valid slots of eligible
      groups :math:`j \ne i`, so groups are weighted by their size.

    Sampling is exact and vectorised: the draw is a uniform integer over the candidates with the
    excluded ones (slot :math:`k`, or group :math:`i`'s contiguous block) skipped.

    :param mask: ``[G, K]`` bool, valid slots.
    :param generator: seeded generator on ``mask.device`` for reproducible draws.
    :return: :class:`PairIndices`.
    :raises ValueError: if fewer than two groups are eligible and no marginal pair exists.
    """
    if mask.dim() != 2 or mask.dtype != torch.bool:
        raise ValueError("mask must be a [G, K] bool tensor")
    G, K = mask.shape
    counts = mask.sum(1)
    eligible_group = counts >= 2
    anchors = mask & eligible_group[:, None]
    n_groups = int(eligible_group.sum())
    if n_groups < 2:
        raise ValueError(f"need at least two groups with two valid observations, got {n_groups}")
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    rank = mask.long().cumsum(1) - 1
    r = _uniform_below((counts - 1).clamp(min=1)[:, None].expand(G, K), generator)
    r = r + (r >= rank).long()
    joint_slot = torch.where(anchors, order.gather(1, r.clamp(max=K - 1)), _arange_like(mask))
    flat = anchors.reshape(-1)
    flat_pos = torch.nonzero(flat).squeeze(1)
    eligible_counts = torch.where(eligible_group, counts, torch.zeros_like(counts))
    start = eligible_counts.cumsum(0) - eligible_counts
    total = eligible_counts.sum()
    n_own = eligible_counts[:, None].expand(G, K)
    r = _uniform_below((total - n_own).clamp(min=1), generator)
    r = r + n_own * (r >= start[:, None]).long()
    picked = flat_pos[r.clamp(max=flat_pos.numel() - 1)]
    own_group = torch.arange(G, device=mask.device)[:, None].expand(G, K)
    return PairIndices(
        joint_slot=joint_slot,
        marginal_group=torch.where(anchors, picked // K, own_group),
        marginal_slot=torch.where(anchors, picked % K, _arange_like(mask)),
        mask=anchors,
        num_excluded_groups=(counts == 1).sum(),
    )


def _arange_like(mask: Tensor) -> Tensor:
    G, K = mask.shape
    return torch.arange(K, device=mask.device)[None, :].expand(G, K)


class _Anchors(NamedTuple):
    """The eligible anchors of a ``[G, K]`` grid, ``index = (g, k)``, each ``[A]``; or of ``R``
    stacked grids ``[R, G, K]`` (replicates), ``index = (r, g, k)``, each ``[R, A]`` with ``A`` the
    largest replicate's count: a replicate with fewer anchors repeats its first one, marked
    invalid in ``valid`` (``None`` without replicates), so that every replicate's networks see
    ``[R, A, ...]`` and read real anchors only."""

    index: tuple[Tensor, ...]
    valid: Optional[Tensor]


def _anchors(mask: Tensor) -> _Anchors:
    if mask.dim() == 2:
        return _Anchors(mask.nonzero(as_tuple=True), None)
    R, G, K = mask.shape
    flat = mask.reshape(R, G * K)
    counts = flat.sum(1)
    order = torch.argsort((~flat).to(torch.int8), dim=1, stable=True)[:, : int(counts.max())]
    valid = torch.arange(order.shape[1], device=mask.device)[None, :] < counts[:, None]
    pos = torch.where(valid, order, order[:, :1])
    rep = torch.arange(R, device=mask.device)[:, None].expand_as(pos)
    return _Anchors((rep, pos // K, pos % K), valid)


def _scores_on_grid(
    joint: Tensor, marginal: Tensor, idx: PairIndices, anchors: _Anchors
) -> CriticScores:
    """Scores computed at the eligible anchors only, put on the ``[G, K]`` (``[R, G, K]``) grid
    (zero elsewhere)."""
    grid = joint.new_zeros(idx.mask.shape)
    if anchors.valid is not None:
        joint = torch.where(anchors.valid, joint, torch.zeros_like(joint))
        marginal = torch.where(anchors.valid, marginal, torch.zeros_like(marginal))
    accumulate = anchors.valid is not None  # repeated (invalid, zero) anchors add nothing
    return CriticScores(
        joint=grid.index_put(anchors.index, joint, accumulate=accumulate),
        marginal=grid.index_put(anchors.index, marginal, accumulate=accumulate),
        mask=idx.mask,
        num_excluded_groups=idx.num_excluded_groups,
    )


def _partner_codes(v: Tensor, group: Tensor, slot: Tensor, anchors: _Anchors) -> Tensor:
    """``v`` at each anchor's partner ``(group, slot)`` (grids ``[G, K]`` or ``[R, G, K]``)."""
    lead = anchors.index[:-2]
    return v[(*lead, group[anchors.index], slot[anchors.index])]


class PairCritic(nn.Module):
    r"""One-observation critic :math:`T(x, v)` (Németh 2020; CxVAE paper, Sec. 2.3, eq. 2).

    An MLP on the concatenation :math:`[x, v]`.

    :param x_dim: observation features (flatten images first).
    :param v_dim: instance-code dimension.
    :param hidden: hidden widths of the MLP, an int for one layer.
    :param activation: zero-argument callable making the activation module.
    """

    def __init__(
        self, x_dim: int, v_dim: int, hidden: Hidden = (64, 64), activation: Activation = nn.ReLU
    ) -> None:
        super().__init__()
        self.x_dim, self.v_dim = x_dim, v_dim
        self.net = MLP(x_dim + v_dim, hidden, 1, activation)

    def forward(self, x: Tensor, v: Tensor) -> Tensor:
        """Scores ``T(x, v)`` of ``x`` ``[..., x_dim]`` and ``v`` ``[..., v_dim]``, broadcast."""
        shape = torch.broadcast_shapes(x.shape[:-1], v.shape[:-1])
        x = x.expand(*shape, self.x_dim)
        v = v.expand(*shape, self.v_dim)
        return self.net(torch.cat([x, v], dim=-1)).squeeze(-1)

    def score_matrix(self, x: Tensor, v: Tensor) -> Tensor:
        """All pairs ``S[i, j] = T(x_i, v_j)`` of ``x`` ``[B, x_dim]``, ``v`` ``[B, v_dim]``.

        The input of :func:`~pyro_groups.adversary.estimators.infonce_bound`. Costs ``B**2``
        critic evaluations.
        """
        return self(x[:, None, :], v[None, :, :])

    def group_scores(
        self,
        x: Tensor,
        mask: Tensor,
        v: Tensor,
        generator: Optional[torch.Generator] = None,
        *,
        pairs: Optional[PairIndices] = None,
    ) -> CriticScores:
        r"""Scores on a padded batch: joint :math:`T(x_{ik}, v_{il})`, marginal
        :math:`T(x_{ik}, v_{jl})`, pairs drawn by :func:`sample_pairs`.

        :param x: ``[G, K, x_dim]``.
        :param mask: ``[G, K]`` bool.
        :param v: ``[G, K, v_dim]`` instance codes (detach them for the critic step).
        :param generator: seeded generator for :func:`sample_pairs`.
        :param pairs: pairs drawn beforehand (then ``generator`` is unused); with them, ``x``,
            ``mask``, ``v`` and the pairs may carry a leading replicate dimension ``[R, G, K]``
            (a critic of :func:`~pyro_groups.nn_replicated.stack_modules`).
        :return: :class:`CriticScores`; entries outside ``mask`` are zero.
        """
        idx = pairs if pairs is not None else sample_pairs(mask, generator)
        a = _anchors(idx.mask)
        xa = x[a.index]
        joint = self(xa, v[(*a.index[:-1], idx.joint_slot[a.index])])
        marginal = self(xa, _partner_codes(v, idx.marginal_group, idx.marginal_slot, a))
        return _scores_on_grid(joint, marginal, idx, a)


class SetCritic(nn.Module):
    r"""Set-based DeepSets critic of CxVAE (Sec. 4, eq. 3).

    .. math::
        T(\mathbf{x}_{-k}, v_k) = T^\beta\Big(v_k,\; \frac{1}{K_i} \sum_{l \ne k} T^\alpha(x_l)\Big)

    with :math:`K_i` the number of valid observations of the group (the paper's :math:`1/K`; the
    leave-one-out sum has :math:`K_i - 1` terms, so the group size stays visible to the critic;
    ``normalise="K-1"`` gives the plain leave-one-out mean). The pooled features of every
    :math:`k` come from one pass: the masked sum over the group minus the own term.

    :param x_dim: observation features.
    :param v_dim: instance-code dimension.
    :param hidden: hidden widths of both :math:`T^\alpha` and :math:`T^\beta`.
    :param feature_dim: output width of :math:`T^\alpha`; defaults to the last hidden width.
    :param normalise: ``"K"`` (paper) or ``"K-1"``.
    :param activation: zero-argument callable making the activation module.
    """

    def __init__(
        self,
        x_dim: int,
        v_dim: int,
        hidden: Hidden = (64, 64),
        feature_dim: Optional[int] = None,
        normalise: str = "K",
        activation: Activation = nn.ReLU,
    ) -> None:
        super().__init__()
        if normalise not in ("K", "K-1"):
            raise ValueError(f"normalise must be 'K' or 'K-1', got {normalise!r}")
        widths = [hidden] if isinstance(hidden, int) else list(hidden)
        feature_dim = feature_dim if feature_dim is not None else widths[-1]
        self.x_dim, self.v_dim, self.normalise = x_dim, v_dim, normalise
        self.t_alpha = MLP(x_dim, widths, feature_dim, activation)
        self.t_beta = MLP(v_dim + feature_dim, widths, 1, activation)

    def pooled(self, x: Tensor, mask: Tensor) -> Tensor:
        r"""Leave-one-out pooled features :math:`\frac{1}{K_i}\sum_{l \ne k} T^\alpha(x_{il})`.

        :param x: ``[G, K, x_dim]``; padded slots may hold anything.
        :param mask: ``[G, K]`` bool.
        :return: ``[G, K, feature_dim]``, zero at padded slots.
        """
        m = mask[..., None]
        h = self.t_alpha(zero_padding(x, mask))
        h = torch.where(m, h, torch.zeros_like(h))
        loo = h.sum(1, keepdim=True) - h
        counts = mask.sum(1).to(h.dtype)[:, None, None]
        denom = counts if self.normalise == "K" else counts - 1
        return torch.where(m, loo / denom.clamp(min=1), torch.zeros_like(loo))

    def score(self, v: Tensor, pooled: Tensor) -> Tensor:
        """:math:`T^\\beta(v, \\text{pooled})`: ``[..., v_dim]``, ``[..., F]`` -> ``[...]``."""
        return self.t_beta(torch.cat([v, pooled], dim=-1)).squeeze(-1)

    def forward(
        self,
        x: Tensor,
        mask: Tensor,
        v: Tensor,
        generator: Optional[torch.Generator] = None,
        *,
        pairs: Optional[PairIndices] = None,
    ) -> CriticScores:
        r"""Joint :math:`T(\mathbf{x}_{i,-k}, v_{ik})` and marginal
        :math:`T(\mathbf{x}_{i,-k}, v_{jl})` scores.

        The marginal code :math:`v_{jl}` is drawn by :func:`sample_pairs` (uniform over valid
        slots of other eligible groups).

        :param x: ``[G, K, x_dim]``.
        :param mask: ``[G, K]`` bool.
        :param v: ``[G, K, v_dim]`` instance codes (detach them for the critic step).
        :param generator: seeded generator for the marginal draw.
        :param pairs: pairs drawn beforehand, as for :meth:`PairCritic.group_scores` (a leading
            replicate dimension allowed).
        :return: :class:`CriticScores`; entries outside ``mask`` are zero.
        """
        idx = pairs if pairs is not None else sample_pairs(mask, generator)
        a = _anchors(idx.mask)
        h = self.t_alpha(x[a.index])
        group = a.index[-2] if a.valid is None else a.index[0] * mask.shape[-2] + a.index[1]
        h_sum = h if a.valid is None else torch.where(a.valid[..., None], h, torch.zeros_like(h))
        total = h.new_zeros(mask.shape[:-1].numel(), h.shape[-1])
        total = total.index_add(0, group.flatten(), h_sum.flatten(0, -2))
        counts = mask.sum(-1).to(h.dtype)[a.index[:-1]][..., None]
        pooled = (total[group] - h) / (counts if self.normalise == "K" else counts - 1)
        joint = self.score(v[a.index], pooled)
        marginal = self.score(_partner_codes(v, idx.marginal_group, idx.marginal_slot, a), pooled)
        return _scores_on_grid(joint, marginal, idx, a)

    group_scores = forward
