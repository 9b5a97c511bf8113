r"""The i.i.d. VAE of the unsupervised disentanglement baselines (Locatello et al. 2019).

One code per observation, no group structure in the prior:

.. math:: z_{ik} \sim \mathcal{N}(0, I), \qquad x_{ik} \sim p_\theta(x \mid z_{ik}).

The model keeps the package's call signature ``(x, mask, *, num_groups=None)`` and its nested
``"groups"`` (dim -2) / ``"instances"`` (dim -1) plates, so it takes any
:class:`~pyro_groups.data.GroupBatch`: groups of one (the usual i.i.d. minibatch), random batches
or real groups (whose grouping it then ignores). Padded slots are masked and contribute exactly
zero; a subsampled ``"groups"`` plate scales the batch to the data-set size.

Decoders keep the group-model interface ``decoder(u, v)``: the model hands the decoder an empty
group code ``u`` ``[..., G, 1, 0]`` and ``z`` as the instance code, so any decoder built with
``u_dim=0`` (``ConvDecoder(0, z_dim)``, ``MLPDecoder(0, z_dim, x_dim)``) works unchanged.
"""
from __future__ import annotations

from typing import Optional

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule
from pyro.nn.module import to_pyro_module_
from torch import nn

from pyro_groups._naming import unique_name
from pyro_groups.models.group_vae import check_likelihood, code_size, prepare_inputs
from pyro_groups.validation import ArgumentError


def empty_group_code(z: torch.Tensor) -> torch.Tensor:
    """The size-0 group code ``[..., G, 1, 0]`` that goes with codes ``z`` ``[..., G, K, D]``."""
    return z.new_zeros((*z.shape[:-2], 1, 0))


class IIDVAE(PyroModule):
    r"""VAE with an i.i.d. standard normal prior, :math:`p(z) p_\theta(x \mid z)` per observation.

    Sites: ``"z"`` ``[G, K, z_dim]`` (``to_event(1)``) and ``"x"`` ``[G, K, *event]``, both inside
    the ``"groups"`` and ``"instances"`` plates and masked by ``mask``.

    :param decoder: a decoder module with the interface of :mod:`pyro_groups.models.decoders`,
        built with a group code of size 0 (it receives ``u`` ``[..., G, 1, 0]`` and ``v = z``).
    :param z_dim: code size (defaults to ``decoder.v_dim``).
    :param name: Pyro name; unique by default so that models can coexist in one process.
    :raises ValueError: if the decoder expects a non-empty group code.
    """

    def __init__(
        self, decoder: nn.Module, z_dim: Optional[int] = None, name: Optional[str] = None
    ) -> None:
        super().__init__(unique_name("iid_model", name))
        if int(getattr(decoder, "u_dim", 0)) != 0:
            raise ArgumentError(
                "IIDVAE's decoder must take an empty group code (u_dim=0), got "
                f"u_dim={decoder.u_dim}; build it as e.g. ConvDecoder(0, z_dim)"
            )
        self.decoder = decoder
        self.z_dim = code_size(decoder, "v_dim", z_dim, "IIDVAE")
        to_pyro_module_(self)

    def prior(self, like: torch.Tensor) -> dist.TorchDistribution:
        zero = like.new_zeros(self.z_dim)
        return dist.Normal(zero, torch.ones_like(zero)).to_event(1)

    def likelihood(self, z: torch.Tensor) -> dist.TorchDistribution:
        r""":math:`p_\theta(x \mid z)` for codes ``z`` ``[..., G, K, z_dim]``."""
        return self.decoder(empty_group_code(z), z)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean for codes ``z`` ``[..., G, K, z_dim]``."""
        return self.decoder.mean(empty_group_code(z), z)

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
            z = pyro.sample("z", self.prior(ref))
            px = self.likelihood(z)
            check_likelihood(px, x, mask)
            return pyro.sample("x", px, obs=x)
