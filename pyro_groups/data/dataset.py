"""Grouped data sets with ragged groups: padding, masks, shuffled minibatches, splits.

Conversion rule for observations (``x``; :func:`as_observations`): a floating-point
``torch.Tensor`` keeps its dtype (the caller chose it); everything else -- numpy arrays of any
real dtype (``float64``, ``int``, ``bool``), lists, integer or bool tensors -- becomes a tensor of
torch's default floating dtype (``torch.get_default_dtype()``, normally ``float32``), the dtype
of the models' parameters. Observations without an event dimension (scalar observations, groups
``[K_i]`` or ``x`` ``[N, K]``) get event shape ``[1]``, which is what the decoders of
:mod:`pyro_groups.models` produce. Ground truth (``u_true``, ``v_true``) keeps integer classes as
``int64``; numpy floats become the default dtype.
"""
from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch

from pyro_groups.data.batch import GroupBatch, GroupDataError, check_group_inputs, zero_padding
from pyro_groups.validation import ArgumentError, ArgumentTypeError, check_float, check_int

__all__ = ["GroupedData", "as_observations", "pad_groups"]


def _as_tensor(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise GroupDataError(f"{name} cannot be read as an array: {e}") from None
    if arr.dtype.kind not in "biuf":
        raise GroupDataError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return torch.as_tensor(arr)


def as_observations(value: Any, name: str = "x") -> torch.Tensor:
    """``value`` as a floating observation tensor, following the module's conversion rule.

    :raises GroupDataError: for non-numeric or complex input.
    """
    t = _as_tensor(value, name)
    if t.dtype.is_complex:
        raise GroupDataError(f"{name} must be real-valued, got {t.dtype}")
    if isinstance(value, torch.Tensor) and t.is_floating_point():
        return t
    return t.to(torch.get_default_dtype())


def _as_truth(value: Any, name: str) -> torch.Tensor:
    t = _as_tensor(value, name)
    if not isinstance(value, torch.Tensor) and t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return t


def pad_groups(
    groups: Sequence[torch.Tensor | np.ndarray], *, name: str = "groups"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ragged groups ``[K_i, *event]`` into ``x`` ``[N, K_max, *event]`` and ``mask``.

    Values are stacked as they are (the result has the promoted dtype of the groups); see
    :meth:`GroupedData.from_groups` for the conversion of observations.
    """
    if isinstance(groups, (str, bytes)) or not hasattr(groups, "__iter__"):
        raise ArgumentTypeError(f"{name} must be a list of arrays [K_i, *event], got {groups!r}")
    tensors = [_as_tensor(g, f"{name}[{i}]") for i, g in enumerate(groups)]
    if len(tensors) == 0:
        raise GroupDataError(f"no groups given ({name} is empty)")
    event = tensors[0].shape[1:]
    for i, t in enumerate(tensors):
        if t.dim() < 1 or t.shape[1:] != event:
            raise GroupDataError(
                f"group {i} has shape {tuple(t.shape)}; expected [K_i, *{tuple(event)}]"
            )
        if t.shape[0] == 0:
            raise GroupDataError(f"group {i} is empty")
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    k_max = max(t.shape[0] for t in tensors)
    x = tensors[0].new_zeros((len(tensors), k_max, *event), dtype=dtype)
    mask = torch.zeros(len(tensors), k_max, dtype=torch.bool, device=x.device)
    for i, t in enumerate(tensors):
        x[i, : t.shape[0]] = t.to(x.device)
        mask[i, : t.shape[0]] = True
    return x, mask


class GroupedData:
    """An in-memory data set of ``N`` padded groups, with optional ground truth.

    :param x: ``[N, K_max, *event]`` observations (padded slots are set to zero); ``[N, K_max]``
        (scalar observations) becomes ``[N, K_max, 1]``. Arrays are converted by the rule of
        :func:`as_observations`.
    :param mask: ``[N, K_max]`` bool (a tensor or a numpy bool array).
    :param u_true: optional ``[N, ...]`` ground-truth group factors.
    :param v_true: optional ``[N, K_max, ...]`` ground-truth instance factors.
    :raises GroupDataError: on shape mismatches, empty groups or non-finite observations.
    """

    def __init__(
        self,
        x: torch.Tensor | np.ndarray,
        mask: torch.Tensor,
        u_true: Optional[torch.Tensor | np.ndarray] = None,
        v_true: Optional[torch.Tensor | np.ndarray] = None,
    ) -> None:
        x = as_observations(x)
        if isinstance(mask, np.ndarray) and mask.dtype == np.bool_:
            mask = torch.as_tensor(mask)
        if x.dim() == 2:
            x = x.unsqueeze(-1)
        check_group_inputs(x, mask, values=True)
        u_true = _as_truth(u_true, "u_true") if u_true is not None else None
        v_true = _as_truth(v_true, "v_true") if v_true is not None else None
        n = mask.shape[0]
        if u_true is not None and u_true.shape[0] != n:
            raise GroupDataError(f"u_true has {u_true.shape[0]} groups, x has {n}")
        if v_true is not None and v_true.shape[:2] != mask.shape:
            raise GroupDataError(
                f"v_true shape {tuple(v_true.shape)} does not match mask {tuple(mask.shape)}"
            )
        x = zero_padding(x, mask)
        self.x, self.mask, self.u_true, self.v_true = x, mask, u_true, v_true
        self._sizes = mask.sum(-1).cpu().numpy()

    @classmethod
    def from_groups(
        cls,
        groups: Sequence[torch.Tensor | np.ndarray],
        u_true: Optional[torch.Tensor | np.ndarray] = None,
        v_true: Optional[Sequence[torch.Tensor | np.ndarray]] = None,
    ) -> "GroupedData":
        """Build from a list of ragged groups ``[K_i, *event]`` (and per-group ``v_true``).

        Groups may be tensors, numpy arrays (``float64``, integers, bools) or nested lists; they
        are converted by the rule of :func:`as_observations` (numpy and integer input becomes
        ``torch.get_default_dtype()``). Groups of scalars ``[K_i]`` give ``x`` ``[N, K_max, 1]``.

        :raises GroupDataError: for no groups, an empty group, groups whose event shapes differ,
            non-numeric or non-finite observations, or ``v_true`` groups that do not match.
        """
        if isinstance(groups, (str, bytes)) or not hasattr(groups, "__iter__"):
            raise ArgumentTypeError(
                f"groups must be a list of arrays [K_i, *event], got {groups!r}"
            )
        groups = [as_observations(g, f"groups[{i}]") for i, g in enumerate(groups)]
        x, mask = pad_groups(groups)
        v = None
        if v_true is not None:
            v_groups = list(v_true)
            if len(v_groups) != len(groups):
                raise GroupDataError(f"v_true has {len(v_groups)} groups, groups has {len(groups)}")
            for i, (a, b) in enumerate(zip(groups, v_groups)):
                if len(b) != len(a):
                    raise GroupDataError(
                        f"v_true[{i}] has {len(b)} rows but group {i} has {len(a)} observations"
                    )
            v = pad_groups(v_groups, name="v_true")[0]
        return cls(x, mask, u_true, v)

    def __len__(self) -> int:
        return self.mask.shape[0]

    @property
    def event_shape(self) -> torch.Size:
        return self.x.shape[2:]

    @property
    def device(self) -> torch.device:
        return self.x.device

    def __getitem__(self, index: torch.Tensor | slice | Sequence[int]) -> GroupBatch:
        """The groups at ``index`` (an int, a slice, integer indices or a boolean mask ``[N]``)
        as a :class:`GroupBatch`, trimmed to their largest group.

        :raises ArgumentError: for indices out of range, or a mask of the wrong length.
        """
        index = self._as_index(index)
        return self._batch(index.numpy(), _to_device(index, self.mask.device), trim=True)

    def _full(self, index: torch.Tensor) -> GroupBatch:
        """The groups at ``index`` padded to the data set's largest group (``K_max``)."""
        index = self._as_index(index)
        return self._batch(index.numpy(), _to_device(index, self.mask.device), trim=False)

    def _batch(self, host: np.ndarray, index: torch.Tensor, *, trim: bool) -> GroupBatch:
        """The groups at ``index`` (on the data's device; ``host`` the same indices in numpy).

        The group sizes are kept on the host, so trimming to the largest group reads no device
        memory: on a GPU, building a batch does not wait for the device.
        """
        k = (int(self._sizes[host].max()) if host.size else 0) if trim else self.mask.shape[1]
        return GroupBatch(
            x=self.x[index, :k],
            mask=self.mask[index, :k],
            u_true=self.u_true[index] if self.u_true is not None else None,
            v_true=self.v_true[index, :k] if self.v_true is not None else None,
            index=index,
        )

    def _as_index(self, index: Any) -> torch.Tensor:
        """``index`` as checked int64 indices on the CPU."""
        n = len(self)
        if isinstance(index, slice):
            return torch.arange(n)[index]
        if isinstance(index, (int, np.integer)) and not isinstance(index, (bool, np.bool_)):
            index = [index]
        t = _as_tensor(index, "index") if not isinstance(index, torch.Tensor) else index
        if t.dtype == torch.bool:
            if t.shape != (n,):
                raise ArgumentError(f"a boolean index must have shape [{n}], got {list(t.shape)}")
            t = t.nonzero().flatten()
        elif t.is_floating_point() or t.is_complex():
            raise ArgumentTypeError(f"index must hold integers, got {t.dtype}")
        t = t.to(device="cpu", dtype=torch.long).flatten()
        if t.numel() and (int(t.min()) < -n or int(t.max()) >= n):
            raise ArgumentError(
                f"index out of range for {n} groups: values in [{int(t.min())}, {int(t.max())}]"
            )
        return t % n if t.numel() else t

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
        loss needs). The epoch's order is drawn on the CPU (``generator`` is a CPU generator) and
        copied to the data's device once per epoch, so that no step waits for a GPU.
        """
        batch_size = check_int(batch_size, "batch_size", min=1)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ArgumentTypeError(
                f"generator must be a torch.Generator, got {type(generator).__name__}"
            )
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        on_device, host = _to_device(order, self.mask.device), order.numpy()
        drop = (drop_last or fixed_shape) and n >= batch_size
        stop = n - n % batch_size if drop else n
        for start in range(0, stop, batch_size):
            end = start + batch_size
            yield self._batch(host[start:end], on_device[start:end],
                              trim=not (fixed_shape or pad))

    def split(self, holdout: float | int, *, seed: int = 0) -> tuple["GroupedData", "GroupedData"]:
        """Split by groups into ``(train, holdout)``.

        :param holdout: the held-out part: a fraction (a ``float`` in ``(0, 1)``) or a count of
            groups (an ``int``); a ``bool`` is neither and is rejected.
        :param seed: seeds the permutation (the global RNG is untouched).
        :raises ArgumentError: if either part would be empty.
        """
        n = len(self)
        seed = check_int(seed, "seed")
        if isinstance(holdout, (float, np.floating)):
            frac = check_float(holdout, "holdout", min=0.0, max=1.0, min_open=True, max_open=True)
            n_out = int(round(frac * n))
        else:
            n_out = check_int(holdout, "holdout (a fraction in (0, 1) or a count)")
        if not 0 < n_out < n:
            raise ArgumentError(
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
        out._sizes = self._sizes
        return out


def _to_device(index: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on ``device``; to a GPU through pinned memory without waiting for it."""
    if device.type != "cuda":
        return index.to(device)
    return index.pin_memory().to(device, non_blocking=True)
