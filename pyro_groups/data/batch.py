"""The unit of data that models, guides, penalties and metrics take: a padded batch of groups."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Optional

import torch

from pyro_groups.validation import GroupDataError

__all__ = ["GroupBatch", "GroupDataError", "check_group_inputs", "zero_padding"]


def check_group_inputs(
    x: Optional[torch.Tensor],
    mask: torch.Tensor,
    *,
    values: bool = True,
    require_x: bool = False,
) -> None:
    """Check a padded batch ``x`` ``[G, K, *event]`` with boolean ``mask`` ``[G, K]``.

    Stacked batches with leading dimensions, ``x`` ``[*R, G, K, *event]`` with ``mask``
    ``[*R, G, K]`` (independent replicates, :mod:`pyro_groups.training.replicated`), pass too:
    ``mask`` tells the batch dimensions from the event dimensions.

    Shape and dtype checks are always made. With ``values=True`` the checks that read the data
    (every group non-empty, observed entries finite) are made too; these synchronise a GPU.
    Models accept ``x=None`` (they then sample it); guides pass ``require_x=True``.

    :raises GroupDataError: naming the problem.
    """
    if x is None and require_x:
        raise GroupDataError(
            "x is None: a guide infers codes from observations, so it needs x [G, K, *event] "
            "(only a model can be run with x=None, to sample data)"
        )
    if x is not None and not isinstance(x, torch.Tensor):
        raise GroupDataError(
            f"x must be a torch.Tensor [G, K, *event], got {type(x).__name__}; convert arrays "
            "with torch.as_tensor or build a GroupedData"
        )
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise GroupDataError(
            f"mask must be a bool tensor [G, K], got {getattr(mask, 'dtype', type(mask))}"
        )
    if mask.dim() < 2:
        raise GroupDataError(f"mask must have shape [G, K], got {tuple(mask.shape)}")
    if mask.numel() == 0:
        raise GroupDataError(f"empty batch: mask has shape {tuple(mask.shape)}")
    if x is not None:
        if x.dim() < mask.dim() or x.shape[: mask.dim()] != mask.shape:
            if mask.dim() > 2:
                raise GroupDataError(
                    f"mask must have shape [G, K] (or [R, G, K] for stacked replicates, with x "
                    f"[R, G, K, *event]); got mask {tuple(mask.shape)} and x {tuple(x.shape)}"
                )
            raise GroupDataError(
                f"x must have shape [G, K, *event] matching mask [G, K] = {tuple(mask.shape)}, "
                f"got x {tuple(x.shape)}"
            )
        if x.device != mask.device:
            raise GroupDataError(f"x is on {x.device} but mask is on {mask.device}")
        if x.dtype.is_complex:
            raise GroupDataError(f"x must be real-valued, got {x.dtype}")
    if values:
        empty = ~mask.any(-1)
        if bool(empty.any()):
            where = empty.nonzero()[:5].tolist()
            idx = [w[0] if len(w) == 1 else tuple(w) for w in where]
            raise GroupDataError(
                f"{int(empty.sum())} empty group(s) (no valid observation), e.g. {idx}"
            )
        if x is not None and x.is_floating_point():
            bad = ~torch.isfinite(x) & mask.view(*mask.shape, *([1] * (x.dim() - mask.dim())))
            if bool(bad.any()):
                raise GroupDataError(
                    f"x has {int(bad.sum())} non-finite (NaN/inf) observed value(s)"
                )


def zero_padding(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` with its padded slots (``mask`` false) set to zero.

    Models and guides call this first, so that whatever a caller left in padded slots (NaN, values
    outside a likelihood's support) can neither reach an encoder nor a gradient.
    """
    return x.masked_fill(~mask.view(*mask.shape, *([1] * (x.dim() - mask.dim()))), 0)


@dataclass
class GroupBatch:
    """A padded batch of ``G`` groups of at most ``K`` observations.

    :ivar x: observations ``[G, K, *event]``; padded slots hold zeros.
    :ivar mask: ``[G, K]`` bool, ``True`` for real observations.
    :ivar u_true: optional ground-truth group factors ``[G, ...]``.
    :ivar v_true: optional ground-truth instance factors ``[G, K, ...]``.
    :ivar index: optional indices of these groups in their data set ``[G]``.
    """

    x: torch.Tensor
    mask: torch.Tensor
    u_true: Optional[torch.Tensor] = None
    v_true: Optional[torch.Tensor] = None
    index: Optional[torch.Tensor] = None

    def __post_init__(self) -> None:
        check_group_inputs(self.x, self.mask, values=False)

    @property
    def num_groups(self) -> int:
        return self.mask.shape[0]

    @property
    def sizes(self) -> torch.Tensor:
        """Number of valid observations of each group, ``[G]``."""
        return self.mask.sum(-1)

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device: torch.device | str) -> "GroupBatch":
        """A copy on ``device`` (tensors that are already there are not copied)."""
        moved = {
            f.name: (v.to(device) if isinstance(v, torch.Tensor) else v)
            for f in fields(self)
            for v in [getattr(self, f.name)]
        }
        return replace(self, **moved)

    def validate(self) -> "GroupBatch":
        """Run the value checks of :func:`check_group_inputs` and return ``self``."""
        check_group_inputs(self.x, self.mask, values=True)
        return self
