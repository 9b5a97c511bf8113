r"""The ML-VAE paper's qualitative evaluations as tensors: the swap grid (Fig. 4), the 2-D
interpolation grid (Fig. 5 right) and generation (Fig. 5 left). Content is the group code ``u``,
style the instance code ``v``.

Each function shows one observation per group, slot ``member`` (0 by default), and takes its codes
in one of the paper's two strategies (:mod:`pyro_groups.evaluation.evidence`):
``accumulate=True`` (strategy 2, the default) infers the content from the observation's whole
group, ``accumulate=False`` (strategy 1) from the observation alone. The style is inferred given
that content (which matters only for a conditional instance encoder). Codes are posterior means,
or one draw per observation with ``sample=True`` (the paper draws); every grid decodes the *same*
codes, so its known answers (a swap grid's diagonal equals the reconstructions, an interpolation
grid's corners equal the endpoints' reconstructions) hold for draws too.

Any guide with ``group_posterior`` / ``instance_posterior`` works: the presets of
:class:`~pyro_groups.guides.GroupGuide`, :class:`~pyro_groups.guides.paired.PairedGuide`
(content = product of the members' normals), the non-amortised guide (whole known groups only,
i.e. ``accumulate=True``) and the i.i.d. guide (its content is empty: swapping changes nothing).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import nn

from pyro_groups.data.batch import GroupBatch
from pyro_groups.evaluation.codes import decode
from pyro_groups.evaluation.evidence import codes, content_posterior
from pyro_groups.validation import ArgumentError

__all__ = ["SwapGrid", "generate", "interpolation_grid", "member_codes", "swap_grid"]


def _member(batch: GroupBatch, member: int) -> GroupBatch:
    """The groups of ``batch`` that have a real observation in slot ``member``, checked."""
    k = batch.mask.shape[1]
    if not 0 <= member < k:
        raise ArgumentError(f"member must be in [0, {k}) for groups of {k} slots, got {member}")
    if not bool(batch.mask[:, member].all()):
        missing = (~batch.mask[:, member]).nonzero().flatten()[:5].tolist()
        raise ArgumentError(f"groups {missing} have no observation in slot {member}")
    return batch


@torch.no_grad()
def member_codes(
    guide: nn.Module,
    batch: GroupBatch,
    *,
    member: int = 0,
    accumulate: bool = True,
    sample: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Content ``[G, u_dim]`` and style ``[G, v_dim]`` of observation ``member`` of every group,
    the content from the whole group (``accumulate=True``) or from the observation alone."""
    batch = _member(batch, member)
    if not accumulate:
        x = batch.x[:, member : member + 1]
        batch = GroupBatch(x=x, mask=torch.ones(x.shape[:2], dtype=torch.bool, device=x.device))
        member = 0
    u, v = codes(guide, batch, sample=sample)
    return u, v[:, member]


