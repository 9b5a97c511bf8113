"""Grouped data sets with ragged groups: padding, masks, shuffled minibatches, splits."""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

import numpy as np
import torch

from pyro_groups.data.batch import GroupBatch, GroupDataError, check_group_inputs, zero_padding


def pad_groups(groups: Sequence[torch.Tensor | np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ragged groups ``[K_i, *event]`` into ``x`` ``[N, K_max, *event]`` and ``mask``."""
    if len(groups) == 0:
        raise GroupDataError("no groups given")
    tensors = [torch.as_tensor(g) for g in groups]
    event = tensors[0].shape[1:]
    for i, t in enumerate(tensors):
        if t.dim() < 1 or t.shape[1:] != event:
            raise GroupDataError(
                f"group {i} has shape {tuple(t.shape)}; expected [K_i, *{tuple(event)}]"
            )
        if t.shape[0] == 0:
            raise GroupDataError(f"group {i} is empty")
    k_max = max(t.shape[0] for t in tensors)
    x = tensors[0].new_zeros((len(tensors), k_max, *event))
    mask = torch.zeros(len(tensors), k_max, dtype=torch.bool)
    for i, t in enumerate(tensors):
        x[i, : t.shape[0]] = t
        mask[i, : t.shape[0]] = True
    return x, mask


class GroupedData:
    """An in-memory data set of ``N`` padded groups, with optional ground truth.

    :param x: ``[N, K_max, *event]`` observations (padded slots are set to zero).
    :param mask: ``[N, K_max]`` bool.
    :param u_true: optional ``[N, ...]`` ground-truth group factors.
    :param v_true: optional ``[N, K_max, ...]`` ground-truth instance factors.
    :raises GroupDataError: on shape mismatches, empty groups or non-finite observations.
    """

    def __init__(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        u_true: Optional[torch.Tensor] = None,
        v_true: Optional[torch.Tensor] = None,
    ) -> None:
        check_group_inputs(x, mask, values=True)
        n = mask.shape[0]
        if u_true is not None and u_true.shape[0] != n:
            raise GroupDataError(f"u_true has {u_true.shape[0]} groups, x has {n}")
        if v_true is not None and v_true.shape[:2] != mask.shape:
            raise GroupDataError(
                f"v_true shape {tuple(v_true.shape)} does not match mask {tuple(mask.shape)}"
            )
        x = zero_padding(x, mask)
        self.x, self.mask, self.u_true, self.v_true = x, mask, u_true, v_true

    @classmethod
    def from_groups(
        cls,
        groups: Sequence[torch.Tensor | np.ndarray],
        u_true: Optional[torch.Tensor | np.ndarray] = None,
        v_true: Optional[Sequence[torch.Tensor | np.ndarray]] = None,
    ) -> "GroupedData":
        """Build from a list of ragged groups ``[K_i, *event]`` (and per-group ``v_true``)."""
        x, mask = pad_groups(groups)
        v = pad_groups(v_true)[0] if v_true is not None else None
        u = torch.as_tensor(u_true) if u_true is not None else None
        return cls(x, mask, u, v)

    def __len__(self) -> int:
        return self.mask.shape[0]

    @property
    def event_shape(self) -> torch.Size:
        return self.x.shape[2:]

    @property
    def device(self) -> torch.device:
        return self.x.device

    def __getitem__(self, index: torch.Tensor | slice | Sequence[int]) -> GroupBatch:
        """The groups at ``index`` as a :class:`GroupBatch`, trimmed to their largest group."""
        if isinstance(index, slice):
            index = torch.arange(len(self))[index]
        index = torch.as_tensor(index, dtype=torch.long, device=self.mask.device)
        mask = self.mask[index]
        k = int(mask.sum(-1).max()) if mask.numel() else 0
        return GroupBatch(
            x=self.x[index, :k],
            mask=mask[:, :k],
            u_true=self.u_true[index] if self.u_true is not None else None,
            v_true=self.v_true[index, :k] if self.v_true is not None else None,
            index=index,
        )

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = True,
        generator: Optional[torch.Generator] = None,
        drop_last: bool = False,
        fixed_shape: bool = False,
        pad: bool = False,
    ) -> Iterator[GroupBatch]:
        """Iterate over minibatches of groups (a shuffled epoch by default).

        Batches are trimmed to their largest group unless ``pad`` (every batch is ``K_max`` wide,
        as a guide with per-slot parameters needs) or ``fixed_shape`` (every batch is
        ``[batch_size, K_max]``: padded, and the last partial batch is dropped, as a JIT-compiled
        loss needs).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        drop = (drop_last or fixed_shape) and n >= batch_size
        stop = n - n % batch_size if drop else n
        for start in range(0, stop, batch_size):
            index = order[start : start + batch_size]
            yield self._full(index) if (fixed_shape or pad) else self[index]

    def _full(self, index: torch.Tensor) -> GroupBatch:
        index = index.to(self.mask.device)
        return GroupBatch(
            x=self.x[index],
            mask=self.mask[index],
            u_true=self.u_true[index] if self.u_true is not None else None,
            v_true=self.v_true[index] if self.v_true is not None else None,
            index=index,
        )

    def split(self, holdout: float | int, *, seed: int = 0) -> tuple["GroupedData", "GroupedData"]:
        """Split by groups into ``(train, holdout)``; ``holdout`` is a fraction or a count."""
        n = len(self)
        n_out = int(round(holdout * n)) if isinstance(holdout, float) else int(holdout)
        if not 0 < n_out < n:
            raise ValueError(
                f"holdout must leave both parts non-empty; got {holdout} of {n} groups"
            )
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        return self.subset(perm[n_out:]), self.subset(perm[:n_out])

    def subset(self, index: torch.Tensor) -> "GroupedData":
        """A new data set holding the groups at ``index``."""
        b = self[index]
        return GroupedData(b.x, b.mask, b.u_true, b.v_true)

    def to(self, device: torch.device | str) -> "GroupedData":
        """A copy of the whole data set on ``device``."""
        b = GroupBatch(self.x, self.mask, self.u_true, self.v_true).to(device)
        out = GroupedData.__new__(GroupedData)
        out.x, out.mask, out.u_true, out.v_true = b.x, b.mask, b.u_true, b.v_true
        return out
