r"""FactorVAE (Kim & Mnih 2018): the total correlation estimated by a density-ratio discriminator.

.. math::
    \mathcal{L} = -\mathrm{ELBO} + \gamma\, \hat N\, \widehat{\mathrm{TC}}, \qquad
    \widehat{\mathrm{TC}} = \mathbb{E}_{q(z)}\Big[\log \frac{D(z)}{1 - D(z)}\Big]
    \approx \mathrm{KL}\Big(q(z) \,\Big\|\, \prod_j q(z_j)\Big),

where the discriminator :math:`D` (:class:`~pyro_groups.adversary.tc.TCDiscriminator`) is trained
to tell codes :math:`z \sim q(z)` from codes with every dimension permuted across the batch
(:func:`~pyro_groups.adversary.tc.permute_dims`, samples of :math:`\prod_j q(z_j)`), by
:func:`~pyro_groups.adversary.tc.discriminator_loss`. :math:`\hat N`
(:func:`~pyro_groups.objectives.elbo_terms.observation_scale`) puts the batch mean on the ELBO's
scale.

The discriminator owns its parameters and its optimizer (Adam, lr :math:`10^{-4}`,
:math:`\beta = (0.5, 0.9)`, as in the paper); :meth:`FactorVAEPenalty.critic_step` updates it on
*detached* codes, and the VAE's penalty (:meth:`FactorVAEPenalty.forward`) sees it with detached
parameters, so no VAE optimiser (Pyro's param store or ``fit``'s) ever holds or moves them.

Choices where the paper is vague, following ``disentanglement_lib`` (Locatello et al. 2019): the
permuted codes come from the same minibatch as the true ones (the paper permutes a second batch);
the discriminator takes one step per VAE step, on the same codes (detached, after the VAE's
update); the discriminator is an MLP with leaky ReLU (slope 0.2); the paper's is 6 x 1000 units (the
default here), smaller ones train faster on a CPU. Locatello et al.'s grid:
:math:`\gamma \in \{10, 20, 30, 40, 50, 100\}`.

Reference: Kim and Mnih 2018, "Disentangling by factorising", ICML.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Optional, Sequence

import torch
from pyro.poutine import Trace
from torch import Tensor, nn

from pyro_groups.data.batch import GroupBatch
from pyro_groups.adversary.base import AdversarialPenalty, detached_call, guide_trace
from pyro_groups.objectives.elbo_terms import observation_scale, posterior_codes
from pyro_groups.adversary.tc import TCDiscriminator, discriminator_loss, permute_dims, tc_estimate

__all__ = ["FactorVAEPenalty"]


class FactorVAEPenalty(AdversarialPenalty):
    """Penalty module ``pen(model, guide, batch, num_groups=N) -> gamma * N * TC`` with a
    ``critic_step`` that trains its discriminator (``fit(..., penalties=[pen])``; in a plain SVI
    loop use :class:`~pyro_groups.adversary.penalized.PenalizedLoss`).

    :param z_dim: code size.
    :param gamma: weight of the total correlation.
    :param hidden: hidden widths of the discriminator (the paper: six layers of 1000).
    :param lr: the discriminator's Adam learning rate.
    :param betas: the discriminator's Adam betas.
    :param sites: latent sites whose concatenation is the code (``("z",)`` for ``IIDVAE``).
    """

    def __init__(
        self,
        z_dim: int,
        gamma: float = 10.0,
        *,
        hidden: Sequence[int] = (1000,) * 6,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.5, 0.9),
        sites: Sequence[str] = ("z",),
    ) -> None:
        super().__init__()
        self.z_dim, self.gamma, self.sites = int(z_dim), float(gamma), tuple(sites)
        self.discriminator = TCDiscriminator(self.z_dim, tuple(hidden), partial(nn.LeakyReLU, 0.2))
        self.own_optimizer(self.discriminator, lr, betas)
        self.blocks = [[d] for d in range(self.z_dim)]

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, gamma={self.gamma}, sites={self.sites}"

    def codes(
        self,
        guide: Callable,
        batch: GroupBatch,
        num_groups: Optional[int] = None,
        trace: Optional[Trace] = None,
    ) -> Tensor:
        """Codes ``[M, z_dim]`` of the batch's valid observations, read off ``trace`` (a guide
        pass on ``batch``) or drawn from the guide."""
        trace = guide_trace(guide, batch, num_groups, trace)
        return posterior_codes(trace, batch.mask, self.sites).z

    def critic_step(
        self,
        model: Callable,
        guide: Callable,
        batch: GroupBatch,
        *,
        num_groups: Optional[int] = None,
        guide_trace: Optional[Trace] = None,
    ) -> dict[str, Tensor]:
        """One optimiser step of the discriminator on detached codes and their permutation."""
        with torch.no_grad():
            z = self.codes(guide, batch, num_groups, guide_trace).detach()
            z_perm = permute_dims(z, self.blocks)
        loss = discriminator_loss(self.discriminator(z), self.discriminator(z_perm))
        self.update(loss)
        return {"discriminator_loss": loss.detach()}

    def tc(self, z: Tensor) -> Tensor:
        """The TC estimate on codes ``z`` ``[M, z_dim]``, differentiable in ``z`` only."""
        return tc_estimate(detached_call(self.discriminator, None, z))

    def forward(
        self,
        model: Callable,
        guide: Callable,
        batch: GroupBatch,
        *,
        num_groups: Optional[int] = None,
        guide_trace: Optional[Trace] = None,
    ) -> Tensor:
        z = self.codes(guide, batch, num_groups, guide_trace)
        n_obs = observation_scale(batch.mask, num_groups).to(z)
        return self.gamma * n_obs * self.tc(z)
