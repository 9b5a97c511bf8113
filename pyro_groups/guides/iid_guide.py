r"""Amortised encoder guide :math:`q_\phi(z \mid x) = \mathcal{N}(\mu_\phi(x), \operatorname{diag}
\sigma_\phi^2(x))` for :class:`~pyro_groups.models.iid_vae.IIDVAE`.

The encoder is an optional per-observation ``body`` (e.g. the convolutional network of
Locatello et al. 2019, :func:`pyro_groups.nn_conv.conv_body`) followed by an MLP to the location
and (softplus) scale, the same :class:`~pyro_groups.guides.encoders.InstanceEncoder` the group
guides use.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule
from pyro.nn.module import to_pyro_module_
from torch import nn

from pyro_groups._naming import unique_name
from pyro_groups.guides.encoders import InstanceEncoder
from pyro_groups.guides.group_guide import check_guide_sizes
from pyro_groups.models.group_vae import guide_inputs


class IIDGuide(PyroModule):
    r"""Guide with the model's call signature: site ``"z"`` ``[G, K, z_dim]`` in the nested
    ``"groups"`` / ``"instances"`` plates, masked like the model.

    For the evaluation helpers of :mod:`pyro_groups.evaluation.codes` (``encode``,
    ``reconstruct``) it also answers ``group_posterior`` with an empty code ``[G, 1, 0]`` and
    ``instance_posterior`` with :math:`q(z \mid x)`.

    :param x_dim: input features of the MLP: the flattened observation size, or the ``body``'s
        output size.
    :param z_dim: code size.
    :param hidden: hidden widths of the MLP after the body (``()``: one affine layer, as in
        Locatello et al. 2019 after their 256-unit dense layer).
    :param body: a factory of a per-observation feature network (called once), or ``None``.
    :param name: Pyro name; unique by default.
    """

    def __init__(
        self,
        x_dim: int,
        z_dim: int,
        hidden: Sequence[int] = (64, 64),
        *,
        body: Optional[Callable[[], nn.Module]] = None,
        name: Optional[str] = None,
    ) -> None:
        super().__init__(unique_name("iid_guide", name))
        check_guide_sizes(x_dim=x_dim, z_dim=z_dim, hidden=hidden)
        self.z_dim = int(z_dim)
        net = body() if body is not None else None
        self.encoder = InstanceEncoder(x_dim, z_dim, 0, hidden, body=net)
        to_pyro_module_(self)

    def posterior(self, x: torch.Tensor) -> dist.TorchDistribution:
        r""":math:`q(z_k \mid x_k)` with batch shape ``[G, K]`` and event ``[z_dim]``."""
        return self.encoder(x)

    def instance_posterior(
        self, x: torch.Tensor, u: Optional[torch.Tensor] = None
    ) -> dist.TorchDistribution:
        """Alias of :meth:`posterior` (``u`` is ignored), for the evaluation helpers."""
        return self.posterior(x)

    def group_posterior(self, x: torch.Tensor, mask: torch.Tensor) -> dist.TorchDistribution:
        """An empty group code ``[G, 1, 0]`` (the i.i.d. model has none)."""
        zero = x.new_zeros((x.shape[0], 1, 0))
        return dist.Normal(zero, torch.ones_like(zero)).to_event(1)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        *,
        num_groups: Optional[int] = None,
        group_index: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        x, groups, instances = guide_inputs(x, mask, num_groups, group_index)
        with groups, instances, poutine.mask(mask=mask):
            return pyro.sample("z", self.posterior(x))
