r"""The group VAE generative model (Bouchacourt et al. 2018; Hosoya 2019; CxVAE).

Generative story for a data set of :math:`N` groups, group :math:`i` with :math:`K_i` observations:

.. math::

    u_i \sim \mathcal{N}(0, I), \qquad v_{ik} \sim \mathcal{N}(0, I), \qquad
    x_{ik} \sim p_\theta(x \mid u_i, v_{ik}),

so that
:math:`p(\mathbf{x}_i) = \mathbb{E}_{p(u)} \prod_k \mathbb{E}_{p(v_k)} p(x_{ik} \mid u, v_k)`.

``content_samples="observation"`` keeps this model and changes only how its ELBO is estimated
(ML-VAE's Algorithm 1, with a guide built the same way; see
:mod:`pyro_groups.guides.group_guide`): site ``"u"`` is drawn once per observation inside the
``"instances"`` plate, each draw's prior term weighted by :math:`1 / K_i`, and observation ``k`` is
decoded from its own draw :math:`u_k`.
"""
from __future__ import annotations

from typing import Optional

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer.util import is_validation_enabled
from pyro.nn import PyroModule
from pyro.nn.module import to_pyro_module_
from torch import nn

from pyro_groups._naming import unique_name
from pyro_groups.data.batch import GroupDataError, check_group_inputs, zero_padding
from pyro_groups.validation import ArgumentError, ArgumentTypeError, check_choice, check_int


def group_plates(
    mask: torch.Tensor, num_groups: Optional[int], group_index: Optional[torch.Tensor] = None
) -> tuple[pyro.plate, pyro.plate]:
    """The ``"groups"`` (dim -2) and ``"instances"`` (dim -1) plates of a padded batch.

    When ``num_groups`` (the data-set size ``N``) exceeds the batch's ``G`` groups, the groups
    plate is a subsample and Pyro scales every site inside it by ``N / G``. ``group_index``
    (``[G]``, the batch's groups in the data set; ``GroupBatch.index``) is the plate's subsample:
    a guide with per-group parameters (a Pyro autoguide) then reads the right ones. Without it
    the subsample is ``0 .. G-1``, which only amortised guides may rely on.
    A stacked ``mask`` ``[*R, G, K]`` gets the same two plates (the caller's outer plates cover
    ``*R``).
    """
    g, k = mask.shape[-2:]
    n = g if num_groups is None else int(num_groups)
    if n < g:
        raise ValueError(f"num_groups={n} is smaller than the batch's {g} groups")
    if group_index is None:
        group_index = torch.arange(g, device=mask.device)
    elif group_index.shape != (g,):
        raise ValueError(
            f"group_index must have shape [G] = [{g}], got {tuple(group_index.shape)}"
        )
    elif num_groups is None:
        raise ValueError("group_index needs num_groups, the size of the data set it indexes")
    groups = pyro.plate("groups", n, subsample=group_index.to(mask.device), dim=-2)
    return groups, pyro.plate("instances", k, dim=-1)


CONTENT_SAMPLES: tuple[str, ...] = ("group", "observation")


def check_content_samples(mode: str) -> str:
    """``mode`` if it is one of :data:`CONTENT_SAMPLES`, else an ``ArgumentError``."""
    return check_choice(mode, "content_samples", CONTENT_SAMPLES)


def content_weights(mask: torch.Tensor) -> torch.Tensor:
    """``1 / K_i`` ``[G, 1]``: the weight of each of a group's ``K_i`` per-observation draws of
    ``u``, so that their prior (model) or entropy (guide) terms sum to one group's."""
    return mask.sum(-1, keepdim=True).clamp_min(1).reciprocal().to(torch.get_default_dtype())


def prepare_inputs(
    x: Optional[torch.Tensor],
    mask: torch.Tensor,
    num_groups: Optional[int],
    group_index: Optional[torch.Tensor] = None,
) -> tuple[Optional[torch.Tensor], pyro.plate, pyro.plate, torch.Tensor]:
    """What every model's ``forward`` does first: check the inputs (values only under Pyro's
    validation), zero the padded slots, build the plates, and pick a reference tensor for the
    priors' dtype and device. Returns ``(x, groups, instances, ref)``."""
    check_group_inputs(x, mask, values=is_validation_enabled())
    if x is not None:
        x = zero_padding(x, mask)
    groups, instances = group_plates(mask, num_groups, group_index)
    ref = mask.new_zeros((), dtype=torch.get_default_dtype()) if x is None else x
    return x, groups, instances, ref


def guide_inputs(
    x: torch.Tensor,
    mask: torch.Tensor,
    num_groups: Optional[int],
    group_index: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, pyro.plate, pyro.plate]:
    """What every guide's ``forward`` does first: check the inputs (``x`` is required; values
    only under Pyro's validation), zero the padded slots and build the same plates as the model.
    Returns ``(x, groups, instances)``."""
    check_group_inputs(x, mask, values=is_validation_enabled(), require_x=True)
    groups, instances = group_plates(mask, num_groups, group_index)
    return zero_padding(x, mask), groups, instances


