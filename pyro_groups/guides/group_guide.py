r"""Guides for the group VAE: a group encoder composed with an instance encoder.

.. math:: q(u, \mathbf{v} \mid \mathbf{x}) = q(u \mid \mathbf{x})
    \prod_{k=1}^{K} q(v_k \mid x_k [, u])

Named presets (CxVAE paper, Sec. 2 and 4): ``gvae`` = average + unconditional (Hosoya 2019),
``mlvae`` = product of normals + unconditional (Bouchacourt et al. 2018), ``cxvae`` = DeepSets +
context-conditioned.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import pyro
import torch
from pyro import poutine
from pyro.infer.util import is_validation_enabled
from pyro.nn import PyroModule
from pyro.nn.module import to_pyro_module_
from torch import nn

from pyro_groups._naming import unique_name
from pyro_groups.data.batch import check_group_inputs, zero_padding
from pyro_groups.guides.encoders import (
    DeepSetsGroupEncoder,
    InstanceEncoder,
    PerObservationGroupEncoder,
)
from pyro_groups.models.group_vae import group_plates
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
    """

    def __init__(
        self,
        group_encoder: nn.Module,
        instance_encoder: InstanceEncoder,
        name: Optional[str] = None,
    ):
        super().__init__(unique_name("guide", name))
        self.group_encoder = group_encoder
        self.instance_encoder = instance_encoder
        to_pyro_module_(self)

    def group_posterior(self, x: torch.Tensor, mask: torch.Tensor):
        """:math:`q(u \\mid \\mathbf{x})` with batch shape ``[G, 1]``."""
        return self.group_encoder(x, mask)

    def instance_posterior(self, x: torch.Tensor, u: Optional[torch.Tensor] = None):
        """:math:`q(v_k \\mid x_k[, u])` with batch shape ``[G, K]``."""
        return self.instance_encoder(x, u)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        *,
        num_groups: Optional[int] = None,
        group_index: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        check_group_inputs(x, mask, values=is_validation_enabled(), require_x=True)
        x = zero_padding(x, mask)
        groups, instances = group_plates(mask, num_groups, group_index)
        with groups:
            u = pyro.sample("u", self.group_posterior(x, mask))
            with instances, poutine.mask(mask=mask):
                v = pyro.sample("v", self.instance_posterior(x, u))
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
) -> GroupGuide:
    """Compose a guide: ``group`` in ``average | product | mixture | deepsets``, ``instance`` in
    ``conditional | unconditional``. ``body`` builds a per-observation feature network (called once
    per encoder); ``x_dim`` is then its output size.

    :raises ArgumentError: for sizes that are not positive integers or an unknown ``group`` /
        ``instance``. A guide whose ``x_dim`` does not match the data raises
        :class:`~pyro_groups.data.GroupDataError` at its first call, naming both sizes.
    """
    check_guide_sizes(x_dim=x_dim, u_dim=u_dim, v_dim=v_dim, hidden=hidden)
    check_choice(group, "group", GROUP_ENCODERS)
    check_choice(instance, "instance", ("conditional", "unconditional"))
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
    return GroupGuide(genc, ienc, name=name)


def preset_guide(preset: str, x_dim: int, u_dim: int, v_dim: int, **kwargs) -> GroupGuide:
    """A named preset guide: ``gvae``, ``mlvae``, ``mlvae-mixture`` or ``cxvae``."""
    check_choice(preset, "preset", PRESETS)
    group, instance = PRESETS[preset]
    return make_guide(x_dim, u_dim, v_dim, group=group, instance=instance, **kwargs)
