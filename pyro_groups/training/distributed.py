r"""Data-parallel training on several processes, GPUs or machines: ``torchrun`` +
``torch.distributed`` + ``DistributedDataParallel`` (DDP) around the ELBO as a module.

Every process ("rank" :math:`r` of :math:`W`) holds the whole data set, the model, the guide and the
penalties. At each step a :class:`~pyro_groups.data.samplers.DistributedGroupSampler` gives every
rank :math:`G` groups of its own, distinct from the other ranks' (one global batch of
:math:`B = GW` groups); each rank runs :func:`~pyro_groups.training.step.train_step` on its
groups, DDP averages the model's and guide's gradients over the ranks during ``backward``, and the
identical Adam steps keep the ranks' parameters identical.

**Scale.** Each rank's loss is the ELBO of its :math:`G` groups scaled to the data set,
``num_groups = N`` (a subsampled plate: factor :math:`N/G`); DDP *averages* the :math:`W`
gradients, so the update follows

.. math::
    \frac{1}{W} \sum_{r=1}^{W} \nabla \Big(-\frac{N}{G} \sum_{i \in \mathcal{B}_r}
    \mathrm{ELBO}_i\Big) = \nabla \Big(-\frac{N}{B} \sum_{i \in \mathcal{B}}
    \mathrm{ELBO}_i\Big),

the single-process gradient on the global batch :math:`\mathcal{B}`: each group weighs
:math:`N / (GW)`. (Scaling each rank by :math:`N/(GW)` *and* averaging would make the gradient
:math:`W` times too small.) The reported loss is the mean of the ranks' losses, per group.

**Penalties.** A penalty is computed on each rank's own groups, so with penalties the objective
of a global batch is the mean over its :math:`W` shards of the shard penalties (what one process
computes when it accumulates the gradients of :math:`W` micro-batches). The critics are not in
DDP (the VAE's backward never reaches them; their gradients are taken on their own): every critic
optimiser averages its gradients over the ranks before each step
(:func:`~pyro_groups.training.ddp_sync.average_gradients_before_step`), the penalties'
floating-point buffers (MINE's moving average) are averaged after every critic step,
and rank 0's critics are broadcast at the start; so the critics stay identical too. Each rank
draws its pairs and its guide's noise from its own streams (seeded by
:func:`~pyro_groups.training.ddp_sync.rank_seed`). A critic step must run on every rank: a rank
whose batch has fewer than two groups of two or more observations would skip it and leave the
others waiting.

**Checkpoints** are written by rank 0 only (atomically, as ``fit``'s), with every rank's random
states, and resume exactly with the same number of processes. Launch with ``torchrun``; see the
README ("Distributed training").
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional, Sequence

import pyro
import torch
import torch.distributed as dist
from pyro.infer import ELBO
from pyro.infer.autoguide import AutoGuide
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from pyro_groups.adversary.penalized import PenalizedLoss
from pyro_groups.data.batch import check_group_inputs
from pyro_groups.data.dataset import GroupedData
from pyro_groups.data.samplers import DistributedGroupSampler
from pyro_groups.guides.auto import GroupAutoGuide
from pyro_groups.training.checkpoint import CheckpointError, load_checkpoint, rng_state
from pyro_groups.training.checkpoint import save_checkpoint
from pyro_groups.training.ddp_sync import (
    all_min,
    average_buffers,
    average_gradients_before_step,
    broadcast_module,
    gather_objects,
    generators,
    init_process_group,
    rank_device,
    rank_seed,
)
from pyro_groups.training.device import step_setup
from pyro_groups.training.fit import _check_args, _epoch_means, make_elbo
from pyro_groups.training.history import History
from pyro_groups.training.jit_warnings import uses_jit
from pyro_groups.training.optim import OptimizerArg
from pyro_groups.training.state import restore, run_identity, run_state
from pyro_groups.training.step import LossFn, loss_callable, train_step, unique_params
from pyro_groups.validation import ArgumentError, ArgumentTypeError, check_int

__all__ = ["ObjectiveModule", "fit_distributed"]


class ObjectiveModule(nn.Module):
    """``model``, ``guide`` and a loss as one module, ``forward(x, mask, num_groups=N)`` -> the
    loss: what DDP wraps (like ``Trace_ELBO()(model, guide)``, for any loss of ``fit``).

    The loss (a ``PenalizedLoss`` holds the critics) is *not* a submodule: DDP synchronises the
    model's and guide's gradients only.
    """

    def __init__(self, model: nn.Module, guide: nn.Module, loss: ELBO | LossFn) -> None:
        super().__init__()
        self.model, self.guide = model, guide
        self.__dict__["loss"] = loss

    def forward(self, x: Tensor, mask: Tensor, *, num_groups: int, **kwargs: Any) -> Tensor:
        loss = loss_callable(self.__dict__["loss"])
        return loss(self.model, self.guide, x, mask, num_groups=num_groups, **kwargs)


class _DataParallelLoss:
    """The loss ``train_step`` sees: the DDP module's forward, with the wrapped loss's critic
    steps and records."""

    def __init__(self, ddp: DistributedDataParallel, loss: Any) -> None:
        self.ddp, self.loss = ddp, loss
        if hasattr(loss, "step_critics"):
            self.step_critics = loss.step_critics

    @property
    def records(self) -> dict[str, Tensor]:
        return self.loss.records

    def __call__(self, model: nn.Module, guide: nn.Module, x: Tensor, mask: Tensor, *,
                 num_groups: int, **kwargs: Any) -> Tensor:
        return self.ddp(x, mask, num_groups=num_groups, **kwargs)


def _rank_states(penalties: Sequence[nn.Module]) -> dict[str, Any]:
    return {
        "rng": rng_state(torch.Generator()),
        "generators": [{k: g.get_state() for k, g in generators(p).items()} for p in penalties],
    }


def _restore_rank(state: dict[str, Any], penalties: Sequence[nn.Module]) -> None:
    for pen, saved in zip(penalties, state["generators"]):
        for key, gen in generators(pen).items():
            gen.set_state(saved[key])


def _reduce_totals(totals: dict[str, Tensor | float], world: int) -> dict[str, Tensor | float]:
    """The ranks' mean of each summed record (one all-reduce)."""
    keys = sorted(totals)
    if not keys:
        return totals
    first = next(iter(totals.values()))
    device = first.device if isinstance(first, Tensor) else torch.device("cpu")
    flat = torch.stack([torch.as_tensor(totals[k], dtype=torch.float64, device=device)
                        for k in keys])
    dist.all_reduce(flat)
    return dict(zip(keys, flat / world))


