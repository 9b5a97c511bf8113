"""The NaN guard of a training step: no update is applied from the first non-finite loss or
gradient on, so the parameters keep their last good values.

Two modes:

- **immediate** (``fit`` on the CPU): one 0-d bool is read per step (a host synchronisation) and
  :class:`~pyro_groups.errors.TrainingDivergedError` is raised *before* ``optimizer.step``.
- **deferred** (``fit`` on a GPU): nothing is read in the step. The guard keeps a sticky
  "diverged" flag on the device and hands it to the optimiser as ``found_inf`` (the mechanism of
  ``torch.amp.GradScaler``), which a fused optimiser (``torch.optim.Adam(..., fused=True)``) uses
  to skip the whole update, step count and moments included, without leaving the device.
  :meth:`NaNGuard.check`, called at logging time (once an epoch in ``fit``), reads the flag once
  and raises the same error, naming the first bad step. Every update from that step on was
  skipped, so the parameters and optimiser state are those of the last good step, as in the
  immediate mode.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor, nn

from pyro_groups.errors import ArgumentTypeError, TrainingDivergedError

__all__ = ["NaNGuard", "all_finite", "supports_found_inf"]

_ADVICE = "Try a smaller learning rate or clip_norm."


def all_finite(loss: Tensor, params: Sequence[nn.Parameter]) -> Tensor:
    """One 0-d bool on the device: the loss and every gradient are finite (no host sync)."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch._foreach_norm(grads) if grads else []
    return torch.isfinite(torch.stack([loss.detach().reshape(()), *norms])).all()


def supports_found_inf(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer.step`` honours a ``found_inf`` tensor (fused Adam/AdamW/SGD)."""
    return bool(getattr(optimizer, "_step_supports_amp_scaling", False))


class NaNGuard:
    """Checks each step's loss and gradients; see the module docstring.

    :param deferred: skip bad updates on the device and raise at :meth:`check` (needs an
        optimiser for which :func:`supports_found_inf` holds).
    :param reduce: combines the per-process flag into one for all processes (data parallelism:
        an all-reduce with ``MIN``), so that every rank takes the same decision.
    """

    def __init__(
        self, *, deferred: bool = False, reduce: Optional[Callable[[Tensor], Tensor]] = None
    ) -> None:
        self.deferred = bool(deferred)
        self.reduce = reduce
        self._bad: Optional[Tensor] = None
        self._first: Optional[Tensor] = None
        self._first_loss: Optional[Tensor] = None
        self._loss_bad: Optional[Tensor] = None
        self._labels: list[str] = []

    def __call__(
        self,
        loss: Tensor,
        params: Sequence[nn.Parameter],
        optimizer: torch.optim.Optimizer,
        where: str,
    ) -> Optional[Tensor]:
        """Check the step (after ``backward``). Immediate mode: raise now if it is bad, else return
        ``None``. Deferred mode: record it and return the ``found_inf`` tensor for ``optimizer``.

        :raises TrainingDivergedError: (immediate mode) on a non-finite loss or gradient; the
            gradients are cleared and nothing was updated.
        """
        finite = all_finite(loss, params)
        if self.reduce is not None:
            finite = self.reduce(finite)
        if not self.deferred:
            if not bool(finite):
                optimizer.zero_grad(set_to_none=True)
                bad = "loss" if not torch.isfinite(loss) else "gradient"
                raise TrainingDivergedError(
                    f"non-finite {bad} ({float(loss.detach()):.4g}) at {where}; the update was not "
                    "applied, so the model, guide and penalties keep the last good parameters "
                    f"(and the last checkpoint is intact). {_ADVICE}"
                )
            return None
        if not supports_found_inf(optimizer):
            raise ArgumentTypeError(
                f"a deferred NaN guard needs an optimiser that can skip a step on the device "
                f"(found_inf), such as torch.optim.Adam(..., fused=True); got "
                f"{type(optimizer).__name__}"
            )
        return self._record(finite, loss.detach().reshape(()), where)

    def _record(self, finite: Tensor, loss: Tensor, where: str) -> Tensor:
        if self._bad is None:
            self._bad = torch.zeros((), dtype=torch.bool, device=finite.device)
            self._first = torch.full((), -1, dtype=torch.long, device=finite.device)
            self._first_loss = torch.zeros((), dtype=loss.dtype, device=finite.device)
            self._loss_bad = torch.zeros((), dtype=torch.bool, device=finite.device)
        assert self._first is not None and self._first_loss is not None
        assert self._loss_bad is not None
        new = ~finite & ~self._bad
        step = torch.full((), len(self._labels), dtype=torch.long, device=finite.device)
        self._first = torch.where(new, step, self._first)
        self._first_loss = torch.where(new, loss.to(self._first_loss.dtype), self._first_loss)
        self._loss_bad = self._loss_bad | (new & ~torch.isfinite(loss))
        self._bad = self._bad | ~finite
        self._labels.append(where)
        return self._bad.to(torch.float32)

    def check(self) -> None:
        """Deferred mode: raise if a step since the last check was bad (one host sync); a no-op
        in immediate mode.

        :raises TrainingDivergedError: naming the first bad step; it and every later update
            were skipped.
        """
        bad, first, first_loss, loss_bad = self._bad, self._first, self._first_loss, self._loss_bad
        if bad is None or first is None or first_loss is None or loss_bad is None:
            return
        if not bool(bad):
            self._labels.clear()
            return
        kind = "loss" if bool(loss_bad) else "gradient"
        raise TrainingDivergedError(
            f"non-finite {kind} ({float(first_loss):.4g}) at {self._labels[int(first)]}; that "
            "update and every later one were skipped, so the model and guide keep the last good "
            f"parameters (and the last checkpoint is intact). {_ADVICE}"
        )
