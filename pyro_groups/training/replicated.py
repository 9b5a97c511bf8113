r"""``fit_replicated()``: ``R`` independent training runs (seeds, or rows of the same shapes) as
one computation in one process, each giving the numbers of its solo ``fit``.

Design: a leading batch of independent models. Replicate :math:`r` is a solo run
``(model_r, guide_r, penalties_r)`` with its ``seed_r``, as :func:`~pyro_groups.training.fit.fit`
would train it. The engine

1. stacks the replicates' networks (:func:`~pyro_groups.nn_replicated.stack_modules`: every
   ``nn.Linear`` becomes a batched layer of weights ``[R, out, in]``), so that the unchanged
   Python code of the model, the guide and the critics runs once on ``x`` ``[R, G, K, *event]``,
   ``mask`` ``[R, G, K]``, inside an outer ``"replicates"`` plate (dim -3);
2. draws replicate :math:`r`'s minibatches from its own generator seeded with ``seed_r`` (as
   ``fit`` does), pads them to the common width and stacks them;
3. minimises :math:`\sum_r \big(-\mathrm{ELBO}_r + \mathrm{pen}_r\big)` with one guide pass per
   step (:class:`~pyro_groups.adversary.penalized.PenalizedLoss` over
   :class:`~pyro_groups.training.replicas.ReplicatedTraceELBO` and
   :class:`~pyro_groups.adversary.replicated_mi.ReplicatedMIPenalty`): replicate :math:`r`'s
   parameters get the gradient of their own term only;
4. takes one step of one elementwise optimiser (Adam) over the stacked parameters, which is
   slice by slice the step of ``R`` separate optimisers; gradient clipping is per replicate;
5. draws replicate :math:`r`'s reparameterisation noise and its penalty's pairs from replicate
   :math:`r`'s own generators, in the shapes and order of the solo run
   (:class:`~pyro_groups.training.replicas.ReplicateNoise`).

**Exactness**: replicate :math:`r` follows the solo run ``fit(model_r, guide_r, data,
seed=seed_r, ...)`` of the same modules (built under the same global seed) step by step: the same
batches, noise, pairs and updates, equal up to floating-point summation order (per-replicate
products, sums over padded slots): to 1e-10 in double precision (the tests). In single precision
the critics drift by ~1e-4 within a few steps (their gradient is a near-cancelling difference at
the start, which Adam normalises into a full step), so long replicated and solo runs agree in
distribution, not digit by digit. Different seeds give independent streams; equal seeds give
identical replicates.

After training (and after a divergence), every solo module holds its replicate's parameters
(penalties: critic, optimiser state, moving average, pair generator), as if ``fit`` had trained
it. Per-epoch callbacks get the solo modules, synchronised, under the replicate's own random
stream. Limits: networks whose parameters all sit in ``nn.Linear`` layers (``GroupVAE`` with a
parameter-free decoder, ``GroupGuide`` without a convolutional body), reparameterised Normal
guide sites, :class:`~pyro_groups.adversary.mi_penalty.MIPenalty` penalties, ``Trace_ELBO``.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Callable, Iterator, Optional, Sequence, cast

import pyro
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from pyro_groups.adversary.penalized import PenalizedLoss
from pyro_groups.adversary.mi_penalty import MIPenalty
from pyro_groups.adversary.replicated_mi import ReplicatedMIPenalty
from pyro_groups.data.batch import check_group_inputs
from pyro_groups.data.dataset import GroupedData
from pyro_groups.errors import ArgumentError, TrainingDivergedError
from pyro_groups.nn_replicated import stack_modules, unstack_into
from pyro_groups.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pyro_groups.training.device import step_setup
from pyro_groups.training.guard import all_finite
from pyro_groups.training.fit import _check_args, _epoch_means, resolve_device
from pyro_groups.training.history import History
from pyro_groups.training.optim import OptimizerArg
from pyro_groups.training.replicas import (
    Replicated,
    ReplicatedTraceELBO,
    ReplicateNoise,
    stack_batches,
)
from pyro_groups.training.state import data_fingerprint
from pyro_groups.training.step import loss_callable, unique_params
from pyro_groups.validation import check_int

__all__ = ["fit_replicated"]

Callback = Callable[[int, nn.Module, nn.Module], dict[str, float]]


def _replicas(replicas: Sequence[Sequence[Any]]) -> list[tuple[nn.Module, nn.Module, list]]:
    out = []
    for r, rep in enumerate(replicas):
        if not isinstance(rep, (tuple, list)) or len(rep) not in (2, 3):
            raise ArgumentError(f"replica {r} must be (model, guide) or (model, guide, penalties)")
        out.append((rep[0], rep[1], list(rep[2]) if len(rep) == 3 else []))
    return out


def _group_penalties(pens: list[list[nn.Module]]) -> list[tuple[int, ReplicatedMIPenalty]]:
    """One stacked penalty per (position in the replicates' lists, penalty kind)."""
    groups: dict[tuple[Any, ...], list[tuple[int, nn.Module]]] = {}
    for r, plist in enumerate(pens):
        for i, p in enumerate(plist):
            critic = getattr(p, "critic", None)
            key = (i, type(p), type(critic), getattr(p, "name", None))
            groups.setdefault(key, []).append((r, p))
    return [
        (key[0], ReplicatedMIPenalty([cast(MIPenalty, p) for _, p in members],
                                     [r for r, _ in members]))
        for key, members in groups.items()
    ]


@contextlib.contextmanager
def _global_streams(generators: Sequence[torch.Generator]) -> Iterator[None]:
    """Run with the global generators (CPU, and CUDA if given) set to ``generators``' states, and
    carry what was drawn back into them: the solo run's global streams."""
    cuda = [g.device for g in generators if g.device.type == "cuda"]
    with torch.random.fork_rng(devices=cuda):
        for g in generators:
            if g.device.type == "cuda":
                torch.cuda.set_rng_state(g.get_state(), g.device)
            else:
                torch.set_rng_state(g.get_state())
        yield
        for g in generators:
            g.set_state(torch.cuda.get_rng_state(g.device) if g.device.type == "cuda"
                        else torch.get_rng_state())


def _clip(params: Sequence[nn.Parameter], clip_norm: float) -> None:
    """``clip_grad_norm_`` of each replicate's slice of the stacked gradients on its own."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
    coef = (clip_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))


def _bad_replicates(loss: Tensor, params: Sequence[nn.Parameter]) -> list[int]:
    bad = ~torch.isfinite(loss)
    for p in params:
        if p.grad is not None:
            bad |= ~torch.isfinite(p.grad).flatten(1).all(1)
    return torch.nonzero(bad).flatten().tolist()


class _Run:
    """The stacked state of a replicated run and its per-replicate bookkeeping."""

    def __init__(self, reps: list[tuple[nn.Module, nn.Module, list]], seeds: list[int],
                 dev: torch.device, num_particles: int) -> None:
        self.reps, self.seeds, self.R = reps, seeds, len(reps)
        self.model = stack_modules([m for m, _, _ in reps])
        self.guide = stack_modules([g for _, g, _ in reps])
        self.penalties = _group_penalties([p for _, _, p in reps])
        for _, pen in self.penalties:
            pen.to(dev)
        self.noise = ReplicateNoise([torch.Generator(dev).manual_seed(s) for s in seeds])
        self.batch_gens = [torch.Generator().manual_seed(s) for s in seeds]
        self.cpu_gens = (self.noise.generators if dev.type == "cpu"
                         else [torch.Generator().manual_seed(s) for s in seeds])
        self.elbo = ReplicatedTraceELBO(self.R, num_particles)
        pens = [pen for _, pen in self.penalties]
        self.objective = PenalizedLoss(self.elbo, pens) if pens else self.elbo
        self.model_call = Replicated(self.model, self.R)
        self.guide_call = Replicated(self.guide, self.R, self.noise)
        self.params = unique_params([self.model, self.guide])

    def elbo_loss(self) -> Tensor:
        if self.elbo.per_replicate is None:
            raise RuntimeError("no step has been taken")
        return self.elbo.per_replicate

    def loss_vector(self) -> Tensor:
        total = self.elbo_loss().clone()
        for _, pen in self.penalties:
            if pen.values is not None:
                total[pen.member_index] += pen.values
        return total

    def records(self) -> dict[str, Tensor]:
        """This step's records per replicate ``[R]`` (NaN where a replicate has none)."""
        loss = self.elbo_loss()
        out = {"loss": loss}
        for pos, pen in self.penalties:
            for key, values in ((f"penalty_{pos}", pen.values), (f"{pen.name}_bound", pen.bounds)):
                if values is not None:
                    row = out.setdefault(key, torch.full_like(loss, float("nan")))
                    row[pen.member_index] = values.to(loss.dtype)
        return out

    def write_back(self) -> None:
        for r, (model, guide, _) in enumerate(self.reps):
            unstack_into(self.model, r, model)
            unstack_into(self.guide, r, guide)
        for _, pen in self.penalties:
            pen.write_back()

    def state(self, opt: torch.optim.Optimizer) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "guide": self.guide.state_dict(),
            "optimizer": opt.state_dict(),
            "penalties": [pen.state_dict() for _, pen in self.penalties],
            "noise": [g.get_state() for g in self.noise.generators],
            "batches": [g.get_state() for g in self.batch_gens],
            "cpu": [g.get_state() for g in self.cpu_gens],
        }

    def load(self, state: dict[str, Any], opt: torch.optim.Optimizer) -> None:
        self.model.load_state_dict(state["model"])
        self.guide.load_state_dict(state["guide"])
        opt.load_state_dict(state["optimizer"])
        for (_, pen), s in zip(self.penalties, state["penalties"]):
            pen.load_state_dict(s)
        for g, s in zip(self.noise.generators + self.batch_gens + self.cpu_gens,
                        state["noise"] + state["batches"] + state["cpu"]):
            g.set_state(s)

    def streams(self, r: int) -> list[torch.Generator]:
        """Replicate ``r``'s global streams (CPU, and the device's)."""
        gens = [self.cpu_gens[r], self.noise.generators[r]]
        return list({id(g): g for g in gens}.values())