def fit_distributed(
    model: nn.Module,
    guide: nn.Module,
    data: GroupedData,
    *,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 1e-3,
    optimizer: Optional[OptimizerArg] = None,
    loss: str | ELBO | LossFn = "trace",
    num_particles: int = 1,
    penalties: Sequence[nn.Module] = (),
    clip_norm: Optional[float] = None,
    seed: int = 0,
    device: Optional[str | torch.device] = None,
    progress: bool = True,
    checkpoint: Optional[str | os.PathLike] = None,
    resume: bool = False,
    callback: Optional[Callable[[int, nn.Module, nn.Module], dict[str, float]]] = None,
    drop_last: bool = False,
    find_unused_parameters: bool = False,
) -> History:
    """``fit`` on every process of a ``torch.distributed`` run (see the module docstring).

    Call it on every rank with the same arguments and the same data; build the model, guide and
    penalties the same way on every rank (rank 0's initial parameters are broadcast).

    :param batch_size: groups per process and step, :math:`G`; a step trains on
        ``batch_size * world_size`` groups.
    :param seed: seeds the group order (the same on every rank) and each rank's random streams
        (:func:`~pyro_groups.training.ddp_sync.rank_seed`).
    :param device: ``"cuda"`` for one GPU per process (``cuda:LOCAL_RANK``), else the CPU.
    :param checkpoint: written by rank 0 after every epoch; ``resume=True`` continues exactly,
        with the same number of processes.
    :param callback: ``callback(epoch, model, guide) -> dict``, run on rank 0 only; its record
        is sent to every rank's history.
    :param drop_last: drop an epoch's last partial global batch instead of completing it with
        repeated groups.
    :param find_unused_parameters: DDP's option, for guides with parameters that a step may not
        use.
    :returns: the per-epoch :class:`~pyro_groups.training.history.History`, the same on every rank.
    """
    _check_args(epochs, batch_size, lr, num_particles, clip_norm)
    seed = check_int(seed, "seed")
    if isinstance(guide, (AutoGuide, GroupAutoGuide)):
        raise ArgumentTypeError(
            f"fit_distributed does not train {type(guide).__name__}: an autoguide's per-group "
            "parameters would get every rank's zero gradients averaged in; use an amortised guide"
        )
    elbo = make_elbo(loss, num_particles)
    if uses_jit(elbo):
        raise ArgumentError("fit_distributed does not run JIT ELBOs; use loss='trace'")
    dev = rank_device(device)
    world, rank = init_process_group(dev)
    n = len(data)
    sampler = DistributedGroupSampler(n, batch_size, num_replicas=world, rank=rank, seed=seed,
                                      drop_last=drop_last)
    on_gpu = dev.type == "cuda"
    data = data.to(dev)
    if on_gpu:
        check_group_inputs(data.x, data.mask, values=True)
    for m in (model, guide, *penalties):
        m.to(dev)
    pyro.set_rng_seed(rank_seed(seed, rank))
    for pen in penalties:
        broadcast_module(pen)
        for gen in generators(pen).values():
            gen.manual_seed(rank_seed(gen.initial_seed(), rank))
    objective = PenalizedLoss(elbo, penalties) if penalties else elbo
    _create_parameters(model, guide, data, batch_size, n, dev)
    ddp = DistributedDataParallel(
        ObjectiveModule(model, guide, objective), device_ids=[dev.index] if on_gpu else None,
        find_unused_parameters=find_unused_parameters,
    )
    params = unique_params([model, guide])
    setup = step_setup(dev, params, lr=lr, optimizer=optimizer, penalised=bool(penalties),
                       reduce=all_min)
    opt, guard = setup.optimizer, setup.guard
    optimizers = [getattr(p, "optimizer", None) for p in penalties]
    hooks = [average_gradients_before_step(o) for o in optimizers
             if isinstance(o, torch.optim.Optimizer)]
    identity = {**run_identity(data, penalties, elbo), "world_size": world,
                "batch_size": batch_size}
    history, start = History(), 0
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        start, history = _resume(str(checkpoint), model, guide, opt, elbo, penalties, identity,
                                 rank, dev, lr if optimizer is None else None)
    step_loss = _DataParallelLoss(ddp, objective)
    bar = tqdm(range(start, epochs), disable=not progress or rank != 0, desc="fit", unit="epoch")
    try:
        for epoch in bar:
            t0 = time.perf_counter()
            sampler.set_epoch(epoch)
            totals: dict[str, Tensor | float] = {}
            steps = 0
            for index in sampler:
                record = train_step(
                    step_loss, model, guide, opt, params, data[index], num_groups=n,
                    clip_norm=clip_norm, where=f"epoch {epoch}, step {steps}", guard=guard,
                    validate=setup.validate,
                )
                if penalties:
                    average_buffers(penalties)
                for k, v in record.items():
                    v = v.detach().double() if isinstance(v, Tensor) else float(v)
                    totals[k] = totals[k] + v if k in totals else v
                steps += 1
            guard.check()
            row: dict[str, Any] = {"epoch": epoch,
                                   **_epoch_means(_reduce_totals(totals, world), steps, n)}
            row["seconds"] = time.perf_counter() - t0
            extra = [callback(epoch, model, guide) if callback is not None and rank == 0 else {}]
            dist.broadcast_object_list(extra, src=0)
            row.update(extra[0])
            history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4g}")
            if checkpoint is not None:
                _save(str(checkpoint), model, guide, opt, elbo, penalties, epoch, history,
                      identity, rank)
    finally:
        for h in hooks:
            h.remove()
    return history


