r"""The pieces of replicated training (:func:`~pyro_groups.training.replicated.fit_replicated`):
stacked batches, the replicates plate, each replicate's own noise, and the ELBO per replicate.

``R`` independent runs become one computation on tensors with a leading replicate dimension:
``x`` ``[R, G, K, *event]``, ``mask`` ``[R, G, K]``. The model and guide (stacked with
:func:`~pyro_groups.nn_replicated.stack_modules`) run inside an outer ``"replicates"`` plate at
dim -3, so that their sites have batch shapes ``[R, G, 1]`` (``"u"``) and ``[R, G, K]`` (``"v"``,
``"x"``), and the ELBO is the sum of the replicates' ELBOs,

.. math::
    \mathcal{L}(\theta_1, \dots, \theta_R) = \sum_{r=1}^{R} -\mathrm{ELBO}_r(\theta_r),

whose gradient with respect to replicate :math:`r`'s parameters is that of its own term.
Replicate :math:`r`'s batch is the one its solo run would draw, padded (masked) from its own
width :math:`K_r` to the common :math:`K = \max_r K_r`; padded slots contribute exactly zero.

Random numbers: Pyro would draw the noise of a site ``[R, G, K, d]`` from the global generator at
once, which is not what any solo run draws. :class:`ReplicateNoise` draws replicate :math:`r`'s
standard-normal noise from replicate :math:`r`'s own generator, in the shape of the solo run
(``[G, K_r, d]``), in the solo run's order, so that the draws, and hence the numbers, are those of
the solo run seeded alike.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import pyro
import torch
from pyro.distributions.torch_distribution import MaskedDistribution
from pyro.distributions.util import is_identically_zero
from pyro.infer import Trace_ELBO
from pyro.poutine.messenger import Messenger
from pyro.poutine.subsample_messenger import _Subsample
from pyro.poutine.trace_struct import Trace
from torch import Tensor

from pyro_groups.data.batch import GroupBatch, GroupDataError
from pyro_groups.errors import ArgumentError

__all__ = [
    "REPLICATES",
    "REPLICATE_DIM",
    "Replicated",
    "ReplicateNoise",
    "ReplicatedTraceELBO",
    "stack_batches",
    "widths",
]

REPLICATES = "replicates"
REPLICATE_DIM = -3


def stack_batches(batches: Sequence[GroupBatch]) -> tuple[GroupBatch, list[int]]:
    """One batch ``x`` ``[R, G, K, *event]``, ``mask`` ``[R, G, K]`` from ``R`` batches of ``G``
    groups, each padded from its own width ``K_r`` to ``K = max K_r``; returns it and the
    widths."""
    if not batches:
        raise ArgumentError("no batches to stack")
    shapes = {(b.mask.shape[0], b.x.shape[2:]) for b in batches}
    if len(shapes) != 1:
        raise GroupDataError(
            "the replicates' batches differ in group count or event shape "
            f"({sorted(map(str, shapes))})"
        )
    sizes = [b.mask.shape[1] for b in batches]
    first = batches[0]
    k = max(sizes)
    x = first.x.new_zeros((len(batches), first.mask.shape[0], k, *first.x.shape[2:]))
    mask = first.mask.new_zeros((len(batches), first.mask.shape[0], k))
    for r, b in enumerate(batches):
        x[r, :, : sizes[r]] = b.x
        mask[r, :, : sizes[r]] = b.mask
    return GroupBatch(x, mask), sizes


def widths(mask: Tensor) -> list[int]:
    """Each replicate's width (its last valid slot + 1) of a stacked ``mask`` ``[R, G, K]``: the
    ``K`` of the batch its solo run would see (one host synchronisation)."""
    cols = mask.any(-2)
    position = torch.arange(1, mask.shape[-1] + 1, device=mask.device)
    return torch.where(cols, position, torch.zeros_like(position)).amax(-1).tolist()


class Replicated:
    """``fn(x, mask, **kwargs)`` run inside the ``"replicates"`` plate (dim -3) and, when given,
    under :class:`ReplicateNoise`.

    :param fn: a stacked model or guide (``x`` ``[R, G, K, *event]``, ``mask`` ``[R, G, K]``).
    :param replicas: ``R``.
    :param noise: the replicates' noise streams (for a guide).
    """

    def __init__(self, fn: Callable, replicas: int, noise: Optional["ReplicateNoise"] = None):
        self.fn, self.replicas, self.noise = fn, int(replicas), noise

    def __call__(self, x: Optional[Tensor], mask: Tensor, **kwargs: Any) -> Any:
        if mask.dim() != 3 or mask.shape[0] != self.replicas:
            raise GroupDataError(
                f"a replicated call needs mask [R, G, K] with R = {self.replicas}, "
                f"got {tuple(mask.shape)}"
            )
        plate = pyro.plate(REPLICATES, self.replicas, dim=REPLICATE_DIM)
        if self.noise is None:
            with plate:
                return self.fn(x, mask, **kwargs)
        with self.noise, plate:
            return self.fn(x, mask, **kwargs)


class ReplicateNoise(Messenger):
    r"""Draw each replicate's reparameterisation noise from its own generator, in its solo shape.

    At a latent Normal site (possibly ``.to_event``-ed or masked) with value shape
    ``[R, *shape]``, replicate :math:`r`'s noise :math:`\epsilon_r` is drawn by
    ``normal_(generator=generators[r])`` in the shape its solo run would draw: ``shape`` with the
    dimension of the plate ``trim`` (the ``"instances"`` plate) cut to ``widths[r]``; the rest is
    zero (padded slots, masked). The value is :math:`\mu + \epsilon\,\sigma`, what
    ``Normal.rsample`` computes in the solo run from the global generator seeded alike.

    :param generators: one generator per replicate, on the data's device.
    :param trim: the plate whose dimension each replicate sees at its own width.
    :ivar widths: the replicates' widths for the current batch (``None``: no trimming).
    :raises ValueError: at a latent site that is not a reparameterised Normal.
    """

    def __init__(self, generators: Sequence[torch.Generator], trim: str = "instances") -> None:
        super().__init__()
        self.generators = list(generators)
        self.trim = trim
        self.widths: Optional[list[int]] = None

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        if msg["is_observed"] or msg["value"] is not None:
            return
        fn = msg["fn"]
        if isinstance(fn, _Subsample):
            if fn.subsample_size is not None and fn.subsample_size < fn.size:
                raise ArgumentError(
                    f"plate {msg['name']!r} subsamples at random; replicated training needs the "
                    "subsample given (pyro.plate(..., subsample=...))"
                )
            return
        base = fn
        while isinstance(base, (torch.distributions.Independent, MaskedDistribution)):
            base = base.base_dist
        if not isinstance(base, torch.distributions.Normal) or msg["kwargs"].get("sample_shape"):
            raise ArgumentError(
                f"site {msg['name']!r}: replicated training draws each replicate's noise itself "
                f"and supports reparameterised Normal sites only, got {type(base).__name__}"
            )
        shape = base.loc.shape
        if len(shape) == 0 or shape[0] != len(self.generators):
            raise ArgumentError(
                f"site {msg['name']!r} has shape {tuple(shape)}; its first dimension must be the "
                f"{len(self.generators)} replicates"
            )
        dim = next(
            (f.dim - fn.event_dim for f in msg["cond_indep_stack"] if f.name == self.trim), None
        )
        eps = torch.zeros(shape, dtype=base.loc.dtype, device=base.loc.device)
        for r, gen in enumerate(self.generators):
            target = eps[r]
            if dim is not None and self.widths is not None:
                target = target.narrow(dim, 0, self.widths[r])
            draw = torch.empty(target.shape, dtype=eps.dtype, device=eps.device)
            target.copy_(draw.normal_(generator=gen))
        msg["value"] = base.loc + eps * base.scale


def _per_replicate(trace: Trace, replicas: int, guide: bool) -> Tensor:
    """Sum of the scaled, masked log densities of ``trace``'s sample sites, per replicate
    ``[R]``."""
    total: Tensor | float = 0.0
    for name, site in trace.nodes.items():
        if site["type"] != "sample":
            continue
        if guide and not is_identically_zero(site["score_parts"].score_function):
            raise ArgumentError(
                f"guide site {name!r} is not reparameterised; replicated training supports "
                "reparameterised guides only"
            )
        dim = next((f.dim for f in site["cond_indep_stack"] if f.name == REPLICATES), None)
        lp = site["log_prob"]
        if dim is None or lp.dim() < -dim or lp.shape[dim] != replicas:
            raise ArgumentError(f"site {name!r} is not inside the {REPLICATES!r} plate")
        keep = lp.dim() + dim
        total = total + lp.sum([d for d in range(lp.dim()) if d != keep])
    if not isinstance(total, Tensor):
        raise ArgumentError("the trace has no sample sites")
    return total


class ReplicatedTraceELBO(Trace_ELBO):
    r"""``Trace_ELBO`` of a model and guide run inside the ``"replicates"`` plate, per replicate.

    ``differentiable_loss`` returns :math:`\sum_r -\mathrm{ELBO}_r` (what ``Trace_ELBO`` returns
    for the stacked model, up to summation order) and keeps the per-replicate values
    :math:`-\mathrm{ELBO}_r` in :attr:`per_replicate`. Guide sites must be reparameterised (no
    score-function terms).

    :param replicas: ``R``.
    """

    def __init__(self, replicas: int, num_particles: int = 1, **kwargs: Any) -> None:
        if kwargs.get("vectorize_particles"):
            raise ArgumentError("ReplicatedTraceELBO does not vectorise particles")
        super().__init__(num_particles=num_particles, **kwargs)
        self.replicas = int(replicas)
        self.per_replicate: Optional[Tensor] = None

    def differentiable_loss(self, model: Callable, guide: Callable, *args: Any,
                            **kwargs: Any) -> Tensor:
        elbo: Tensor | float = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            elbo = elbo + (
                _per_replicate(model_trace, self.replicas, guide=False)
                - _per_replicate(guide_trace, self.replicas, guide=True)
            )
        loss = -elbo / self.num_particles
        self.per_replicate = loss.detach()
        return loss.sum()

    def loss(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> float:
        with torch.no_grad():
            return float(self.differentiable_loss(model, guide, *args, **kwargs))