def _step(run: _Run, opt: torch.optim.Optimizer, batch: Any, num_groups: int,
          clip_norm: Optional[float], where: str, validate: Optional[bool] = None) -> None:
    """One step of every replicate, as :func:`~pyro_groups.training.step.train_step` takes a
    solo step (the NaN guard and the gradient clipping per replicate)."""
    validation = contextlib.nullcontext() if validate is None else pyro.validation_enabled(validate)
    with validation:
        try:
            total = loss_callable(run.objective)(run.model_call, run.guide_call, batch.x,
                                                 batch.mask, num_groups=num_groups)
        except ValueError as e:
            if "invalid values" not in str(e):
                raise
            raise TrainingDivergedError(
                f"a distribution got NaN/inf parameters in one of the replicates at {where}; no "
                f"update was applied. ({str(e).splitlines()[0]})"
            ) from e
        opt.zero_grad(set_to_none=True)
        total.backward(inputs=list(run.params))
        _update(run, opt, total, clip_norm, where)


def _update(run: _Run, opt: torch.optim.Optimizer, total: Tensor, clip_norm: Optional[float],
            where: str) -> None:
    if not bool(all_finite(total, run.params)):
        bad = _bad_replicates(run.loss_vector(), run.params)
        opt.zero_grad(set_to_none=True)
        raise TrainingDivergedError(
            f"non-finite loss or gradient in replicates {bad} (seeds "
            f"{[run.seeds[r] for r in bad]}) at {where}; the update was not applied to any "
            "replicate, so every solo model, guide and penalty keeps its last good state. Try a "
            "smaller learning rate or clip_norm, or leave the seed out."
        )
    if clip_norm is not None:
        _clip(run.params, clip_norm)
    opt.step()
    if isinstance(run.objective, PenalizedLoss):
        run.objective.step_critics()


