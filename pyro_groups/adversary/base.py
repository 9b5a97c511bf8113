r"""The penalty protocol and the base of the adversarial penalties (MI critics, TC discriminators).

A *penalty* is a module called as ``pen(model, guide, batch, num_groups=N)`` that returns a scalar
added to the minimised loss (``fit(..., penalties=[pen])``, or
:class:`~pyro_groups.adversary.penalized.PenalizedLoss` in a plain SVI loop). An *adversarial*
penalty also owns a network (a critic or a discriminator) that plays against the VAE:

.. math::
    \min_{\theta, \phi}\; -\mathrm{ELBO}(\theta, \phi) + \lambda\, \hat I_\psi(\phi), \qquad
    \psi \leftarrow \arg\max_\psi \hat I_\psi(\phi),

with :math:`\psi` updated by :meth:`AdversarialPenalty.critic_step` on the penalty's *own*
optimiser, on *detached* codes; in the VAE step (``forward``) the network is applied with
*detached* parameters (:func:`detached_call`), so the VAE's optimiser neither holds nor moves
:math:`\psi`. The optimiser's state travels in the
module's ``state_dict`` (``get_extra_state``), so ``fit``'s checkpoints resume the game exactly.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from pyro import poutine
from pyro.poutine import Trace

from pyro_groups.data.batch import GroupBatch
from pyro_groups.errors import TrainingDivergedError

__all__ = ["AdversarialPenalty", "Penalty", "detached_call", "guide_trace"]


def guide_trace(
    guide: Callable,
    batch: GroupBatch,
    num_groups: Optional[int] = None,
    trace: Optional[Trace] = None,
) -> Trace:
    """``trace`` if given, else a fresh trace of ``guide(batch.x, batch.mask, num_groups=N)``
    (reparameterised values, with gradients)."""
    if trace is not None:
        return trace
    return poutine.trace(guide).get_trace(batch.x, batch.mask, num_groups=num_groups)


class Penalty(nn.Module):
    """Base of penalty modules:
    ``forward(model, guide, batch, *, num_groups=None, guide_trace=None) -> Tensor`` (a scalar on
    the ELBO's data-set scale) and ``critic_step`` with the same arguments (nothing to train by
    default), which returns records for the history as 0-d tensors (no host synchronisation)."""

    def critic_step(
        self,
        model: Callable,
        guide: Callable,
        batch: GroupBatch,
        *,
        num_groups: Optional[int] = None,
        guide_trace: Optional[Trace] = None,
    ) -> dict[str, Tensor]:
        """Train whatever the penalty owns on ``batch`` (codes detached from ``guide_trace``, or
        from a fresh guide pass); returns records for the history."""
        return {}

    def forward(
        self,
        model: Callable,
        guide: Callable,
        batch: GroupBatch,
        *,
        num_groups: Optional[int] = None,
        guide_trace: Optional[Trace] = None,
    ) -> Tensor:
        raise NotImplementedError


class AdversarialPenalty(Penalty):
    """A penalty whose adversary network is trained by its own Adam optimiser.

    Subclasses build their network, then call :meth:`own_optimizer` with it; :meth:`update`
    takes one optimiser step that *minimises* the given loss (pass minus a bound to maximise it).
    """

    optimizer: torch.optim.Optimizer

    def own_optimizer(
        self, network: nn.Module, lr: float, betas: tuple[float, float] = (0.9, 0.999)
    ) -> None:
        """Give ``network``'s parameters their own Adam optimiser (saved with the module)."""
        self.optimizer = torch.optim.Adam(network.parameters(), lr=lr, betas=betas)

    def update(self, loss: Tensor) -> None:
        """One optimiser step of the adversary that minimises ``loss``; leaves no gradients
        behind.

        :raises TrainingDivergedError: when the loss or a gradient is NaN/inf (the step is not
            taken, so the adversary keeps its last good state).
        """
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        self.apply_gradients(grads, loss)

    def apply_gradients(self, grads: Sequence[Optional[Tensor]], loss: Optional[Tensor] = None
                        ) -> None:
        """One optimiser step of the adversary with the given gradients (in the order of its
        optimiser's parameters), e.g. computed in the VAE step's own forward pass.

        :raises TrainingDivergedError: as :meth:`update`.
        """
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        checks = [torch.isfinite(g).all() for g in grads if g is not None]
        if loss is not None:
            checks.append(torch.isfinite(loss.detach()).all())
        if checks and not bool(torch.stack(checks).all()):
            raise TrainingDivergedError(
                f"{type(self).__name__}: the adversary's loss or gradient is NaN/inf; its update "
                "was not applied (it keeps its last good state). Try a smaller learning rate."
            )
        for p, g in zip(params, grads):
            p.grad = g
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def get_extra_state(self) -> Any:
        return {"optimizer": self.optimizer.state_dict()}

    def set_extra_state(self, state: Any) -> None:
        # A copy: Adam keeps the loaded moment tensors as they are, so loading another live
        # module's state would make the two optimisers share (and double-update) them.
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))


class _Apply(nn.Module):
    def __init__(self, network: nn.Module, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.network, self.fn = network, fn

    def forward(self, *args: Any) -> Any:
        return self.fn(self.network, *args)


def detached_call(network: nn.Module, fn: Optional[Callable[..., Any]], *args: Any) -> Any:
    """``fn(network, *args)`` (``network(*args)`` for ``fn=None``) with the network's parameters
    detached: gradients reach the inputs, never the network, whatever method ``fn`` calls."""
    params = {f"network.{k}": p.detach() for k, p in network.named_parameters()}
    fn = fn if fn is not None else (lambda net, *a: net(*a))
    return functional_call(_Apply(network, fn), params, args)
