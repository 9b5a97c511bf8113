r"""Minibatches of groups for data-parallel training: every rank gets its own, distinct groups.

Under data parallelism each of the :math:`W` processes ("ranks") trains on its own minibatch of
:math:`G` groups, and the averaged gradient stands for that of one *global* batch of
:math:`B = G W` groups. A subsampled ``pyro.plate`` alone would let every rank draw its groups
independently, so two ranks could train on the same group in one step and the global batch would
not be a sample without replacement. :class:`DistributedGroupSampler` draws one permutation of the
:math:`N` groups per epoch, the same on every rank (seeded by ``seed`` and the epoch), cuts it into
global batches of :math:`B` groups, and gives rank :math:`r` the :math:`r`-th slice of :math:`G`
of each. It plays the role of ``torch.utils.data.DistributedSampler``, over groups and batches.
"""
from __future__ import annotations

from typing import Iterator, Optional

import numpy as np
import torch

from pyro_groups.validation import ArgumentError, check_int

__all__ = ["DistributedGroupSampler", "epoch_generator"]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator for ``(seed, epoch)``; independent streams for different pairs (numpy's
    ``SeedSequence``), unlike ``seed + epoch``."""
    words = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(words[0]) << 31 ^ int(words[1]))


def _default_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class DistributedGroupSampler:
    """Per-rank minibatches of distinct groups.

    At every step the ranks' index sets are disjoint and together form one global batch of
    ``batch_size * num_replicas`` groups. Iterating yields this rank's ``[batch_size]`` index
    tensors (CPU, int64) for the current epoch; call :meth:`set_epoch` before each epoch.

    :param num_groups: data-set size :math:`N`.
    :param batch_size: groups per rank and step, :math:`G`.
    :param num_replicas: number of ranks :math:`W` (default: the initialised process group's
        size, else 1).
    :param rank: this process's rank (default: from the process group, else 0).
    :param shuffle: a new permutation every epoch (else the groups in order).
    :param seed: seeds the permutations; must be the same on every rank.
    :param drop_last: drop the last, partial global batch. Otherwise it is completed with the
        epoch's first groups (as ``DistributedSampler`` does), so that every group is seen every
        epoch and at most ``B - 1`` groups twice.
    :raises ArgumentError: on bad arguments, or when :math:`N < B` (a global batch would repeat a
        group).
    """

    def __init__(
        self,
        num_groups: int,
        batch_size: int,
        *,
        num_replicas: Optional[int] = None,
        rank: Optional[int] = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        world, here = _default_world()
        num_replicas = world if num_replicas is None else num_replicas
        rank = here if rank is None else rank
        num_groups = check_int(num_groups, "num_groups", min=1)
        batch_size = check_int(batch_size, "batch_size", min=1)
        num_replicas = check_int(num_replicas, "num_replicas", min=1)
        rank = check_int(rank, "rank", min=0, max=num_replicas - 1)
        if num_groups < batch_size * num_replicas:
            raise ArgumentError(
                f"a global batch of {batch_size} groups x {num_replicas} ranks needs at least "
                f"{batch_size * num_replicas} groups; the data set has {num_groups}"
            )
        self.num_groups, self.batch_size = num_groups, batch_size
        self.num_replicas, self.rank = num_replicas, rank
        self.shuffle, self.drop_last = shuffle, drop_last
        self.seed = check_int(seed, "seed")
        self.epoch = 0

    @property
    def global_batch_size(self) -> int:
        """:math:`B = G W`."""
        return self.batch_size * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` (the same on every rank)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Steps per epoch."""
        b = self.global_batch_size
        return self.num_groups // b if self.drop_last else -(-self.num_groups // b)

    def order(self) -> torch.Tensor:
        """The epoch's group order, cut into global batches: ``[len(self) * B]``."""
        n, b = self.num_groups, self.global_batch_size
        if self.shuffle:
            order = torch.randperm(n, generator=epoch_generator(self.seed, self.epoch))
        else:
            order = torch.arange(n)
        total = len(self) * b
        return order[:total] if total <= n else torch.cat([order, order[: total - n]])

    def global_batches(self) -> Iterator[torch.Tensor]:
        """Every rank's indices at each step, ``[num_replicas, batch_size]`` (rank ``r`` is row
        ``r``): the global batches a single process would train on."""
        for batch in self.order().view(len(self), self.num_replicas, self.batch_size):
            yield batch

    def __iter__(self) -> Iterator[torch.Tensor]:
        for batch in self.global_batches():
            yield batch[self.rank]
