r"""Guides for pairs: per-member group posteriors (group-tcVAE), GVAE / ML-VAE pair baselines.

group-tcVAE (Tran et al., "Weakly-supervised group disentanglement using total correlation",
Sec. 3) infers the content code of each member of a pair *separately*,

.. math::
    q(u_k, v_k \mid x_k) =
    \mathcal{N}\big(u_k;\, \mu_u(x_k), \operatorname{diag}\sigma_u^2(x_k)\big)\,
    \mathcal{N}\big(v_k;\, \mu_v(x_k), \operatorname{diag}\sigma_v^2(x_k)\big),

and ties the members by :math:`\gamma\,\mathrm{KL}(q(u_1 \mid x_1) \,\|\, q(u_2 \mid x_2))` in the
objective (:mod:`pyro_groups.adversary.group_tc`) instead of averaging them, which the paper
argues is biased and sensitive to the number of observations per group. The baselines of its
Eq. (1) combine the members' normals into one group posterior: the average of means and variances
(GVAE, Hosoya 2019) or the product of normals (ML-VAE, Bouchacourt et al. 2018); they are
:func:`~pyro_groups.guides.make_guide` with ``group="average"`` / ``"product"`` on groups of two.
:func:`pair_guide` builds any of the three by name (with
:func:`~pyro_groups.models.paired.pair_model` for the matching model).

Choice where the paper is vague: the group and instance encoders are separate networks (each with
its own ``body``), as in every guide of :func:`~pyro_groups.guides.make_guide`, so the three pair
models differ only in how the group code is inferred.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn

from pyro_groups.guides.encoders import InstanceEncoder, features, normal_params
from pyro_groups.guides.group_guide import GroupGuide, check_guide_sizes, make_guide
from pyro_groups.models.group_vae import guide_inputs
from pyro_groups.nn import MLP
from pyro_groups.validation import check_choice

__all__ = ["PAIR_KINDS", "PairedGuide", "PerMemberGroupEncoder", "pair_guide"]

#: ``pair_guide`` kinds and the group posterior each uses.
PAIR_KINDS: dict[str, str] = {"group_tcvae": "per-member", "gvae": "average", "mlvae": "product"}


class PerMemberGroupEncoder(nn.Module):
    r"""Group posterior of each member on its own: :math:`q(u_k \mid x_k)`, batch ``[G, K]``.

    :param x_dim: flattened observation size, or the ``body``'s output size.
    :param u_dim: group code size.
    :param hidden: hidden widths of the MLP after the body.
    :param body: optional per-observation feature network (e.g. a convolutional encoder).
    """

    def __init__(
        self,
        x_dim: int,
        u_dim: int,
        hidden: Sequence[int] = (64, 64),
        body: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        self.body = body
        self.net = MLP(x_dim, hidden, 2 * u_dim)

    def observation_posteriors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-observation ``(loc, scale)`` ``[G, K, u_dim]``."""
        return normal_params(self.net(features(x, self.body, self.net.in_dim)))

    def forward(
        self, x: torch.Tensor, mask: Optional[torch.Tensor] = None
    ) -> dist.TorchDistribution:
        """:math:`\\prod_k \\mathcal{N}(\\mu_k, \\sigma_k^2)`, batch ``[G, K]``, event ``[u_dim]``
        (``mask`` is accepted for the group-encoder signature and not needed)."""
        loc, scale = self.observation_posteriors(x)
        return dist.Normal(loc, scale).to_event(1)


class PairedGuide(GroupGuide):
    """Guide of :class:`~pyro_groups.models.paired.PairedVAE`: sites ``"u"`` and ``"v"``, both
    ``[G, K, dim]`` in the ``"groups"`` and ``"instances"`` plates, masked.

    ``group_posterior(x, mask)`` returns the per-member :math:`q(u_k \\mid x_k)` (batch
    ``[G, K]``); ``instance_posterior(x, u)`` is :math:`q(v_k \\mid x_k)` or, with a conditional
    instance encoder, :math:`q(v_k \\mid x_k, u_k)` given the member's own group code. On
    single observations (``K = 1``) :func:`~pyro_groups.evaluation.encode` returns codes shaped as
    for every other guide.

    :param group_encoder: a per-member encoder (:class:`PerMemberGroupEncoder`).
    :param instance_encoder: an :class:`~pyro_groups.guides.encoders.InstanceEncoder`.
    :param name: Pyro name; unique by default.
    """

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        *,
        num_groups: Optional[int] = None,
        group_index: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x, groups, instances = guide_inputs(x, mask, num_groups, group_index)
        with groups, instances, poutine.mask(mask=mask):
            u = pyro.sample("u", self.group_posterior(x, mask))
            v = pyro.sample("v", self.instance_posterior(x, u))
        return u, v


def pair_guide(
    kind: str,
    x_dim: int,
    u_dim: int,
    v_dim: int,
    *,
    instance: str = "unconditional",
    hidden: Sequence[int] = (64, 64),
    body: Optional[Callable[[], nn.Module]] = None,
    name: Optional[str] = None,
) -> GroupGuide:
    """The guide of a pair model by name.

    - ``"group_tcvae"``: :class:`PairedGuide` with per-member group posteriors (use with
      :class:`~pyro_groups.models.paired.PairedVAE` and
      :class:`~pyro_groups.adversary.group_tc.GroupTCVAEPenalty`);
    - ``"gvae"``: ``make_guide(group="average")`` (Hosoya 2019), with
      :class:`~pyro_groups.models.GroupVAE`;
    - ``"mlvae"``: ``make_guide(group="product")`` (Bouchacourt et al. 2018), with ``GroupVAE``.

    :param instance: ``"unconditional"`` (the papers') or ``"conditional"`` on the group code.
    :param body: a factory of a per-observation feature network, called once per encoder;
        ``x_dim`` is then its output size.
    """
    check_choice(kind, "kind", PAIR_KINDS)
    check_guide_sizes(x_dim=x_dim, u_dim=u_dim, v_dim=v_dim, hidden=hidden)
    if kind != "group_tcvae":
        return make_guide(x_dim, u_dim, v_dim, group=PAIR_KINDS[kind], instance=instance,
                          hidden=hidden, body=body, name=name)
    check_choice(instance, "instance", ("conditional", "unconditional"))
    make_body = body or (lambda: None)
    genc = PerMemberGroupEncoder(x_dim, u_dim, hidden, body=make_body())
    cond_dim = u_dim if instance == "conditional" else 0
    ienc = InstanceEncoder(x_dim, v_dim, cond_dim, hidden, body=make_body())
    return PairedGuide(genc, ienc, name=name)
