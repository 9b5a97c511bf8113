"""One guarded optimisation step: Pyro's SVI step written out so that a non-finite loss or gradient
is caught *before* the optimiser touches the parameters."""
from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager, Optional, Sequence

import pyro
import torch
from pyro.infer import ELBO, Trace_ELBO
from torch import Tensor, nn

from pyro_groups.data.batch import GroupBatch
from pyro_groups.errors import TrainingDivergedError
from pyro_groups.training.guard import NaNGuard
from pyro_groups.training.jit_warnings import quiet_jit, uses_jit
from pyro_groups.training.sync_free import device_trace_elbo

LossFn = Callable[..., Tensor]


def loss_callable(loss: ELBO | LossFn, *, sync_free: bool = False) -> LossFn:
    """``loss.differentiable_loss`` for a Pyro ``ELBO``, the callable itself otherwise; with
    ``sync_free``, a ``Trace_ELBO`` 's loss without host synchronisation
    (:func:`~pyro_groups.training.sync_free.device_trace_elbo`)."""
    if sync_free and type(loss) is Trace_ELBO:
        return device_trace_elbo(loss)
    return loss.differentiable_loss if isinstance(loss, ELBO) else loss


def unique_params(modules: Sequence[nn.Module]) -> list[nn.Parameter]:
    """The parameters of ``modules``, each once, in a fixed order."""
    seen: dict[int, nn.Parameter] = {}
    for m in modules:
        for p in m.parameters():
            seen.setdefault(id(p), p)
    return list(seen.values())


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
    guard: Optional[NaNGuard] = None,
    validate: Optional[bool] = None,
    **kwargs: Any,
) -> dict[str, Tensor]:
    """Minimise ``loss(model, guide, x, mask, num_groups=N)`` by one step of ``optimizer``.

    A :class:`~pyro_groups.adversary.penalized.PenalizedLoss` (or any loss with a
    ``step_critics()`` method and a ``records`` dict) is the ELBO plus penalties from one guide
    pass; its adversaries are updated after the VAE's step.

    :param guard: the :class:`~pyro_groups.training.guard.NaNGuard` (default: immediate, one host
        sync per step). A deferred guard makes the step free of host synchronisation (the
        optimiser skips bad updates on the device; call ``guard.check()`` when logging), and a
        ``Trace_ELBO`` then runs without reading the device
        (:func:`~pyro_groups.training.sync_free.device_trace_elbo`).
    :param validate: run the step with Pyro's validation on or off (``None``: as it is). Off, the
        models' and guides' value checks of the data (which read device memory) are skipped too.
    :returns: 0-d tensors (no host sync): ``"loss"`` the negative ELBO (the base loss) and, with
        penalties, ``"penalty_{i}"`` and the adversaries' records.
    :raises TrainingDivergedError: on a NaN/inf loss or gradient; nothing was updated.
    """
    guard = guard if guard is not None else NaNGuard()
    with _validation(validate), quiet_jit(uses_jit(loss)):
        try:
            total = loss_callable(loss, sync_free=guard.deferred)(
                model, guide, batch.x, batch.mask, num_groups=num_groups, **kwargs)
        except ValueError as e:
            if "invalid values" not in str(e):
                raise
            raise TrainingDivergedError(
                f"a distribution got NaN/inf parameters at {where}; the update was not applied, "
                "so the model and guide keep the last good parameters. Try a smaller learning "
                f"rate or clip_norm. ({str(e).splitlines()[0]})"
            ) from e
        optimizer.zero_grad(set_to_none=True)
        total.backward(inputs=list(params))
        found_inf = guard(total, params, optimizer, where)
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, clip_norm)
        _optimizer_step(optimizer, found_inf)
        step_critics = getattr(loss, "step_critics", None)
        if step_critics is None:
            return {"loss": total.detach()}
        step_critics()
    records = dict(loss.records)  # type: ignore[union-attr]
    records["loss"] = records.pop("elbo_loss")
    return records


def _optimizer_step(optimizer: torch.optim.Optimizer, found_inf: Optional[Tensor]) -> None:
    """``optimizer.step()``; with ``found_inf`` (a deferred guard), the update is skipped on the
    device when it is 1, as ``torch.amp.GradScaler`` has a fused optimiser do."""
    if found_inf is None:
        optimizer.step()
        return
    optimizer.grad_scale, optimizer.found_inf = None, found_inf  # type: ignore[attr-defined]
    try:
        optimizer.step()
    finally:
        del optimizer.grad_scale, optimizer.found_inf  # type: ignore[attr-defined]


def _validation(validate: Optional[bool]) -> ContextManager[Any]:
    return contextlib.nullcontext() if validate is None else pyro.validation_enabled(validate)
