"""Encode, decode, reconstruct, translate, swap and interpolate with a trained guide and model.

Every function takes :class:`~pyro_groups.data.GroupBatch` batches and runs under
``torch.no_grad()``, without Pyro's trace machinery.

Group codes come in two layouts:

- *shared*, ``u`` ``[G, u_dim]``: one code per group. Every
  :class:`~pyro_groups.guides.GroupGuide` (GVAE, ML-VAE, CxVAE, ...) gives these (its group
  posterior has batch shape ``[G, 1]``), and so does the i.i.d. guide (an empty code ``[G, 0]``).
- *per member*, ``u`` ``[G, K, u_dim]``: one code per observation.
  :class:`~pyro_groups.guides.paired.PairedGuide` (group-tcVAE) gives these (its group posterior
  has batch shape ``[G, K]``).

On groups of one observation (``K = 1``) the layouts coincide and :func:`encode` gives the shared
one. :func:`decode` takes either and calls the model's decoder the way the model's ``"x"`` site
does: a shared code as ``[G, 1, u_dim]``, broadcast over the members
(:class:`~pyro_groups.models.GroupVAE`), a per-member code as it is
(:class:`~pyro_groups.models.paired.PairedVAE`).

:func:`translate`, :func:`swap` and :func:`interpolate` move group codes between groups. For
per-member codes, ``members`` sets the rule:

- ``"aligned"`` (default): member ``k`` of a group takes the code of member ``k`` of the other
  group (for pairs: first with first, second with second). Translating a group to itself, or
  swapping with the identity permutation, then gives :func:`reconstruct` from posterior means.
  The other group must have a real member in every slot where this group has one; otherwise
  the function raises ``ValueError`` and you can use ``"mean"``.
- ``"mean"``: every member takes the mean of the other group's real members' codes (their
  posterior means, or their draws when ``sample=True``). This gives one estimate of the shared
  content and works for groups of any size.

Shared codes move unchanged under both rules, so ``members`` has no effect on shared-code
guides.
"""
from __future__ import annotations

from typing import Literal, Optional

import torch
from torch import nn

from pyro_groups.data.batch import GroupBatch

Members = Literal["aligned", "mean"]
MEMBERS: tuple[str, ...] = ("aligned", "mean")


