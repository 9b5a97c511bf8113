r"""Accumulating evidence (ML-VAE paper, Sec. 3.3 and Fig. 6a/b): a group's content posterior
from its observations, and reconstructions from each observation alone against the group.

The paper's two test-time strategies:

- *strategy 1* (``accumulate=False``): every test observation is a group of its own,
  :math:`u \sim q(u \mid x_k)`;
- *strategy 2* (``accumulate=True``): the content is inferred from the whole group,
  :math:`u \sim q(u \mid x_1, \dots, x_K)`; with the product of normals its precision is the sum
  of the observations' precisions, so it sharpens as ``K`` grows.

:func:`content_posterior` gives :math:`q(u \mid \mathbf{x})` with batch shape ``[G, 1]`` for
every guide: a :class:`~pyro_groups.guides.GroupGuide` answers with its own aggregator (product,
average, mixture, DeepSets), a guide with one code per member
(:class:`~pyro_groups.guides.paired.PairedGuide`) with the product of its members' normals, the
i.i.d. guide with an empty code and a non-amortised guide with its group's parameters.
"""
from __future__ import annotations

from typing import NamedTuple

import pyro.distributions as dist
import torch
from torch import nn

from pyro_groups.data.batch import GroupBatch
from pyro_groups.evaluation.codes import decode
from pyro_groups.guides.aggregators import product_of_normals
from pyro_groups.validation import ArgumentError

__all__ = [
    "Evidence",
    "accumulating_evidence",
    "content_posterior",
    "normal_params",
    "reconstruction_nll",
    "single_observations",
    "strategy_reconstruction",
]


def normal_params(q: dist.TorchDistribution) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loc, scale)`` of a diagonal normal (``Normal(...).to_event(1)``).

    :raises ArgumentError: for any other distribution (e.g. a mixture).
    """
    base = q.base_dist if isinstance(q, dist.Independent) else q
    if not isinstance(base, dist.Normal):
        raise ArgumentError(f"expected a diagonal normal posterior, got {type(q).__name__}")
    return base.loc, base.scale


@torch.no_grad()
def content_posterior(guide: nn.Module, x: torch.Tensor, mask: torch.Tensor):
    r""":math:`q(u \mid x_1, \dots, x_K)` of each group of a zero-padded batch, batch shape
    ``[G, 1]``. Per-member posteriors (batch ``[G, K]``, ``K > 1``) are combined by the product
    of normals over the real members (Eq. 7 of the ML-VAE paper)."""
    q = guide.group_posterior(x, mask)
    if q.batch_shape[-1] == 1:
        return q
    loc, scale = normal_params(q)
    loc, scale = product_of_normals(loc, scale, mask)
    return dist.Normal(loc, scale).to_event(1)


def single_observations(batch: GroupBatch) -> tuple[GroupBatch, torch.Tensor]:
    """Every real observation of ``batch`` as a group of one (strategy 1).

    :returns: the batch of ``M`` groups ``[M, 1, *event]`` (in row-major order of the real
        slots; ``u_true`` / ``v_true`` follow) and the ``[M, 2]`` (group, slot) index of each.
    """
    where = batch.mask.nonzero()
    g, k = where[:, 0], where[:, 1]
    single = GroupBatch(
        x=batch.x[g, k].unsqueeze(1),
        mask=torch.ones(len(g), 1, dtype=torch.bool, device=batch.mask.device),
        u_true=batch.u_true[g] if batch.u_true is not None else None,
        v_true=batch.v_true[g, k].unsqueeze(1) if batch.v_true is not None else None,
    )
    return single, where


def _scatter(values: torch.Tensor, where: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Values ``[M, *shape]`` of the real slots ``where`` back into ``[G, K, *shape]`` (zeros in
    the padded slots)."""
    out = values.new_zeros((*mask.shape, *values.shape[1:]))
    out[where[:, 0], where[:, 1]] = values
    return out


