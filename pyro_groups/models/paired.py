r"""The group-tcVAE generative model: every member of a pair has its own group code.

In the group-tcVAE paper (Tran et al., "Weakly-supervised group disentanglement using total
correlation", Sec. 3 and Fig. 1) a pair :math:`(x, x')` that shares the group factors :math:`c` has
codes :math:`z = (z_c, z_{\setminus c})` and :math:`z' = (z_{c'}, z_{\setminus c'})`: the content
code is *not* one shared variable (as in GVAE / ML-VAE, :class:`~pyro_groups.models.GroupVAE`),
each member has its own, and the objective ties them with
:math:`\gamma\,\mathrm{KL}(q(z_c \mid x) \,\|\, q(z_{c'} \mid x'))`
(:mod:`pyro_groups.adversary.group_tc`). Each member's ELBO in the paper's Eq. (3) is that of a
VAE with prior :math:`p(z) = \mathcal{N}(0, I)` on the whole code. In this package's names
(:math:`u = z_c`, :math:`v = z_{\setminus c}`), for group :math:`i` with members
:math:`k = 1..K_i` (:math:`K_i = 2` for pairs, any :math:`K` works):

.. math::

    u_{ik} \sim \mathcal{N}(0, I), \qquad v_{ik} \sim \mathcal{N}(0, I), \qquad
    x_{ik} \sim p_\theta(x \mid u_{ik}, v_{ik}).

So the site ``"u"`` has shape ``[G, K, u_dim]`` and sits in *both* plates (``"groups"`` and
``"instances"``), unlike :class:`~pyro_groups.models.GroupVAE`'s ``[G, 1, u_dim]``; the guide to
use is :class:`~pyro_groups.guides.paired.PairedGuide`. The decoders of
:mod:`pyro_groups.models.decoders` and :mod:`pyro_groups.nn_conv` take such ``u`` unchanged.
"""
from __future__ import annotations

from typing import Optional

import pyro
import torch
from pyro import poutine
from torch import nn

from pyro_groups._naming import unique_name
from pyro_groups.models.group_vae import GroupVAE, check_likelihood, prepare_inputs

__all__ = ["PairedVAE", "pair_model"]


class PairedVAE(GroupVAE):
    """Per-member group codes ``p(u_k) p(v_k) p(x_k | u_k, v_k)`` in the group plates (group-tcVAE).

    Sites: ``"u"`` ``[G, K, u_dim]``, ``"v"`` ``[G, K, v_dim]``, ``"x"`` ``[G, K, *event]``, all in
    the ``"groups"`` (dim -2) and ``"instances"`` (dim -1) plates and masked: padded slots
    contribute exactly zero. Subsampled groups are scaled by ``N / G`` as in ``GroupVAE``.

    :param decoder: a decoder module taking ``u`` ``[..., G, K, u_dim]`` and ``v``.
    :param u_dim: group code size (defaults to ``decoder.u_dim``).
    :param v_dim: instance code size (defaults to ``decoder.v_dim``).
    :param name: Pyro name; unique by default.
    """

    def __init__(
        self,
        decoder: nn.Module,
        u_dim: Optional[int] = None,
        v_dim: Optional[int] = None,
        name: Optional[str] = None,
    ) -> None:
        super().__init__(decoder, u_dim, v_dim, name=unique_name("paired_model", name))

    def forward(
        self,
        x: Optional[torch.Tensor],
        mask: torch.Tensor,
        *,
        num_groups: Optional[int] = None,
        group_index: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Run the model on ``x`` ``[G, K, *event]`` (or sample it when ``x`` is ``None``).

        :param num_groups: size ``N`` of the data set this batch of groups was drawn from.
        :returns: the observations (``x`` itself when given).
        """
        x, groups, instances, ref = prepare_inputs(x, mask, num_groups, group_index)
        with groups, instances, poutine.mask(mask=mask):
            u = pyro.sample("u", self.prior(self.u_dim, ref))
            v = pyro.sample("v", self.prior(self.v_dim, ref))
            px = self.decoder(u, v)
            check_likelihood(px, x, mask)
            return pyro.sample("x", px, obs=x)


def pair_model(kind: str, decoder: nn.Module, name: Optional[str] = None) -> GroupVAE:
    """The model of a pair model by name, matching :func:`~pyro_groups.guides.paired.pair_guide`:
    :class:`PairedVAE` for ``"group_tcvae"``, :class:`~pyro_groups.models.GroupVAE` (one shared
    group code per pair) for ``"gvae"`` and ``"mlvae"``."""
    if kind == "group_tcvae":
        return PairedVAE(decoder, name=name)
    if kind in ("gvae", "mlvae"):
        return GroupVAE(decoder, name=name)
    raise ValueError(f"kind must be 'group_tcvae', 'gvae' or 'mlvae', got {kind!r}")
