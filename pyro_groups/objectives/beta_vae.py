r"""beta-VAE (Higgins et al. 2017): the ELBO with its KL term weighted by :math:`\beta`.

.. math::
    \mathcal{L}_\beta = -\sum_n \Big(\mathbb{E}_{q(z \mid x_n)}[\log p(x_n \mid z)]
    - \beta\, \mathrm{KL}\big(q(z \mid x_n) \,\|\, p(z)\big)\Big)

Implemented as a loss callable (not with ``poutine.scale``): ``BetaVAELoss(beta)(model, guide, x,
mask, num_groups=N)`` traces the guide once, replays the model, and weights the KL read off the
traces (:func:`~pyro_groups.objectives.elbo_terms.elbo_terms`). Scaling the latent sites of model
*and* guide by :math:`\beta` (``poutine.scale``) would give the same gradient, but scales every
latent site of a model with several, and changes the model and guide themselves; the callable
leaves them untouched and works for any latent sites. ``beta = 1`` is the plain VAE, identical to
``TraceMeanField_ELBO`` (``analytic_kl=True``, the default, as in Locatello et al. 2019) or to
``Trace_ELBO`` (``analytic_kl=False``) on the same draws.

References: Higgins et al. 2017, "beta-VAE: Learning basic visual concepts with a constrained
variational framework", ICLR; Locatello et al. 2019, "Challenging common assumptions in the
unsupervised learning of disentangled representations", ICML (grid
:math:`\beta \in \{1, 2, 4, 6, 8, 16\}`).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from pyro_groups.objectives.elbo_terms import elbo_terms

__all__ = ["BetaVAELoss"]


class BetaVAELoss(nn.Module):
    """Loss callable ``loss(model, guide, x, mask, num_groups=N) -> -(log_lik - beta * kl)``.

    Works in ``pyro.infer.SVI(model, guide, optim, loss=BetaVAELoss(4.0))`` and in
    ``fit(..., loss=BetaVAELoss(4.0))``.

    :param beta: weight of the KL term (``1``: the ELBO; ``0``: reconstruction only).
    :param analytic_kl: closed-form KL (default) or the one-sample estimate of ``Trace_ELBO``.
    """

    def __init__(self, beta: float = 1.0, *, analytic_kl: bool = True) -> None:
        super().__init__()
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.beta = float(beta)
        self.analytic_kl = analytic_kl

    def extra_repr(self) -> str:
        return f"beta={self.beta}, analytic_kl={self.analytic_kl}"

    def forward(
        self, model: Callable, guide: Callable, x: torch.Tensor, mask: torch.Tensor, *,
        num_groups: Optional[int] = None,
    ) -> torch.Tensor:
        t = elbo_terms(model, guide, x, mask, num_groups=num_groups, analytic_kl=self.analytic_kl)
        return -(t.log_lik - self.beta * t.kl)