def fit_replicated(
    replicas: Sequence[Sequence[Any]],
    data: GroupedData | Sequence[GroupedData],
    *,
    seeds: Sequence[int],
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 1e-3,
    optimizer: Optional[OptimizerArg] = None,
    num_particles: int = 1,
    clip_norm: Optional[float] = None,
    device: Optional[str | torch.device] = None,
    progress: bool = True,
    checkpoint: Optional[str | os.PathLike] = None,
    resume: bool = False,
    callback: Optional[Callback | Sequence[Callback]] = None,
) -> list[History]:
    """Train ``R`` replicates at once; replicate ``r`` as ``fit(*replicas[r][:2], data,
    penalties=replicas[r][2], seed=seeds[r], ...)`` would (see the module docstring).

    :param replicas: ``(model, guide)`` or ``(model, guide, penalties)`` per replicate, built as
        for their solo runs (e.g. each under ``pyro.set_rng_seed(seed)``), of identical network
        shapes where they share a role; trained in place.
    :param data: one data set for all, or one per replicate (same size and event shape).
    :param seeds: one per replicate: seeds its minibatch order and its random stream, as ``fit``'s
        ``seed`` does.
    :param optimizer: as in ``fit``; it must be elementwise (Adam, SGD, AdamW, ...) for the
        replicates to stay independent.
    :param callback: ``callback(epoch, model, guide) -> dict`` called per replicate with its solo
        modules, or one such callable per replicate.
    :param checkpoint: a path written atomically after every epoch; ``resume=True`` continues
        from it exactly (the same replicas, seeds and data, else ``CheckpointError``).
    :returns: one :class:`History` per replicate (``seconds`` is the shared epoch's wall time).
    :raises TrainingDivergedError: naming the replicates (and seeds) with a NaN/inf loss or
        gradient; no replicate was updated at that step.
    """
    _check_args(epochs, batch_size, lr, num_particles, clip_norm)
    reps = _replicas(replicas)
    R = len(reps)
    if R == 0:
        raise ArgumentError("fit_replicated needs at least one replica")
    seeds = [check_int(s, f"seeds[{r}]") for r, s in enumerate(seeds)]
    if len(seeds) != R:
        raise ArgumentError(f"seeds must be {R} ints, one per replica, got {seeds!r}")
    datasets = [data] * R if isinstance(data, GroupedData) else list(data)
    if len(datasets) != R:
        raise ArgumentError(f"data must be one GroupedData or {R} of them, got {len(datasets)}")
    if len({(len(d), tuple(d.event_shape)) for d in datasets}) != 1 or len(datasets[0]) == 0:
        raise ArgumentError(
            "the replicates' data sets must be non-empty, of one size and event shape"
        )
    callbacks: list[Optional[Callback]] = (
        list(callback) if isinstance(callback, (list, tuple)) else [callback] * R  # type: ignore
    )
    if len(callbacks) != R:
        raise ArgumentError(f"callback must be one callable or {R} of them")
    dev = resolve_device(device)
    datasets = [d.to(dev) for d in datasets]
    for model, guide, pens in reps:
        for m in (model, guide, *pens):
            m.to(dev)
    if dev.type == "cuda":
        for d in datasets:
            check_group_inputs(d.x, d.mask, values=True)
    run = _Run(reps, seeds, dev, num_particles)
    setup = step_setup(dev, run.params, lr=lr, optimizer=optimizer, penalised=True)
    opt = setup.optimizer
    identity = {"data": [data_fingerprint(d) for d in datasets], "seeds": seeds,
                "penalties": [[type(p).__name__ for p in pens] for _, _, pens in reps]}
    histories, start = [History() for _ in range(R)], 0
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        state = load_checkpoint(checkpoint, map_location=dev)
        if state.get("identity") != identity:
            raise CheckpointError(f"checkpoint {checkpoint} was written for other replicas, seeds "
                                  "or data; pass another path or resume=False")
        run.load(state["run"], opt)
        start, histories = state["epoch"] + 1, [History(h) for h in state["histories"]]
    n = len(datasets[0])
    try:
        for epoch in tqdm(range(start, epochs), disable=not progress, desc="fit_replicated",
                          unit="epoch"):
            t0 = time.perf_counter()
            totals: dict[str, Tensor] = {}
            seen: dict[str, Tensor] = {}
            steps = 0
            iters = [d.batches(batch_size, generator=g) for d, g in zip(datasets, run.batch_gens)]
            for parts in zip(*iters):
                batch, run.noise.widths = stack_batches(parts)
                _step(run, opt, batch, n, clip_norm, f"epoch {epoch}, step {steps}",
                      setup.validate)
                for k, v in run.records().items():
                    v = v.detach().double()
                    totals[k] = totals.get(k, 0.0) + v.nan_to_num(0.0)
                    seen[k] = seen.get(k, False) | ~v.isnan()
                steps += 1
            seconds = time.perf_counter() - t0
            if any(cb is not None for cb in callbacks):
                run.write_back()
            for r in range(R):
                kept: dict[str, Tensor | float] = {
                    k: float(v[r]) for k, v in totals.items() if seen[k][r]
                }
                row: dict[str, Any] = {"epoch": epoch, **_epoch_means(kept, steps, n),
                                       "seconds": seconds}
                cb = callbacks[r]
                if cb is not None:
                    with _global_streams(run.streams(r)):
                        row.update(cb(epoch, reps[r][0], reps[r][1]))
                histories[r].append(row)
            if checkpoint is not None:
                save_checkpoint(checkpoint, {"run": run.state(opt), "epoch": epoch,
                                             "histories": [h.to_list() for h in histories],
                                             "identity": identity})
    finally:
        run.write_back()
    return histories
