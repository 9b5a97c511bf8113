r"""Cluster assignments of a mixture model (UG-VAE's site ``"d"``).

Two sources, both under ``torch.no_grad()``:

- ``method="guide"``: the guide's :math:`q(d_i \mid z_i)` (UG-VAE eq. 7) at the posterior mean
  of :math:`q(z_i \mid x_i)` (or a draw), the paper's clustering;
- ``method="model"``: the model's own posterior :math:`p(d_i \mid z_i, \beta) \propto p(d_i)\,
  p(z_i \mid d_i, \beta)` given the guide's posterior means (or draws) of :math:`\beta` and
  :math:`z`, by Pyro's :func:`~pyro.infer.infer_discrete` on the model with ``"u"`` and ``"v"``
  conditioned (``temperature=0``: the most probable cluster; ``1``: a posterior draw). This
  needs no ``q(d | z)``, so it also serves a guide that leaves ``"d"`` to the model.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
from pyro import poutine
from pyro.infer import infer_discrete
from torch import nn

from pyro_groups.data.batch import GroupBatch

Method = Literal["guide", "model"]


def _codes(guide: Any, batch: GroupBatch, sample: bool) -> tuple[torch.Tensor, torch.Tensor]:
    qv = guide.instance_posterior(batch.x)
    v = qv.sample() if sample else qv.mean
    qu = guide.group_posterior(batch.x, batch.mask, v)
    return (qu.sample() if sample else qu.mean), v


@torch.no_grad()
def cluster_probabilities(
    guide: Any, batch: GroupBatch, *, sample: bool = False
) -> torch.Tensor:
    """:math:`q(d_i \\mid z_i)` ``[G, K, C]`` at the mean of :math:`q(z_i \\mid x_i)` (a draw with
    ``sample=True``); padded slots are zero."""
    _, v = _codes(guide, batch, sample)
    probs = guide.cluster_posterior(v).probs
    return probs.masked_fill(~batch.mask.unsqueeze(-1), 0.0)


@torch.no_grad()
def cluster_assignments(
    model: nn.Module,
    guide: Any,
    batch: GroupBatch,
    *,
    method: Method = "guide",
    sample: bool = False,
    temperature: int = 0,
) -> torch.Tensor:
    """Cluster indices ``[G, K]`` (int64; ``-1`` in padded slots).

    :param method: ``"guide"`` (argmax of :math:`q(d \\mid z)`) or ``"model"``
        (:func:`~pyro.infer.infer_discrete` on the model given :math:`\\beta, z`).
    :param sample: condition on draws of :math:`\\beta, z` instead of posterior means.
    :param temperature: ``0`` (MAP) or ``1`` (a draw), for ``method="model"``.
    """
    if method == "guide":
        d = cluster_probabilities(guide, batch, sample=sample).argmax(-1)
    elif method == "model":
        u, v = _codes(guide, batch, sample)
        conditioned = poutine.condition(model, data={"u": u, "v": v})
        discrete = infer_discrete(conditioned, first_available_dim=-3, temperature=temperature)
        trace = poutine.trace(discrete).get_trace(batch.x, batch.mask)
        d = trace.nodes["d"]["value"].expand(batch.mask.shape)
    else:
        raise ValueError(f"method must be 'guide' or 'model', got {method!r}")
    return d.long().masked_fill(~batch.mask, -1)