@torch.no_grad()
def encode(
    guide: nn.Module,
    batch: GroupBatch,
    *,
    sample: bool = False,
    per_member: Optional[bool] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Group and instance codes ``(u, v)`` of a batch; ``v`` is ``[G, K, v_dim]``.

    ``u`` has the guide's layout (see the module docstring): ``[G, u_dim]`` for a guide with one
    group code per group, and ``[G, K, u_dim]`` for a guide with one per member when ``K > 1``.
    To get one fixed shape from any guide, pass ``per_member=True`` for ``[G, K, u_dim]`` (a
    shared code is repeated for every member) or ``per_member=False`` for ``[G, u_dim]``
    (per-member codes are averaged over the group's real members).

    With ``sample=False`` the codes are posterior means (a conditional instance encoder gets the
    group code's mean). With ``sample=True`` they are draws ``u ~ q(u|x)``, ``v ~ q(v|x, u)``.
    Padded slots of ``v`` and of a per-member ``u`` are zero.
    """
    qu = guide.group_posterior(batch.x, batch.mask)
    u = qu.sample() if sample else qu.mean
    qv = guide.instance_posterior(batch.x, u)
    v = qv.sample() if sample else qv.mean
    v = v.masked_fill(~batch.mask.unsqueeze(-1), 0.0)
    return _layout(u, batch.mask, per_member), v


def _layout(u: torch.Tensor, mask: torch.Tensor, per_member: Optional[bool]) -> torch.Tensor:
    """Put a group posterior's codes ``u`` ``[G, 1 | K, u_dim]`` into the layout
    that ``per_member`` requests."""
    if u.shape[-2] == 1 and per_member is not True:
        return u.squeeze(-2)
    if u.shape[-2] not in (1, mask.shape[-1]):
        raise ValueError(
            f"the group posterior gives codes {list(u.shape)}: neither [G, 1, u_dim] nor "
            f"[G, K, u_dim] for a batch with mask {list(mask.shape)}"
        )
    u = u.expand(*mask.shape, u.shape[-1]).masked_fill(~mask.unsqueeze(-1), 0.0)
    return _member_mean(u, mask) if per_member is False else u


def _member_mean(u: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean ``[G, u_dim]`` of per-member codes ``u`` ``[G, K, u_dim]`` over real members."""
    w = mask.unsqueeze(-1).to(u.dtype)
    return (u * w).sum(-2) / w.sum(-2).clamp_min(1.0)


@torch.no_grad()
def decode(model: nn.Module, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The decoder's mean ``[G, K, *event]`` for instance codes ``v`` ``[G, K, v_dim]`` and group
    codes ``u``, either shared ``[G, u_dim]`` or per member ``[G, K, u_dim]``.

    The function passes a shared code to ``model.decoder`` as ``[G, 1, u_dim]``, like
    ``GroupVAE``'s ``"u"`` site, and a per-member code unchanged, like ``PairedVAE``'s.

    :raises ValueError: if ``u`` fits neither layout for ``v``, or if a code's size differs from
        the model's ``u_dim`` / ``v_dim``.
    """
    _check_codes(model, u, v)
    return model.decoder.mean(u if u.dim() == v.dim() else u.unsqueeze(-2), v)


def _check_codes(model: nn.Module, u: torch.Tensor, v: torch.Tensor) -> None:
    shared = u.dim() == v.dim() - 1 and u.shape[:-1] == v.shape[:-2]
    per_member = u.dim() == v.dim() and u.shape[:-1] == v.shape[:-1]
    if v.dim() < 3 or not (shared or per_member):
        raise ValueError(
            f"group codes u {list(u.shape)} must be [G, u_dim] or [G, K, u_dim] for instance "
            f"codes v {list(v.shape)} [G, K, v_dim]"
        )
    for name, code in (("u", u), ("v", v)):
        want = getattr(model, f"{name}_dim", None)
        if want is not None and code.shape[-1] != want:
            raise ValueError(
                f"{name} {list(code.shape)} has size {code.shape[-1]}, "
                f"but the model's {name}_dim is {want}"
            )


def _check_members(members: str) -> None:
    if members not in MEMBERS:
        raise ValueError(f"members must be one of {MEMBERS}, got {members!r}")


def _moved(
    u: torch.Tensor, mask: torch.Tensor, other_mask: torch.Tensor, members: str, other: str
) -> torch.Tensor:
    """Group codes ``u`` of other groups (member mask ``other_mask``), for groups with member mask
    ``mask``, under the rule ``members`` (see the module docstring)."""
    if u.dim() == mask.dim():
        return u
    if members == "mean":
        return _member_mean(u, other_mask)
    if u.shape[-2] != mask.shape[-1] or bool((mask & ~other_mask).any()):
        raise ValueError(
            f"members='aligned' gives member k of a group the code of member k of its partner in "
            f"{other}, but {other}'s per-member codes u {list(u.shape)} (mask "
            f"{list(other_mask.shape)}) miss members that the receiving groups (mask "
            f"{list(mask.shape)}) have; use members='mean'"
        )
    return u


def _check_group_counts(a: GroupBatch, b: GroupBatch, names: tuple[str, str]) -> None:
    if a.num_groups != b.num_groups:
        raise ValueError(f"{names[0]} has {a.num_groups} groups, {names[1]} {b.num_groups}")


@torch.no_grad()
def reconstruct(
    model: nn.Module, guide: nn.Module, batch: GroupBatch, *, sample: bool = True
) -> torch.Tensor:
    """Reconstructions ``[G, K, *event]`` decoded from sampled (the default) or mean codes, each
    member with its own group code when the guide gives per-member codes."""
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
    members: Members = "aligned",
) -> torch.Tensor:
    """Unsupervised translation (CxVAE Sec. 5.1): decode the source groups' instance codes with the
    target groups' group codes. Group ``i`` of ``source`` goes with group ``i`` of ``target``.

    For a conditional instance encoder, the function infers the source's instance codes with the
    source's own group code and then combines them with the target's. ``members`` sets how
    per-member target codes reach the source's members (see the module docstring).
    """
    _check_members(members)
    _check_group_counts(source, target, ("source", "target"))
    _, v_src = encode(guide, source, sample=sample)
    u_tgt, _ = encode(guide, target, sample=sample)
    return decode(model, _moved(u_tgt, source.mask, target.mask, members, "target"), v_src)


@torch.no_grad()
def swap(
    model: nn.Module,
    guide: nn.Module,
    batch: GroupBatch,
    perm: Optional[torch.Tensor] = None,
    *,
    members: Members = "aligned",
) -> torch.Tensor:
    """ML-VAE's swap: decode every group's instance codes with the group code of group
    ``perm[i]`` (a cyclic shift by default), from posterior means. ``members`` sets how
    per-member codes are moved; with the identity ``perm`` and ``"aligned"`` this is
    :func:`reconstruct` with ``sample=False``."""
    _check_members(members)
    u, v = encode(guide, batch, sample=False)
    g = batch.num_groups
    perm = torch.roll(torch.arange(g), 1) if perm is None else torch.as_tensor(perm)
    if perm.shape != (g,):
        raise ValueError(
            f"perm must have shape [{g}] (one index per group), got {list(perm.shape)}"
        )
    perm = perm.to(u.device)
    return decode(model, _moved(u[perm], batch.mask, batch.mask[perm], members, "perm"), v)


@torch.no_grad()
def interpolate(
    model: nn.Module,
    guide: nn.Module,
    a: GroupBatch,
    b: GroupBatch,
    steps: int = 5,
    *,
    members: Members = "aligned",
) -> torch.Tensor:
    """ML-VAE's interpolation: decode ``a``'s instance codes with group codes on the line from
    ``a``'s to ``b``'s (posterior means). Returns ``[steps, G, K, *event]``.

    With per-member codes, ``members`` sets both endpoints the same way :func:`translate` does.
    The first step is ``translate(a, a)`` and the last is ``translate(a, b)`` (both with
    ``sample=False``).
    """
    _check_members(members)
    _check_group_counts(a, b, ("a", "b"))
    u_a, v_a = encode(guide, a)
    u_b, _ = encode(guide, b)
    u_a = _moved(u_a, a.mask, a.mask, members, "a")
    u_b = _moved(u_b, a.mask, b.mask, members, "b")
    u_a, u_b = _same_layout(u_a, u_b)
    w = torch.linspace(0, 1, steps, device=u_a.device).view(-1, *([1] * u_a.dim()))
    u = (1 - w) * u_a + w * u_b
    return torch.stack([decode(model, u_t, v_a) for u_t in u])


def _same_layout(u_a: torch.Tensor, u_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeat a shared code over the members when the other code is per member."""
    if u_a.dim() < u_b.dim():
        return u_a.unsqueeze(-2).expand_as(u_b), u_b
    if u_b.dim() < u_a.dim():
        return u_a, u_b.unsqueeze(-2).expand_as(u_a)
    return u_a, u_b
