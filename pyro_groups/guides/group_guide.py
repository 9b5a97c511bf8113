r"""Guides for the group VAE: a group encoder composed with an instance encoder.

.. math:: q(u, \mathbf{v} \mid \mathbf{x}) = q(u \mid \mathbf{x})
    \prod_{k=1}^{K} q(v_k \mid x_k [, u])

Named presets (CxVAE paper, Sec. 2 and 4): ``gvae`` = average + unconditional (Hosoya 2019),
``mlvae`` = product of normals + unconditional (Bouchacourt et al. 2018), ``cxvae`` = DeepSets +
context-conditioned.

One content sample per group or per observation
-----------------------------------------------
``content_samples="group"`` (the default) draws one group code per group, site ``"u"``
``[G, 1, u_dim]``. ``content_samples="observation"`` is step 9 of the ML-VAE paper's Algorithm 1:
every observation ``k`` gets its own draw :math:`u_k \sim q(u \mid \mathbf{x})`, site ``"u"``
``[G, K, u_dim]`` inside the ``"instances"`` plate, masked, and scaled by :math:`1 / K_i` so that
the ELBO estimate

.. math:: \sum_k \log p(x_k \mid u_k, v_k)
    + \frac{1}{K} \sum_k \big[\log p(u_k) - \log q(u_k \mid \mathbf{x})\big] + \dots

is unbiased for the *same* group ELBO (each likelihood term still sees a draw of the one group
posterior, and the KL term is averaged over the ``K`` draws). Only the variance differs. The model
must draw ``"u"`` the same way: :class:`~pyro_groups.models.GroupVAE` ``(content_samples=...)``;
:func:`content_samples` switches a model and a guide together. A conditional instance encoder
conditions ``v_k`` on the observation's own draw ``u_k``.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Sequence

import pyro
import torch
from pyro import poutine
from pyro.nn import PyroModule
from pyro.nn.module import to_pyro_module_
from torch import nn

from pyro_groups._naming import unique_name
from pyro_groups.guides.encoders import (
    DeepSetsGroupEncoder,
    InstanceEncoder,
    PerObservationGroupEncoder,
)
from pyro_groups.models.group_vae import (
    check_content_samples,
    content_weights,
    guide_inputs,
)
from pyro_groups.validation import ArgumentTypeError, check_choice, check_int

PRESETS: dict[str, tuple[str, str]] = {
    "gvae": ("average", "unconditional"),
    "mlvae": ("product", "unconditional"),
    "mlvae-mixture": ("mixture", "unconditional"),
    "cxvae": ("deepsets", "conditional"),
}


class GroupGuide(PyroModule):
    """Amortised guide with the model's call signature ``(x, mask, *, num_groups=None)``.

    Sites ``"u"`` ``[G, 1, u_dim]`` in the ``"groups"`` plate and ``"v"`` ``[G, K, v_dim]`` in the
    nested ``"instances"`` plate; the guide carries the mask, so padded slots add no KL.

    :param content_samples: ``"group"`` (default: one draw of ``u`` per group) or
        ``"observation"`` (one draw per observation, ML-VAE's Algorithm 1; ``"u"`` is then
        ``[G, K, u_dim]``, see the module docstring). An attribute: it may be changed later.
    """

    def __init__(
        self,
        group_encoder: nn.Module,
        instance_encoder: InstanceEncoder,
        name: Optional[str] = None,
        *,
        content_samples: str = "group",
    ):
        super().__init__(unique_name("guide", name))
        self.group_encoder = group_encoder
        self.instance_encoder = instance_encoder
        self.content_samples = check_content_samples(content_samples)
        to_pyro_module_(self)

    def group_posterior(self, x: torch.Tensor, mask: torch.Tensor):
        """:math:`q(u \\mid \\mathbf{x})` with batch shape ``[G, 1]``."""
        return self.group_encoder(x, mask)

    def instance_posterior(
        self, x: torch.Tensor, u: Optional[torch.Tensor] = None, *,
        batch_dims: Optional[int] = None,
    ):
        """:math:`q(v_k \\mid x_k[, u])` with batch shape ``[G, K]`` (``[R, G, K]`` for a
        stacked ``x`` with ``batch_dims=3``; only then is ``batch_dims`` passed on, so that an
        instance encoder ``forward(x, u)`` of one's own keeps working)."""
        if batch_dims is None or batch_dims == 2:
            return self.instance_encoder(x, u)
        return self.instance_encoder(x, u, batch_dims=batch_dims)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        *,
        num_groups: Optional[int] = None,
        group_index: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x, groups, instances = guide_inputs(x, mask, num_groups, group_index)
        per_observation = check_content_samples(self.content_samples) == "observation"
        with groups:
            qu = self.group_posterior(x, mask)
            if not per_observation:
                u = pyro.sample("u", qu)
            with instances, poutine.mask(mask=mask):
                if per_observation:
                    with poutine.scale(scale=content_weights(mask)):
                        u = pyro.sample("u", qu.expand(mask.shape))
                v = pyro.sample("v", self.instance_posterior(x, u, batch_dims=mask.dim()))
        return u, v


GROUP_ENCODERS = ("average", "product", "mixture", "deepsets")


def check_guide_sizes(*, hidden: Sequence[int] = (), **sizes: int) -> None:
    """Check code / input sizes (positive integers) and hidden widths of a guide's encoders."""
    for name, value in sizes.items():
        check_int(value, name, min=1)
    if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
        raise ArgumentTypeError(f"hidden must be a sequence of layer widths, got {hidden!r}")
    for i, h in enumerate(hidden):
        check_int(h, f"hidden[{i}]", min=1)


def make_guide(
    x_dim: int,
    u_dim: int,
    v_dim: int,
    *,
    group: str = "deepsets",
    instance: str = "conditional",
    hidden: Sequence[int] = (64, 64),
    body: Optional[Callable[[], nn.Module]] = None,
    name: Optional[str] = None,
    content_samples: str = "group",
) -> GroupGuide:
    """Compose a guide: ``group`` in ``average | product | mixture | deepsets``, ``instance`` in
    ``conditional | unconditional``. ``body`` builds a per-observation feature network (called once
    per encoder); ``x_dim`` is then its output size. ``content_samples`` is ``"group"`` (default)
    or ``"observation"`` (ML-VAE's Algorithm 1; see :class:`GroupGuide`).

    :raises ArgumentError: for sizes that are not positive integers or an unknown ``group`` /
        ``instance`` / ``content_samples``. A guide whose ``x_dim`` does not match the data raises
        :class:`~pyro_groups.data.GroupDataError` at its first call, naming both sizes.
    """
    check_guide_sizes(x_dim=x_dim, u_dim=u_dim, v_dim=v_dim, hidden=hidden)
    check_choice(group, "group", GROUP_ENCODERS)
    check_choice(instance, "instance", ("conditional", "unconditional"))
    check_content_samples(content_samples)
    if body is not None and not callable(body):
        raise ArgumentTypeError(f"body must be a factory (a callable), got {type(body).__name__}")
    make_body = body or (lambda: None)
    if group == "deepsets":
        genc: nn.Module = DeepSetsGroupEncoder(x_dim, u_dim, hidden, body=make_body())
    else:
        genc = PerObservationGroupEncoder(x_dim, u_dim, hidden, aggregator=group, body=make_body())
    ienc = InstanceEncoder(
        x_dim, v_dim, u_dim if instance == "conditional" else 0, hidden, body=make_body()
    )
    return GroupGuide(genc, ienc, name=name, content_samples=content_samples)


def preset_guide(preset: str, x_dim: int, u_dim: int, v_dim: int, **kwargs) -> GroupGuide:
    """A named preset guide: ``gvae``, ``mlvae``, ``mlvae-mixture`` or ``cxvae``."""
    check_choice(preset, "preset", PRESETS)
    group, instance = PRESETS[preset]
    return make_guide(x_dim, u_dim, v_dim, group=group, instance=instance, **kwargs)


@contextmanager
def content_samples(model: nn.Module, guide: nn.Module, mode: str) -> Iterator[None]:
    """Within the block, ``model`` and ``guide`` draw the group code once per ``"group"`` or once
    per ``"observation"`` (ML-VAE's Algorithm 1); both are restored on exit. The parameters are
    untouched, so the two ELBO estimators can be compared on the same model."""
    check_content_samples(mode)
    before = (model.content_samples, guide.content_samples)
    model.content_samples = guide.content_samples = mode
    try:
        yield
    finally:
        model.content_samples, guide.content_samples = before