def _decode_pairs(model: nn.Module, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Decode ``B`` (content, style) pairs ``u`` ``[B, u_dim]``, ``v`` ``[B, v_dim]`` ->
    ``[B, *event]``."""
    return decode(model, u, v.unsqueeze(1))[:, 0]


class SwapGrid(NamedTuple):
    """Fig. 4's parts. Rows take the style of ``style_images``, columns the content of
    ``content_images``; ``swapped[r, c]`` decodes (content of column ``c``, style of row ``r``).

    :ivar style_images: ``[R, *event]``, the first column.
    :ivar content_images: ``[C, *event]``, the first row.
    :ivar style_reconstructions: ``[R, *event]``, the second column.
    :ivar content_reconstructions: ``[C, *event]``, the second row.
    :ivar swapped: ``[R, C, *event]``.
    """

    style_images: torch.Tensor
    content_images: torch.Tensor
    style_reconstructions: torch.Tensor
    content_reconstructions: torch.Tensor
    swapped: torch.Tensor


@torch.no_grad()
def swap_grid(
    model: nn.Module,
    guide: nn.Module,
    style: GroupBatch,
    content: Optional[GroupBatch] = None,
    *,
    member: int = 0,
    accumulate: bool = True,
    sample: bool = False,
) -> SwapGrid:
    """The swap grid of ML-VAE's Fig. 4: every style (rows: observation ``member`` of each group
    of ``style``) with every content (columns: each group of ``content``; ``None``: the groups of
    ``style``, so that the diagonal holds the reconstructions).

    .. math:: \\text{swapped}[r, c] = \\mathbb{E}\\, p\\big(x \\mid u = u_c,\\ v = v_r\\big)
    """
    u_s, v_s = member_codes(guide, style, member=member, accumulate=accumulate, sample=sample)
    if content is None:
        content, u_c, v_c = style, u_s, v_s
    else:
        u_c, v_c = member_codes(guide, content, member=member, accumulate=accumulate,
                                sample=sample)
    r, c = len(u_s), len(u_c)
    swapped = _decode_pairs(
        model,
        u_c.unsqueeze(0).expand(r, c, -1).reshape(r * c, -1),
        v_s.unsqueeze(1).expand(r, c, -1).reshape(r * c, -1),
    )
    return SwapGrid(
        style_images=style.x[:, member],
        content_images=content.x[:, member],
        style_reconstructions=_decode_pairs(model, u_s, v_s),
        content_reconstructions=_decode_pairs(model, u_c, v_c),
        swapped=swapped.reshape(r, c, *swapped.shape[1:]),
    )


@torch.no_grad()
def interpolation_grid(
    model: nn.Module,
    guide: nn.Module,
    a: GroupBatch,
    b: GroupBatch,
    steps: int = 5,
    *,
    member: int = 0,
    accumulate: bool = True,
    sample: bool = False,
) -> torch.Tensor:
    """The 2-D interpolation of ML-VAE's Fig. 5 (right) between observation ``member`` of each
    group of ``a`` (top left) and of the matching group of ``b`` (bottom right).

    Row ``i`` fixes the style and column ``j`` the content, both on the straight lines between
    the endpoints' codes, :math:`t_i = i / (S - 1)`:

    .. math:: \\text{grid}[g, i, j] = \\mathbb{E}\\, p\\big(x \\mid
        u = (1 - t_j) u_a + t_j u_b,\\ v = (1 - t_i) v_a + t_i v_b\\big)

    :returns: ``[G, steps, steps, *event]``.
    """
    if steps < 2:
        raise ArgumentError(f"steps must be >= 2, got {steps}")
    if a.num_groups != b.num_groups:
        raise ArgumentError(f"a has {a.num_groups} groups, b {b.num_groups}")
    u_a, v_a = member_codes(guide, a, member=member, accumulate=accumulate, sample=sample)
    u_b, v_b = member_codes(guide, b, member=member, accumulate=accumulate, sample=sample)
    t = torch.linspace(0.0, 1.0, steps, dtype=u_a.dtype, device=u_a.device)
    g = len(u_a)
    w_u = t.view(1, 1, steps, 1)  # content varies along columns j
    w_v = t.view(1, steps, 1, 1)  # style varies along rows i
    u = ((1 - w_u) * u_a.view(g, 1, 1, -1) + w_u * u_b.view(g, 1, 1, -1))
    v = ((1 - w_v) * v_a.view(g, 1, 1, -1) + w_v * v_b.view(g, 1, 1, -1))
    u = u.expand(g, steps, steps, u.shape[-1]).reshape(g * steps * steps, -1)
    v = v.expand(g, steps, steps, v.shape[-1]).reshape(g * steps * steps, -1)
    images = _decode_pairs(model, u, v)
    return images.reshape(g, steps, steps, *images.shape[1:])


def _v_dim(model: nn.Module) -> int:
    for owner in (model, getattr(model, "decoder", None)):
        for name in ("v_dim", "z_dim"):
            if owner is not None and hasattr(owner, name):
                return int(getattr(owner, name))
    raise ArgumentError("the model has no v_dim (nor z_dim, nor decoder.v_dim) to draw styles from")


@torch.no_grad()
def generate(
    model: nn.Module,
    guide: nn.Module,
    batch: GroupBatch,
    num_samples: int = 8,
    *,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """ML-VAE's Fig. 5 (left): decode each group's accumulated content (the mean of
    :math:`q(u \\mid x_1, \\dots, x_K)`) with ``num_samples`` styles drawn from the prior
    :math:`v \\sim \\mathcal{N}(0, I)` (from ``generator`` if given).

    :returns: ``[G, num_samples, *event]``.
    """
    if num_samples < 1:
        raise ArgumentError(f"num_samples must be >= 1, got {num_samples}")
    u = content_posterior(guide, batch.x, batch.mask).mean.squeeze(-2)  # [G, u_dim]
    shape = (batch.num_groups, num_samples, _v_dim(model))
    v = torch.randn(shape, generator=generator, dtype=u.dtype, device="cpu").to(u.device)
    return decode(model, u, v)
