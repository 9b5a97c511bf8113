"""One guarded optimisation step: Pyro's SVI step written out so that a non-finite loss or gradient
is caught *before* the optimiser touches the parameters."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
from pyro.infer import ELBO
from torch import Tensor, nn

from pyro_groups.adversary.penalized import PenalizedLoss
from pyro_groups.data.batch import GroupBatch
from pyro_groups.errors import TrainingDivergedError

LossFn = Callable[..., Tensor]


def loss_callable(loss: ELBO | LossFn) -> LossFn:
    """``loss.differentiable_loss`` for a Pyro ``ELBO``, the callable itself otherwise."""
    return loss.differentiable_loss if isinstance(loss, ELBO) else loss


def unique_params(modules: Sequence[nn.Module]) -> list[nn.Parameter]:
    """The parameters of ``modules``, each once, in a fixed order."""
    seen: dict[int, nn.Parameter] = {}
    for m in modules:
        for p in m.parameters():
            seen.setdefault(id(p), p)
    return list(seen.values())


def _all_finite(loss: Tensor, params: Sequence[nn.Parameter]) -> Tensor:
    """One 0-d bool: the loss and every gradient are finite (a single host sync to read it)."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch._foreach_norm(grads) if grads else []
    return torch.isfinite(torch.stack([loss.detach().reshape(()), *norms])).all()


def train_step(
    loss: ELBO | LossFn,
    model: nn.Module,
    guide: nn.Module,
    optimizer: torch.optim.Optimizer,
    params: Sequence[nn.Parameter],
    batch: GroupBatch,
    *,
    num_groups: int,
    clip_norm: Optional[float] = None,
    where: str = "",
    **kwargs: Any,
) -> dict[str, Tensor]:
    """Minimise ``loss(model, guide, x, mask, num_groups=N)`` by one step of ``optimizer``.

    A :class:`~pyro_groups.adversary.penalized.PenalizedLoss` is the ELBO plus penalties from one
    guide pass; its adversaries are updated after the VAE's step (:meth:`step_critics`).

    :returns: 0-d tensors (no host sync): ``"loss"`` the negative ELBO (the base loss) and, with
        penalties, ``"penalty_{i}"`` and the adversaries' records.
    :raises TrainingDivergedError: on a NaN/inf loss or gradient; nothing was updated.
    """
    try:
        total = loss_callable(loss)(model, guide, batch.x, batch.mask, num_groups=num_groups,
                                    **kwargs)
    except ValueError as e:
        if "invalid values" not in str(e):
            raise
        raise TrainingDivergedError(
            f"a distribution got NaN/inf parameters at {where}; the update was not applied, so "
            "the model and guide keep the last good parameters. Try a smaller learning rate or "
            f"clip_norm. ({str(e).splitlines()[0]})"
        ) from e
    optimizer.zero_grad(set_to_none=True)
    total.backward(inputs=list(params))
    if not bool(_all_finite(total, params)):
        optimizer.zero_grad(set_to_none=True)
        bad = "loss" if not torch.isfinite(total) else "gradient"
        raise TrainingDivergedError(
            f"non-finite {bad} ({float(total.detach()):.4g}) at {where}; the update was not "
            "applied, so the model, guide and penalties keep the last good parameters (and the "
            "last checkpoint is intact). Try a smaller learning rate or clip_norm."
        )
    if clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, clip_norm)
    optimizer.step()
    if isinstance(loss, PenalizedLoss):
        loss.step_critics()
        records = dict(loss.records)
        records["loss"] = records.pop("elbo_loss")
        return records
    return {"loss": total.detach()}