def check_likelihood(
    likelihood: dist.TorchDistribution, x: Optional[torch.Tensor], mask: torch.Tensor
) -> None:
    """Check observations ``x`` ``[G, K, *event]`` against the decoder's likelihood before
    they are scored, so that a configuration mistake is not reported as divergence.

    The event shapes must agree (always checked). Under Pyro's validation, when the likelihood
    validates its arguments, the observed entries (``mask`` true) must lie in its support: a
    Bernoulli decoder on real-valued data is named as such.

    :raises GroupDataError: naming the shapes, or the distribution, its support and the count of
        observations outside it.
    """
    if x is None:
        return
    event = tuple(likelihood.event_shape)
    if tuple(x.shape[mask.dim():]) != event:
        raise GroupDataError(
            f"x has event shape {list(x.shape[mask.dim():])} (x is {list(x.shape)}) but the "
            f"decoder's likelihood {type(likelihood).__name__} has event shape {list(event)}; "
            "build the decoder for this data (e.g. its x_dim or image size)"
        )
    if not (is_validation_enabled() and getattr(likelihood, "_validate_args", False)):
        return
    support = likelihood.support
    if support is None:
        return
    ok = support.check(x)
    outside = ~ok & mask if ok.shape[-mask.dim():] == mask.shape else ~ok
    if bool(outside.any()):
        base = getattr(likelihood, "base_dist", likelihood)
        values = x[mask].flatten()
        raise GroupDataError(
            f"{int(outside.sum())} observation(s) of x lie outside the support "
            f"({likelihood.support}) of the decoder's {type(base).__name__} likelihood; x ranges "
            f"over [{float(values.min()):.4g}, {float(values.max()):.4g}]. Choose a likelihood "
            "for this data (e.g. likelihood='normal' for real values; a Bernoulli needs x in "
            "{0, 1})"
        )


def code_size(decoder: nn.Module, attr: str, given: Optional[int], model: str) -> int:
    """``given``, or the decoder's ``attr`` (``"u_dim"`` / ``"v_dim"``), as a positive ``int``.

    :raises ArgumentError: if neither is there, naming the model, the decoder and the argument.
    """
    if given is None:
        if not hasattr(decoder, attr):
            raise ArgumentError(
                f"{model} cannot tell the code size: the decoder {type(decoder).__name__} has no "
                f"{attr} attribute; pass {model}(decoder, {attr}=...) or give the decoder a "
                f"{attr}"
            )
        given = getattr(decoder, attr)
    return check_int(given, attr, min=1)


class GroupVAE(PyroModule):
    """Group VAE model ``p(u) prod_k p(v_k) p(x_k | u, v_k)`` with masked ragged groups.

    Sites: ``"u"`` ``[G, 1, u_dim]``, ``"v"`` ``[G, K, v_dim]``, ``"x"`` ``[G, K, *event]``.
    Padded slots (``mask`` false) contribute exactly zero to the log joint.

    :param decoder: a decoder module (see :mod:`pyro_groups.models.decoders`).
    :raises ArgumentError: if the code sizes are neither given nor attributes of the decoder.
    :param u_dim: group code size (defaults to ``decoder.u_dim``).
    :param v_dim: instance code size (defaults to ``decoder.v_dim``).
    :param name: Pyro name; unique by default so that models can coexist in one process.
    :param content_samples: ``"group"`` (default: ``"u"`` is ``[G, 1, u_dim]``) or
        ``"observation"`` (``"u"`` is ``[G, K, u_dim]``, one draw per observation, for a guide
        with the same setting; see the module docstring). An attribute: it may be changed later.
    """

    def __init__(
        self,
        decoder: nn.Module,
        u_dim: Optional[int] = None,
        v_dim: Optional[int] = None,
        name: Optional[str] = None,
        *,
        content_samples: str = "group",
    ) -> None:
        super().__init__(unique_name("model", name))
        if not isinstance(decoder, nn.Module):
            raise ArgumentTypeError(
                f"decoder must be a torch.nn.Module returning p(x | u, v), got "
                f"{type(decoder).__name__}"
            )
        model = type(self).__name__
        self.decoder = decoder
        self.u_dim = code_size(decoder, "u_dim", u_dim, model)
        self.v_dim = code_size(decoder, "v_dim", v_dim, model)
        self.content_samples = check_content_samples(content_samples)
        to_pyro_module_(self)

    def prior(self, dim: int, like: torch.Tensor) -> dist.TorchDistribution:
        zero = like.new_zeros(dim)
        return dist.Normal(zero, torch.ones_like(zero)).to_event(1)

    def forward(
        self,
        x: Optional[torch.Tensor],
        mask: torch.Tensor,
        *,
        num_groups: Optional[int] = None,
        group_index: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Run the model on ``x`` ``[G, K, *event]`` (or sample it when ``x`` is ``None``).

        :param num_groups: size ``N`` of the data set this batch of groups was drawn from.
        :returns: the observations (``x`` itself when given).
        """
        x, groups, instances, ref = prepare_inputs(x, mask, num_groups, group_index)
        per_observation = check_content_samples(self.content_samples) == "observation"
        with groups:
            if not per_observation:
                u = pyro.sample("u", self.prior(self.u_dim, ref))
            with instances, poutine.mask(mask=mask):
                if per_observation:
                    with poutine.scale(scale=content_weights(mask).to(ref)):
                        u = pyro.sample("u", self.prior(self.u_dim, ref))
                _check_u_layout(u, mask, per_observation)
                v = pyro.sample("v", self.prior(self.v_dim, ref))
                px = self.decoder(u, v)
                check_likelihood(px, x, mask)
                return pyro.sample("x", px, obs=x)


def _check_u_layout(u: torch.Tensor, mask: torch.Tensor, per_observation: bool) -> None:
    """A guide that draws ``u`` per observation must meet a model that does (and vice versa):
    otherwise Pyro would score the draws under the wrong plates without complaint."""
    if torch.jit.is_tracing():
        return
    k = u.shape[-2]
    if mask.shape[-1] > 1 and (k != 1) != per_observation:
        mode = "observation" if per_observation else "group"
        raise ArgumentError(
            f"the model draws u once per {mode} (content_samples={mode!r}) but got u "
            f"{list(u.shape)} for groups of {mask.shape[-1]} slots; build the model and the guide "
            "with the same content_samples (pyro_groups.guides.content_samples switches both)"
        )
