r"""``Trace_ELBO`` 's differentiable loss without reading the device.

Pyro's ``Trace_ELBO.differentiable_loss`` reads every site's ``log_prob_sum`` with ``.item()``
(to report the ELBO as a float beside the surrogate) and checks the loss for NaN with a Python
``if``: several host synchronisations per step, each of which makes the CPU wait for a GPU.
For a guide whose every sample site is reparameterised the surrogate *is* the loss,

.. math::
    \mathcal{L} = -\frac{1}{S} \sum_{s=1}^{S} \Big( \sum_{\text{model sites}} \log p
        - \sum_{\text{guide sites}} \log q \Big),

so :func:`device_trace_elbo` returns it as a tensor built from the same traces, with the same
random draws, value and gradient (up to float rounding), and reads nothing. A particle with a
non-reparameterised site (score-function terms) is computed by Pyro's own code. NaNs are left to
the step's :class:`~pyro_groups.training.guard.NaNGuard`. ``train_step`` uses it for
``Trace_ELBO`` under a deferred guard (``fit`` on a GPU).
"""
from __future__ import annotations

from typing import Any, Callable

from pyro.infer import Trace_ELBO
from pyro.infer.util import is_identically_zero
from pyro.poutine import Trace
from torch import Tensor

__all__ = ["device_trace_elbo"]


def _particle(elbo: Trace_ELBO, model_trace: Trace, guide_trace: Trace) -> Tensor | float:
    surrogate: Tensor | float = 0.0
    for site in model_trace.nodes.values():
        if site["type"] == "sample":
            surrogate = surrogate + site["log_prob_sum"]
    for site in guide_trace.nodes.values():
        if site["type"] != "sample":
            continue
        if not is_identically_zero(site["score_parts"].score_function):
            loss, surr = elbo._differentiable_loss_particle(model_trace, guide_trace)
            return loss + (surr - surr.detach())
        entropy = site["score_parts"].entropy_term
        if not is_identically_zero(entropy):
            surrogate = surrogate - entropy.sum()
    return -surrogate


def device_trace_elbo(elbo: Trace_ELBO) -> Callable[..., Tensor]:
    """``loss(model, guide, *args, **kwargs)``: ``elbo.differentiable_loss`` without host
    synchronisation (see the module docstring); ``elbo`` keeps its settings (particles, plate
    nesting)."""

    def loss(model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> Tensor:
        total: Tensor | float = 0.0
        for model_trace, guide_trace in elbo._get_traces(model, guide, args, kwargs):
            total = total + _particle(elbo, model_trace, guide_trace) / elbo.num_particles
        assert isinstance(total, Tensor), "the model and guide have no sample sites"
        return total

    return loss
