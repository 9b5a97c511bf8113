r"""Total correlation by density-ratio estimation: permutations, discriminator and its loss.

The total correlation of a code :math:`z` with respect to a partition of its dimensions into
blocks :math:`z_{B_1}, \dots, z_{B_m}` is

.. math::
    \mathrm{TC}(z) = \mathrm{KL}\Big[q(z) \,\Big\|\, \bar q(z)\Big], \qquad
    \bar q(z) = \prod_{b=1}^{m} q(z_{B_b}).

Samples of :math:`\bar q` come from :func:`permute_dims`; a binary classifier
(:class:`TCDiscriminator`) trained with :func:`discriminator_loss` to tell true codes from
permuted ones has, at its optimum, logit :math:`\log q(z) / \bar q(z)`, so
:func:`tc_estimate`, the mean logit on true codes, estimates the KL (Kim & Mnih 2018, FactorVAE,
Sec. 3). The group-tcVAE paper (Sec. 3) uses three factorisations of :math:`z = [u, v]`
(:func:`tc_blocks`).

As for every adversary, the discriminator owns its optimizer and is trained on detached codes;
the VAE step adds ``beta * tc_estimate(disc(z))`` on non-detached codes.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyro_groups.adversary.estimators import weighted_mean
from pyro_groups.nn import MLP, Activation, Hidden

__all__ = [
    "TC_LEVELS",
    "TCDiscriminator",
    "discriminator_loss",
    "permute_dims",
    "tc_blocks",
    "tc_estimate",
]

TC_LEVELS = ("inter", "inter_intra", "full")


def tc_blocks(u_dim: int, v_dim: int, level: str = "inter", within: str = "v") -> list[list[int]]:
    r"""Blocks of :math:`z = [u, v]` (``u`` first) for the group-tcVAE factorisation levels.

    - ``"inter"`` (paper's level 1): :math:`\bar q = q(u)\, q(v)`, blocks ``[[u dims], [v dims]]``;
      dimensions inside :math:`u` and inside :math:`v` may stay correlated.
    - ``"inter_intra"`` (level 2): :math:`\bar q = q(u) \prod_j q(v_j)` for ``within="v"``
      (or :math:`q(v) \prod_j q(u_j)` for ``within="u"``), as in Creager et al. 2019.
    - ``"full"`` (level 3): :math:`\bar q = \prod_d q(z_d)`, every dimension its own block
      (FactorVAE).

    :param u_dim: group-code dimension.
    :param v_dim: instance-code dimension.
    :param level: one of :data:`TC_LEVELS`.
    :param within: for ``"inter_intra"``, which code is split into single dimensions.
    :return: list of blocks, each a list of dimension indices into ``z``.
    """
    u = list(range(u_dim))
    v = list(range(u_dim, u_dim + v_dim))
    if level == "inter":
        return [u, v]
    if level == "inter_intra":
        if within == "v":
            return [u] + [[d] for d in v]
        if within == "u":
            return [[d] for d in u] + [v]
        raise ValueError(f"within must be 'u' or 'v', got {within!r}")
    if level == "full":
        return [[d] for d in u + v]
    raise ValueError(f"level must be one of {TC_LEVELS}, got {level!r}")


def permute_dims(
    z: Tensor,
    blocks: Sequence[Sequence[int]],
    generator: Optional[torch.Generator] = None,
    mask: Optional[Tensor] = None,
) -> Tensor:
    r"""Samples of :math:`\prod_b q(z_{B_b})`: permute each block independently across the batch.

    Block :math:`b` gets its own random permutation :math:`\pi_b` of the batch, applied to all
    of its dimensions at once: :math:`\tilde z_{n, B_b} = z_{\pi_b(n), B_b}`. Each block's joint
    distribution is kept (even exactly: the multiset of its rows is unchanged), the dependence
    between blocks is destroyed (Kim & Mnih 2018, Alg. 1).

    :param z: ``[..., D]`` codes; all leading dimensions form the batch.
    :param blocks: a partition of ``range(D)``, e.g. from :func:`tc_blocks`.
    :param generator: seeded generator on ``z.device``.
    :param mask: optional ``[...]`` bool; only valid rows are permuted, among themselves, and
        invalid rows are returned unchanged.
    :return: tensor shaped like ``z``.
    """
    D = z.shape[-1]
    flat_blocks = sorted(d for block in blocks for d in block)
    if flat_blocks != list(range(D)):
        raise ValueError(f"blocks must partition range({D}), got {blocks}")
    flat = z.reshape(-1, D)
    N = flat.shape[0]
    if mask is None:
        rows = torch.arange(N, device=z.device)
    else:
        rows = torch.nonzero(mask.reshape(-1)).squeeze(1)
    index = torch.arange(N, device=z.device)[:, None].repeat(1, D)
    for block in blocks:
        perm = rows[torch.randperm(rows.numel(), generator=generator, device=z.device)]
        cols = torch.as_tensor(list(block), device=z.device)
        index[rows[:, None], cols[None, :]] = perm[:, None]
    return flat.gather(0, index).reshape(z.shape)


class TCDiscriminator(nn.Module):
    r"""Classifier of true codes :math:`z \sim q(z)` against permuted ones :math:`z \sim \bar q(z)`.

    Returns the logit :math:`\ell(z) = \log \frac{D(z)}{1 - D(z)}`, which at the optimum of
    :func:`discriminator_loss` equals :math:`\log q(z) / \bar q(z)`.

    :param z_dim: code dimension ``u_dim + v_dim``.
    :param hidden: hidden widths of the MLP.
    :param activation: zero-argument callable making the activation module (a class, or
        e.g. ``functools.partial(nn.LeakyReLU, 0.2)``).
    """

    def __init__(
        self, z_dim: int, hidden: Hidden = (64, 64), activation: Activation = nn.ReLU
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.net = MLP(z_dim, hidden, 1, activation)

    def forward(self, z: Tensor) -> Tensor:
        """Logits ``[...]`` of ``z`` ``[..., z_dim]``."""
        return self.net(z).squeeze(-1)


def discriminator_loss(
    d_true_logits: Tensor,
    d_perm_logits: Tensor,
    true_mask: Optional[Tensor] = None,
    perm_mask: Optional[Tensor] = None,
) -> Tensor:
    r"""Balanced binary cross-entropy: true codes are class 1, permuted codes class 0.

    .. math::
        \mathcal{L}_D = \tfrac12\, \mathbb{E}_{q(z)}\big[\operatorname{softplus}(-\ell(z))\big]
        + \tfrac12\, \mathbb{E}_{\bar q(z)}\big[\operatorname{softplus}(\ell(z))\big],

    i.e. :math:`-\tfrac12(\mathbb{E}_q \log D + \mathbb{E}_{\bar q} \log(1 - D))`. Minimised (over
    all functions) by :math:`\ell^* = \log q / \bar q`, whatever the two batch sizes, since each
    class is averaged separately.

    :param d_true_logits: logits on true codes, any shape.
    :param d_perm_logits: logits on permuted codes, any shape.
    :param true_mask: optional boolean mask or weights for ``d_true_logits``.
    :param perm_mask: optional boolean mask or weights for ``d_perm_logits``.
    :return: scalar loss to minimise with the discriminator's own optimizer.
    """
    return 0.5 * (
        weighted_mean(F.softplus(-d_true_logits), true_mask)
        + weighted_mean(F.softplus(d_perm_logits), perm_mask)
    )


def tc_estimate(logits: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    r"""Density-ratio estimate :math:`\mathrm{TC} \approx \mathbb{E}_{q(z)}[\ell(z)]`.

    .. math::
        \mathrm{KL}[q(z) \,\|\, \bar q(z)] = \mathbb{E}_{q(z)}\Big[\log \frac{q(z)}{\bar q(z)}\Big]
        \approx \mathbb{E}_{q(z)}\Big[\log \frac{D(z)}{1 - D(z)}\Big]

    (Kim & Mnih 2018, eq. 3; group-tcVAE Sec. 3). Not a bound: it is as good as the
    discriminator.

    :param logits: discriminator logits on *true* (unpermuted) codes, any shape.
    :param mask: optional boolean mask or weights (padded codes).
    :return: scalar estimate in nats.
    """
    return weighted_mean(logits, mask)
