"""``fit()``: stochastic variational inference for a model/guide pair, with optional penalties.

The step is Pyro's SVI step written out so that a non-finite loss or gradient is caught *before*
the optimiser touches the parameters: training stops with :class:`TrainingDivergedError` and the
model, guide and checkpoint keep the last good state.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterable, Optional, Sequence

import pyro
import torch
from pyro.infer import ELBO, JitTrace_ELBO, Trace_ELBO, TraceMeanField_ELBO
from torch import nn
from tqdm.auto import tqdm

from pyro_groups.data.batch import GroupBatch
from pyro_groups.data.dataset import GroupedData
from pyro_groups.training.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from pyro_groups.training.history import History

LOSSES: dict[str, type[ELBO]] = {
    "trace": Trace_ELBO,
    "meanfield": TraceMeanField_ELBO,
    "jit": JitTrace_ELBO,
}


class TrainingDivergedError(RuntimeError):
    """The loss or a gradient became NaN/inf; parameters hold the last good state."""


def resolve_device(device: Optional[str | torch.device]) -> torch.device:
    """``torch.device(device)``, or CPU when ``None``; asking for an absent CUDA device is an
    error."""
    dev = torch.device(device if device is not None else "cpu")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {device!r} was asked for but CUDA is not available on this machine"
        )
    return dev


LossFn = Callable[..., torch.Tensor]


def make_elbo(loss: str | ELBO | LossFn, num_particles: int = 1) -> ELBO | LossFn:
    """An ELBO instance from a name in :data:`LOSSES`; an ELBO instance or a callable
    ``loss(model, guide, x, mask, num_groups=N) -> tensor`` (as ``pyro.infer.SVI`` accepts) is
    returned as it is."""
    if isinstance(loss, ELBO) or (callable(loss) and not isinstance(loss, str)):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)} or an ELBO instance, got {loss!r}")
    kwargs: dict[str, Any] = {"num_particles": num_particles}
    if loss == "jit":
        kwargs["ignore_jit_warnings"] = True
    return LOSSES[loss](**kwargs)


def _unique_params(modules: Iterable[nn.Module]) -> list[nn.Parameter]:
    seen: dict[int, nn.Parameter] = {}
    for m in modules:
        for p in m.parameters():
            seen.setdefault(id(p), p)
    return list(seen.values())


def _state(
    model, guide, optimizer, penalties, epoch, history, generator, loss=None
) -> dict[str, Any]:
    return {
        "model": model.state_dict(),
        "guide": guide.state_dict(),
        "optimizer": optimizer.state_dict(),
        "penalties": [p.state_dict() for p in penalties],
        "loss": loss.state_dict() if isinstance(loss, nn.Module) else None,
        "epoch": epoch,
        "history": history.to_list(),
        "rng": rng_state(generator),
    }


def fit(
    model: nn.Module,
    guide: nn.Module,
    data: GroupedData,
    *,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 1e-3,
    optimizer: Optional[Callable[[list[nn.Parameter]], torch.optim.Optimizer]] = None,
    loss: str | ELBO | LossFn = "trace",
    num_particles: int = 1,
    penalties: Sequence[nn.Module] = (),
    clip_norm: Optional[float] = None,
    seed: Optional[int] = 0,
    device: Optional[str | torch.device] = None,
    progress: bool = True,
    checkpoint: Optional[str | os.PathLike] = None,
    resume: bool = False,
    callback: Optional[Callable[[int, nn.Module, nn.Module], dict[str, float]]] = None,
) -> History:
    """Train ``guide`` and ``model`` by SVI on minibatches of groups.

    Each step minimises ``-ELBO(batch) * N / G`` plus each penalty's value; a penalty that has a
    ``critic_step(model, guide, batch, num_groups=N)`` method gets that call first (its critic on
    its own optimiser).

    :param loss: ``"trace"`` (``Trace_ELBO``, default), ``"meanfield"`` (``TraceMeanField_ELBO``:
        analytic KL where available), ``"jit"`` (``JitTrace_ELBO``; batches are then padded to a
        fixed shape), any Pyro ``ELBO`` with ``differentiable_loss``, or a callable
        ``loss(model, guide, x, mask, num_groups=N)`` returning a differentiable loss (the custom
        objectives of :mod:`pyro_groups.objectives`; the same callable works in ``pyro.infer.SVI``).
    :param optimizer: a factory ``params -> torch.optim.Optimizer`` (default ``Adam(lr)``).
    :param seed: seeds torch, numpy, Python and the minibatch order; ``None`` leaves them alone.
    :param device: ``"cpu"``, ``"cuda"``, ...; model, guide and penalties are moved there and each
        batch is moved on the fly.
    :param checkpoint: a path written atomically after every epoch; with ``resume=True`` an
        existing checkpoint there is loaded and training continues exactly where it stopped (a loss
        that is an ``nn.Module``, e.g. AnnealedVAE's capacity schedule, is checkpointed too).
    :param callback: ``callback(epoch, model, guide) -> dict`` of extra per-epoch metrics.
    :returns: the per-epoch :class:`History` (``loss`` is the negative ELBO per group).
    :raises TrainingDivergedError: on a NaN/inf loss or gradient (parameters left untouched).
    """
    dev = resolve_device(device)
    if len(data) == 0:
        raise ValueError("cannot fit on an empty data set")
    for m in (model, guide, *penalties):
        m.to(dev)
    generator = torch.Generator()
    if seed is not None:
        pyro.set_rng_seed(seed)
        generator.manual_seed(seed)
    elbo = make_elbo(loss, num_particles)
    fixed_shape = isinstance(elbo, JitTrace_ELBO)
    params = _unique_params([model, guide])
    opt = optimizer(params) if optimizer is not None else torch.optim.Adam(params, lr=lr)
    history = History()
    start = 0
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        state = load_checkpoint(checkpoint, map_location=dev)
        model.load_state_dict(state["model"])
        guide.load_state_dict(state["guide"])
        opt.load_state_dict(state["optimizer"])
        for p, s in zip(penalties, state["penalties"]):
            p.load_state_dict(s)
        if isinstance(elbo, nn.Module) and state.get("loss") is not None:
            elbo.load_state_dict(state["loss"])
        history = History(state["history"])
        start = state["epoch"] + 1
        set_rng_state(state["rng"], generator)

    n = len(data)
    if fixed_shape and start < epochs:
        # Compiling runs the model and guide three times; do it on a forked RNG so that a resumed
        # run draws the same random numbers as an uninterrupted one.
        first = next(data.batches(batch_size, shuffle=False, fixed_shape=True)).to(dev)
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            elbo.differentiable_loss(model, guide, first.x, first.mask, num_groups=n)
    bar = tqdm(range(start, epochs), disable=not progress, desc="fit", unit="epoch")
    for epoch in bar:
        t0 = time.perf_counter()
        totals: dict[str, float] = {}
        steps = 0
        for batch in data.batches(batch_size, generator=generator, fixed_shape=fixed_shape):
            batch = batch.to(dev)
            record = _step(
                model, guide, elbo, penalties, opt, params, batch, n, clip_norm, epoch, steps
            )
            for k, v in record.items():
                totals[k] = totals.get(k, 0.0) + v
            steps += 1
        row: dict[str, Any] = {"epoch": epoch, **{k: v / steps for k, v in totals.items()}}
        row["seconds"] = time.perf_counter() - t0
        if callback is not None:
            row.update(callback(epoch, model, guide))
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.4g}")
        if checkpoint is not None:
            save_checkpoint(
                checkpoint, _state(model, guide, opt, penalties, epoch, history, generator, elbo)
            )
    return history


def _step(
    model: nn.Module,
    guide: nn.Module,
    elbo: ELBO | LossFn,
    penalties: Sequence[nn.Module],
    opt: torch.optim.Optimizer,
    params: list[nn.Parameter],
    batch: GroupBatch,
    n: int,
    clip_norm: Optional[float],
    epoch: int,
    step: int,
) -> dict[str, float]:
    record: dict[str, float] = {}
    for pen in penalties:
        critic_step = getattr(pen, "critic_step", None)
        if critic_step is not None:
            record.update(critic_step(model, guide, batch, num_groups=n) or {})
    loss_fn = elbo.differentiable_loss if isinstance(elbo, ELBO) else elbo
    where = f"epoch {epoch}, step {step}"
    try:
        neg_elbo = loss_fn(model, guide, batch.x, batch.mask, num_groups=n)
    except ValueError as e:
        if "invalid values" not in str(e):
            raise
        raise TrainingDivergedError(
            f"a distribution got NaN/inf parameters at {where}; the update was not applied, so "
            "the model and guide keep the last good parameters. Try a smaller learning rate or "
            f"clip_norm. ({str(e).splitlines()[0]})"
        ) from e
    total = neg_elbo
    for i, pen in enumerate(penalties):
        value = pen(model, guide, batch, num_groups=n)
        record[f"penalty_{i}"] = float(value.detach()) / n
        total = total + value
    if not torch.isfinite(total):
        value = float(total.detach())
        raise TrainingDivergedError(
            f"non-finite loss ({value}) at {where}; the update was not applied, so the "
            "model and guide keep the last good parameters (and the last checkpoint is intact). "
            "Try a smaller learning rate or clip_norm."
        )
    opt.zero_grad(set_to_none=True)
    total.backward()
    bad = [
        i for i, p in enumerate(params) if p.grad is not None and not torch.isfinite(p.grad).all()
    ]
    if bad:
        opt.zero_grad(set_to_none=True)
        raise TrainingDivergedError(
            f"non-finite gradient in {len(bad)} parameter tensor(s) at {where}; the update was not "
            "applied, so the model and guide keep the last good parameters."
        )
    if clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, clip_norm)
    opt.step()
    record["loss"] = float(neg_elbo.detach()) / n
    return record