def _create_parameters(model: nn.Module, guide: nn.Module, data: GroupedData, batch_size: int,
                       n: int, dev: torch.device) -> None:
    """Run the model and guide once (lazily created parameters must exist before DDP takes the
    module's parameters), on a forked random stream so that the run draws what it would
    without it."""
    first = data[torch.arange(min(batch_size, n))]
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), torch.no_grad():
        tracer = pyro.poutine.trace(guide).get_trace(first.x, first.mask, num_groups=n)
        pyro.poutine.replay(model, trace=tracer)(first.x, first.mask, num_groups=n)


def _save(path: str, model: nn.Module, guide: nn.Module, opt: torch.optim.Optimizer, loss: Any,
          penalties: Sequence[nn.Module], epoch: int, history: History,
          identity: dict[str, Any], rank: int) -> None:
    """Rank 0 writes the run's state with every rank's random states; all ranks wait for it."""
    ranks = gather_objects(_rank_states(penalties))
    if rank == 0:
        state = run_state(model, guide, opt, loss, penalties=penalties, epoch=epoch,
                          history=history, generator=torch.Generator(), identity=identity)
        state["ranks"] = ranks
        save_checkpoint(path, state)
    dist.barrier()


def _resume(path: str, model: nn.Module, guide: nn.Module, opt: torch.optim.Optimizer, loss: Any,
            penalties: Sequence[nn.Module], identity: dict[str, Any], rank: int,
            dev: torch.device, lr: Optional[float]) -> tuple[int, History]:
    state = load_checkpoint(path, map_location=dev)
    saved = state.get("identity", {})
    for key in ("world_size", "batch_size"):
        if saved.get(key) != identity[key]:
            raise CheckpointError(
                f"checkpoint {path} was written with {key}={saved.get(key)}, this run has "
                f"{identity[key]}; resume with the same number of processes and batch size"
            )
    mine = state["ranks"][rank]
    start, history = restore({**state, "rng": mine["rng"]}, path, model, guide, opt, loss,
                             penalties=penalties, generator=torch.Generator(), identity=identity,
                             lr=lr)
    _restore_rank(mine, penalties)
    return start, history
