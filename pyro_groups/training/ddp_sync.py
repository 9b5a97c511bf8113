"""What keeps the processes of a data-parallel run identical: the process group, per-rank seeds and
devices, and the synchronisation of what ``DistributedDataParallel`` does not see (the penalties'
critics, their buffers and random streams)."""
from __future__ import annotations

import io
import os
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "all_min",
    "average_buffers",
    "average_gradients_before_step",
    "broadcast_module",
    "gather_objects",
    "generators",
    "init_process_group",
    "rank_device",
    "rank_seed",
]


def init_process_group(device: torch.device) -> tuple[int, int]:
    """``(world_size, rank)`` of the current process group, initialising it from the environment
    that ``torchrun`` sets (``nccl`` on GPUs, ``gloo`` on CPUs) when there is none.

    :raises RuntimeError: when there is no process group and no ``torchrun`` environment.
    """
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed")
    if not dist.is_initialized():
        missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
                   if k not in os.environ]
        if missing:
            raise RuntimeError(
                f"no process group and no torchrun environment ({', '.join(missing)} unset): "
                "launch with `torchrun --nproc_per_node=N ...`, or call "
                "torch.distributed.init_process_group first"
            )
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_world_size(), dist.get_rank()


def rank_device(device: Optional[str | torch.device]) -> torch.device:
    """This process's device: ``"cuda"`` becomes ``cuda:LOCAL_RANK`` (one GPU per process, made
    the current one); anything else is used as given (CPU by default)."""
    dev = torch.device(device if device is not None else "cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} was asked for but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(dev)
    return dev


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s random streams: ``seed`` itself on rank 0, independent streams
    (numpy's ``SeedSequence([seed, rank])``, 32 bits as ``pyro.set_rng_seed`` needs) on the
    others."""
    if rank == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(rank)]).generate_state(1, np.uint32)[0])


def generators(module: nn.Module) -> dict[str, torch.Generator]:
    """The ``torch.Generator`` attributes of ``module`` and its submodules (a penalty's pair
    sampling), by dotted name."""
    return {
        f"{prefix}.{key}" if prefix else key: value
        for prefix, sub in module.named_modules()
        for key, value in vars(sub).items()
        if isinstance(value, torch.Generator)
    }


def _flat_all_reduce(tensors: Sequence[Tensor], op: Any, scale: float = 1.0) -> None:
    """All-reduce ``tensors`` (same dtype) in place as one flat buffer, times ``scale``."""
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat, op=op)
    if scale != 1.0:
        flat.mul_(scale)
    for t, part in zip(tensors, flat.split([t.numel() for t in tensors])):
        t.copy_(part.view_as(t))


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Give every rank ``src``'s parameters and buffers of ``module``."""
    tensors = [*module.parameters(), *module.buffers()]
    with torch.no_grad():
        for t in tensors:
            dist.broadcast(t.data, src)


def average_gradients_before_step(optimizer: torch.optim.Optimizer) -> Any:
    """Make ``optimizer`` average its parameters' gradients over the ranks before every step
    (one all-reduce; a step pre-hook). Returns the hook's handle (``.remove()``)."""
    world = dist.get_world_size()

    def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        by_dtype: dict[torch.dtype, list[Tensor]] = {}
        for grad in grads:
            by_dtype.setdefault(grad.dtype, []).append(grad)
        for same in by_dtype.values():
            _flat_all_reduce(same, dist.ReduceOp.SUM, 1.0 / world)

    return optimizer.register_step_pre_hook(hook)


def average_buffers(modules: Sequence[nn.Module]) -> None:
    """Average the floating-point buffers of ``modules`` over the ranks (e.g. MINE's moving
    average, which each rank updates from its own batch)."""
    buffers = [b for m in modules for b in m.buffers() if b.is_floating_point()]
    with torch.no_grad():
        by_dtype: dict[torch.dtype, list[Tensor]] = {}
        for b in buffers:
            by_dtype.setdefault(b.dtype, []).append(b)
        for same in by_dtype.values():
            _flat_all_reduce(same, dist.ReduceOp.SUM, 1.0 / dist.get_world_size())


def all_min(flag: Tensor) -> Tensor:
    """A boolean flag that holds on every rank (the NaN guard's common decision)."""
    value = flag.to(torch.int32).reshape(1)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return value[0].bool()


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (anything ``torch.save`` writes, tensors included), in rank order,
    on every rank."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, buffer.getvalue())
    return [torch.load(io.BytesIO(b), weights_only=False) for b in out]


Reduce = Callable[[Tensor], Tensor]
