"""Encode, reconstruct, translate and swap with a trained guide and model.

Every function works on a :class:`~pyro_groups.data.GroupBatch` (or ``x``, ``mask``) without
Pyro's trace machinery, under ``torch.no_grad()``.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from pyro_groups.data.batch import GroupBatch


@torch.no_grad()
def encode(guide: nn.Module, batch: GroupBatch, *, sample: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Group and instance codes ``(u [G, u_dim], v [G, K, v_dim])``.

    With ``sample=False`` these are posterior means (a conditional instance encoder is given the
    group code's mean); with ``sample=True`` they are draws ``u ~ q(u|x)``, ``v ~ q(v|x, u)``.
    Padded slots of ``v`` are zero.
    """
    qu = guide.group_posterior(batch.x, batch.mask)
    u = qu.sample() if sample else qu.mean
    qv = guide.instance_posterior(batch.x, u)
    v = qv.sample() if sample else qv.mean
    v = v.masked_fill(~batch.mask.unsqueeze(-1), 0.0)
    return u.squeeze(-2), v


@torch.no_grad()
def decode(model: nn.Module, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The decoder's mean for group codes ``u`` ``[G, u_dim]`` and instance codes ``v`` ``[G, K, v_dim]``."""
    return model.decoder.mean(u.unsqueeze(-2), v)


@torch.no_grad()
def reconstruct(model: nn.Module, guide: nn.Module, batch: GroupBatch, *, sample: bool = True) -> torch.Tensor:
    """Reconstructions ``[G, K, *event]`` decoded from sampled (default) or mean codes."""
    u, v = encode(guide, batch, sample=sample)
    return decode(model, u, v)


@torch.no_grad()
def translate(
    model: nn.Module,
    guide: nn.Module,
    source: GroupBatch,
    target: GroupBatch,
    *,
    sample: bool = True,
) -> torch.Tensor:
    """Unsupervised translation (CxVAE Sec. 5.1): source groups' instance codes with the target
    groups' group codes, decoded. Group ``i`` of ``source`` is paired with group ``i`` of ``target``.

    For a conditional instance encoder the source's instance codes are inferred with the source's
    own group code, then combined with the target's.
    """
    if source.num_groups != target.num_groups:
        raise ValueError(f"source has {source.num_groups} groups, target {target.num_groups}")
    _, v_src = encode(guide, source, sample=sample)
    u_tgt, _ = encode(guide, target, sample=sample)
    return decode(model, u_tgt, v_src)


@torch.no_grad()
def swap(model: nn.Module, guide: nn.Module, batch: GroupBatch, perm: Optional[torch.Tensor] = None) -> torch.Tensor:
    """ML-VAE's swap: every group's instance codes decoded with the group code of group ``perm[i]``
    (a cyclic shift by default), from posterior means."""
    u, v = encode(guide, batch, sample=False)
    perm = perm if perm is not None else torch.roll(torch.arange(batch.num_groups, device=u.device), 1)
    return decode(model, u[perm], v)


@torch.no_grad()
def interpolate(
    model: nn.Module, guide: nn.Module, a: GroupBatch, b: GroupBatch, steps: int = 5
) -> torch.Tensor:
    """ML-VAE's interpolation: ``a``'s instance codes decoded with group codes on the line from ``a``'s
    to ``b``'s; returns ``[steps, G, K, *event]``."""
    u_a, v_a = encode(guide, a)
    u_b, _ = encode(guide, b)
    w = torch.linspace(0, 1, steps, device=u_a.device).view(-1, 1, 1)
    u = (1 - w) * u_a + w * u_b
    return torch.stack([decode(model, u_t, v_a) for u_t in u])