@torch.no_grad()
def codes(
    guide: nn.Module, batch: GroupBatch, *, sample: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Content ``[G, u_dim]`` from :func:`content_posterior` and instance codes ``[G, K, v_dim]``
    inferred given it (posterior means, or draws with ``sample=True``; zero in padded slots)."""
    qu = content_posterior(guide, batch.x, batch.mask)
    u = qu.sample() if sample else qu.mean
    qv = guide.instance_posterior(batch.x, u)
    v = qv.sample() if sample else qv.mean
    return u.squeeze(-2), v.masked_fill(~batch.mask.unsqueeze(-1), 0.0)


class Evidence(NamedTuple):
    """Reconstructions ``[G, K, *event]`` of a batch under the two strategies (zeros in padded
    slots): ``alone`` (strategy 1) and ``accumulated`` (strategy 2)."""

    alone: torch.Tensor
    accumulated: torch.Tensor


@torch.no_grad()
def strategy_reconstruction(
    model: nn.Module,
    guide: nn.Module,
    batch: GroupBatch,
    *,
    accumulate: bool = True,
    sample: bool = False,
) -> torch.Tensor:
    """Reconstructions ``[G, K, *event]`` (zeros in padded slots) with the content of each
    observation's group (``accumulate=True``, strategy 2) or of the observation alone
    (strategy 1); the style is inferred given that content."""
    if not accumulate:
        single, where = single_observations(batch)
        u, v = codes(guide, single, sample=sample)
        return _scatter(decode(model, u, v)[:, 0], where, batch.mask)
    u, v = codes(guide, batch, sample=sample)
    keep = batch.mask.view(*batch.mask.shape, *[1] * (batch.x.dim() - 2))
    return decode(model, u, v).masked_fill(~keep, 0.0)


@torch.no_grad()
def accumulating_evidence(
    model: nn.Module, guide: nn.Module, batch: GroupBatch, *, sample: bool = False
) -> Evidence:
    """Fig. 6a/b: reconstruct every observation from its own content (strategy 1) and from the
    content accumulated over its group (strategy 2), with :func:`strategy_reconstruction`.

    With posterior means (``sample=False``, default) the two agree exactly on groups of one.
    """
    return Evidence(
        strategy_reconstruction(model, guide, batch, accumulate=False, sample=sample),
        strategy_reconstruction(model, guide, batch, accumulate=True, sample=sample),
    )


@torch.no_grad()
def reconstruction_nll(
    model: nn.Module,
    guide: nn.Module,
    batch: GroupBatch,
    *,
    accumulate: bool = True,
    draws: int = 1,
) -> torch.Tensor:
    r"""Per-observation reconstruction negative log-likelihood ``[G, K]`` (nats; 0 in padded
    slots), averaged over ``draws`` draws of the codes:

    .. math:: -\frac{1}{S}\sum_{s=1}^{S} \log p(x_k \mid u^{(s)}, v_k^{(s)}), \qquad
        u^{(s)} \sim q(u \mid \cdot),\ v_k^{(s)} \sim q(v_k \mid x_k, u^{(s)})

    with the content from the whole group (``accumulate=True``, strategy 2) or from ``x_k``
    alone (strategy 1). The ELBO's reconstruction term, without the KL.
    """
    if draws < 1:
        raise ArgumentError(f"draws must be >= 1, got {draws}")
    if not accumulate:
        single, where = single_observations(batch)
        nll = reconstruction_nll(model, guide, single, draws=draws)[:, 0]
        return _scatter(nll, where, batch.mask)
    total = batch.mask.new_zeros(batch.mask.shape, dtype=batch.x.dtype)
    for _ in range(draws):
        u, v = codes(guide, batch, sample=True)
        u = u if u.dim() == v.dim() else u.unsqueeze(-2)
        total -= model.decoder(u, v).log_prob(batch.x)
    return (total / draws).masked_fill(~batch.mask, 0.0)
