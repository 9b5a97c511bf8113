r"""A loss callable made of a base loss plus penalty modules, for plain ``pyro.infer.SVI`` loops.

``fit(..., loss=base, penalties=[pen])`` adds penalties itself; a plain SVI loop takes one
callable, so :class:`PenalizedLoss` adds them:

.. code-block:: python

    pen = FactorVAEPenalty(z_dim=10, gamma=20.0)
    loss = PenalizedLoss(BetaVAELoss(1.0), [pen])
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-4}), loss=loss)
    for batch in data.batches(64):
        loss.critic_step(model, guide, batch, num_groups=len(data))  # the discriminator's step
        svi.step(batch.x, batch.mask, num_groups=len(data))          # the VAE's step
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from torch import Tensor, nn

from pyro_groups.data.batch import GroupBatch
from pyro_groups.objectives.beta_vae import BetaVAELoss

__all__ = ["PenalizedLoss"]


class PenalizedLoss(nn.Module):
    """``loss(model, guide, x, mask, num_groups=N)`` is ``base(...)`` plus
    ``sum_p p(model, guide, batch, num_groups=N)``.

    :param base: a loss callable with the signature above, or a Pyro ``ELBO`` (its
        ``differentiable_loss`` is used); default the plain ELBO (``BetaVAELoss(1)``).
    :param penalties: modules called as ``pen(model, guide, batch, num_groups=N)``; they are
        submodules, so ``state_dict`` holds their critics (and, with ``get_extra_state``, their
        optimisers).
    """

    def __init__(self, base: Optional[Any] = None, penalties: Sequence[nn.Module] = ()) -> None:
        super().__init__()
        self.base = base if base is not None else BetaVAELoss(1.0)
        self.penalties = nn.ModuleList(penalties)

    def _base_loss(self) -> Callable[..., Tensor]:
        return getattr(self.base, "differentiable_loss", self.base)

    def critic_step(
        self,
        model: Callable,
        guide: Callable,
        batch: GroupBatch,
        *,
        num_groups: Optional[int] = None,
    ) -> dict[str, float]:
        """Run every penalty's ``critic_step`` (if it has one) and merge their records."""
        record: dict[str, float] = {}
        for pen in self.penalties:
            step = getattr(pen, "critic_step", None)
            if step is not None:
                record.update(step(model, guide, batch, num_groups=num_groups) or {})
        return record

    def forward(
        self,
        model: Callable,
        guide: Callable,
        x: Tensor,
        mask: Tensor,
        *,
        num_groups: Optional[int] = None,
    ) -> Tensor:
        total = self._base_loss()(model, guide, x, mask, num_groups=num_groups)
        batch = GroupBatch(x, mask)
        for pen in self.penalties:
            total = total + pen(model, guide, batch, num_groups=num_groups)
        return total
