r"""AnnealedVAE (Burgess et al. 2018): the KL is pulled towards a capacity that grows linearly.

.. math::
    \mathcal{L}_t = -\sum_n \mathbb{E}_{q(z \mid x_n)}[\log p(x_n \mid z)]
    + \gamma\, \hat N \,\Big|\, \overline{\mathrm{KL}} - C(t) \Big|, \qquad
    C(t) = C_{\max} \min\!\Big(1, \frac{t}{T}\Big),

where :math:`\overline{\mathrm{KL}}` is the batch's KL per observation (nats) and :math:`\hat N`
the data-set size (:func:`~pyro_groups.objectives.elbo_terms.observation_scale`), so the loss is on
the ELBO's scale. Choices where the paper is vague, following ``disentanglement_lib`` (Locatello
et al. 2019): the absolute value is taken of the *batch-mean* KL, not per observation; the KL is
analytic; :math:`t` counts optimisation steps from 0, and step :math:`t` uses :math:`C(t)`.

The paper (App. A.2): :math:`\gamma = 1000`, :math:`C_{\max} = 25` nats reached after
:math:`T = 100{,}000` iterations on dSprites. Locatello et al.: :math:`\gamma = 1000`,
:math:`C_{\max} \in \{5, 10, 25, 50, 75, 100\}`, :math:`T = 100{,}000`.

The step count is a buffer of :class:`AnnealedVAELoss` (``state_dict`` / ``load_state_dict``;
``fit`` checkpoints a loss that is a module), advanced by every call made with gradients enabled
(one per SVI step; ``evaluate_loss`` runs without gradients and does not advance it).

Reference: Burgess et al. 2018, "Understanding disentangling in beta-VAE", arXiv:1804.03599.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from pyro_groups.objectives.elbo_terms import elbo_terms, observation_scale

__all__ = ["AnnealedVAELoss", "linear_capacity"]


def linear_capacity(step: int | float, c_max: float, num_steps: int) -> float:
    r"""The capacity :math:`C(t) = C_{\max} \min(1, t / T)` in nats (``num_steps`` is :math:`T`)."""
    if num_steps <= 0:
        return float(c_max)
    return float(c_max) * min(1.0, max(0.0, float(step)) / float(num_steps))


class AnnealedVAELoss(nn.Module):
    """Loss callable of AnnealedVAE with a checkpointable linear capacity schedule.

    :param gamma: weight :math:`\\gamma` of the capacity constraint.
    :param c_max: final capacity :math:`C_{\\max}` (nats per observation).
    :param num_steps: steps :math:`T` over which the capacity grows from 0 to ``c_max``.
    """

    step: torch.Tensor

    def __init__(
        self, gamma: float = 1000.0, c_max: float = 25.0, num_steps: int = 100_000
    ) -> None:
        super().__init__()
        self.gamma, self.c_max, self.num_steps = float(gamma), float(c_max), int(num_steps)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, c_max={self.c_max}, num_steps={self.num_steps}"

    @property
    def capacity(self) -> float:
        """The capacity the next training call uses."""
        return linear_capacity(int(self.step), self.c_max, self.num_steps)

    def forward(
        self, model: Callable, guide: Callable, x: torch.Tensor, mask: torch.Tensor, *,
        num_groups: Optional[int] = None,
    ) -> torch.Tensor:
        capacity = self.capacity
        if torch.is_grad_enabled():
            self.step += 1
        t = elbo_terms(model, guide, x, mask, num_groups=num_groups)
        n_obs = observation_scale(mask, num_groups).to(t.kl)
        return -t.log_lik + self.gamma * n_obs * (t.kl / n_obs - capacity).abs()
