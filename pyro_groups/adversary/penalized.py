r"""A base loss plus penalty modules, with one guide pass per step: what ``fit`` runs with
penalties, and the loss callable a plain ``pyro.infer.SVI`` loop takes.

.. math::
    \mathcal{L}(\theta, \phi) = -\mathrm{ELBO}(\theta, \phi)
        + \sum_p \mathrm{pen}_p(\phi; \psi_p)

The base loss (a Pyro ``ELBO``, or a loss callable of :mod:`pyro_groups.objectives`) runs the
guide once; :class:`PenalizedLoss` records that guide trace and every penalty reads its codes from
it, reparameterised, so the ELBO's draw is also the penalties' draw. The adversaries' updates read
the same codes, detached, and are applied *after* the VAE's update
(:meth:`PenalizedLoss.step_critics`): the VAE's gradient at step :math:`t` is an unbiased
estimate of that of the objective at the current critic :math:`\psi_t`, and the critic's is an
unbiased estimate of its own objective at the current :math:`\phi_t` (simultaneous gradient
play; the older two-pass loop drew independent codes for each and updated the critic first).
The VAE's optimiser never sees critic parameters, and a non-finite VAE loss stops training
before any critic moves.

A JIT-compiled base loss (``JitTrace_ELBO``) does not call the Python guide after compiling; the
penalties then draw their own codes (one extra guide pass).

In a plain SVI loop the pending critic update runs at the start of the next call (or call
:meth:`~PenalizedLoss.step_critics` after ``svi.step`` yourself):

.. code-block:: python

    pen = FactorVAEPenalty(z_dim=10, gamma=20.0)
    loss = PenalizedLoss(BetaVAELoss(1.0), [pen])
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-4}), loss=loss)
    for batch in data.batches(64):
        svi.step(batch.x, batch.mask, num_groups=len(data))   # VAE step, then the critic's
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, NamedTuple, Optional, Sequence

from pyro import poutine
from pyro.infer import JitTrace_ELBO, JitTraceEnum_ELBO, JitTraceGraph_ELBO, JitTraceMeanField_ELBO
from pyro.poutine import Trace
import torch
from torch import Tensor, nn

from pyro_groups.data.batch import GroupBatch
from pyro_groups.objectives.beta_vae import BetaVAELoss

__all__ = ["PenalizedLoss"]

_JIT_ELBOS = (JitTrace_ELBO, JitTraceEnum_ELBO, JitTraceGraph_ELBO, JitTraceMeanField_ELBO)


class _RecordingGuide:
    """Calls the guide under a trace and keeps the last trace (the base loss's own draw)."""

    def __init__(self, guide: Callable) -> None:
        self.guide = guide
        self.trace: Optional[Trace] = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        tracer = poutine.trace(self.guide)
        out = tracer(*args, **kwargs)
        self.trace = tracer.trace
        return out


def _trace_kwarg(fn: Callable, trace: Optional[Trace]) -> dict[str, Any]:
    """``{"guide_trace": trace}`` if ``fn`` takes it (a penalty written before the one-pass
    protocol does not, and then draws its own codes)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    takes = "guide_trace" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    return {"guide_trace": trace} if takes and trace is not None else {}


class _Pending(NamedTuple):
    model: Callable
    guide: Callable
    batch: GroupBatch
    num_groups: Optional[int]
    trace: Optional[Trace]


class PenalizedLoss(nn.Module):
    """``loss(model, guide, x, mask, num_groups=N)`` is ``base(...)`` plus
    ``sum_p p(model, guide, batch, num_groups=N, guide_trace=t)`` with ``t`` the base loss's guide
    trace.

    :param base: a loss callable ``base(model, guide, x, mask, num_groups=N)``, or a Pyro ``ELBO``
        (its ``differentiable_loss`` is used); default the plain ELBO (``BetaVAELoss(1)``).
    :param penalties: :class:`~pyro_groups.adversary.base.Penalty` modules; they are submodules,
        so ``state_dict`` holds their critics and optimisers.
    :param train_critics: queue the adversaries' updates on this call's codes (set ``False`` to
        evaluate the loss without training them).
    :ivar records: 0-d tensors of the last call: ``"elbo_loss"`` (the base loss) and
        ``"penalty_{i}"``, and the records of the last critic step.
    """

    def __init__(
        self,
        base: Optional[Any] = None,
        penalties: Sequence[nn.Module] = (),
        *,
        train_critics: bool = True,
    ) -> None:
        super().__init__()
        self.base = base if base is not None else BetaVAELoss(1.0)
        self.penalties = nn.ModuleList(penalties)
        self.train_critics = bool(train_critics)
        self.records: dict[str, Tensor] = {}
        self._pending: Optional[_Pending] = None

    def _base_loss(self) -> Callable[..., Tensor]:
        return getattr(self.base, "differentiable_loss", self.base)

    def step_critics(self) -> dict[str, Tensor]:
        """Apply the queued adversary updates (each penalty's ``critic_step`` on the detached codes
        of the last call); returns their records. A no-op when nothing is queued."""
        pending, self._pending = self._pending, None
        if pending is None:
            return {}
        record: dict[str, Tensor] = {}
        for pen in self.penalties:
            step = getattr(pen, "critic_step", None)
            if step is None:
                continue
            extra = _trace_kwarg(step, pending.trace)
            with torch.enable_grad():
                out = step(pending.model, pending.guide, pending.batch,
                           num_groups=pending.num_groups, **extra)
            record.update(out or {})
        self.records.update(record)
        return record

    def critic_step(
        self,
        model: Callable,
        guide: Callable,
        batch: GroupBatch,
        *,
        num_groups: Optional[int] = None,
        guide_trace: Optional[Trace] = None,
    ) -> dict[str, Tensor]:
        """Every penalty's ``critic_step`` on ``batch`` now (its own guide pass unless
        ``guide_trace`` is given), as in a two-pass loop."""
        self._pending = _Pending(model, guide, batch, num_groups, guide_trace)
        return self.step_critics()

    def forward(
        self,
        model: Callable,
        guide: Callable,
        x: Tensor,
        mask: Tensor,
        *,
        num_groups: Optional[int] = None,
        **kwargs: Any,
    ) -> Tensor:
        self.step_critics()
        recorder = _RecordingGuide(guide)
        traced = recorder if not isinstance(self.base, _JIT_ELBOS) else guide
        base = self._base_loss()(model, traced, x, mask, num_groups=num_groups, **kwargs)
        batch = GroupBatch(x, mask)
        records = {"elbo_loss": base.detach()}
        total = base
        for i, pen in enumerate(self.penalties):
            extra = _trace_kwarg(pen.forward, recorder.trace)
            value = pen(model, guide, batch, num_groups=num_groups, **extra)
            records[f"penalty_{i}"] = value.detach()
            total = total + value
        self.records = records
        if self.train_critics and self.penalties and torch.is_grad_enabled():
            self._pending = _Pending(model, guide, batch, num_groups, recorder.trace)
        return total
