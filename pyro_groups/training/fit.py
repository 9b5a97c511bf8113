"""``fit()``: stochastic variational inference for a model/guide pair, with optional penalties.

Each step is :func:`~pyro_groups.training.step.train_step`: one guide pass shared by the ELBO and
the penalties, a NaN guard before the update, then the adversaries' updates. Between epochs the
run is checkpointed atomically (:mod:`~pyro_groups.training.state`), so that ``resume=True``
continues exactly where it stopped.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional, Sequence

import pyro
from pyro import poutine
import torch
from pyro.infer import ELBO, JitTrace_ELBO, Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.autoguide import AutoGuide
from torch import Tensor, nn
from tqdm.auto import tqdm

from pyro_groups.adversary.penalized import PenalizedLoss
from pyro_groups.data.batch import check_group_inputs
from pyro_groups.data.dataset import GroupedData
from pyro_groups.errors import ArgumentError, ArgumentTypeError, TrainingDivergedError
from pyro_groups.guides.auto import GroupAutoGuide
from pyro_groups.training.checkpoint import load_checkpoint, save_checkpoint
from pyro_groups.training.compile import compile_networks
from pyro_groups.training.device import step_setup
from pyro_groups.training.history import History
from pyro_groups.training.jit_warnings import quiet_jit
from pyro_groups.training.optim import OptimizerArg, make_optimizer
from pyro_groups.training.state import restore, run_identity, run_state
from pyro_groups.training.step import LossFn, train_step, unique_params
from pyro_groups.validation import (
    check_device,
    check_int,
    check_positive_float,
    check_positive_int,
)

__all__ = ["LOSSES", "TrainingDivergedError", "fit", "make_elbo", "make_optimizer",
           "resolve_device"]

LOSSES: dict[str, type[ELBO]] = {
    "trace": Trace_ELBO,
    "meanfield": TraceMeanField_ELBO,
    "jit": JitTrace_ELBO,
}


def resolve_device(device: Optional[str | torch.device]) -> torch.device:
    """``torch.device(device)``, or CPU when ``None``; an unknown, absent or data-less device
    (``"banana"``, ``"cuda"`` without CUDA, ``"meta"``) is an ``ArgumentError``."""
    return check_device(device)


def make_elbo(loss: str | ELBO | LossFn, num_particles: int = 1) -> ELBO | LossFn:
    """An ELBO instance from a name in :data:`LOSSES`; an ELBO instance or a callable
    ``loss(model, guide, x, mask, num_groups=N) -> tensor`` (as ``pyro.infer.SVI`` accepts) is
    returned as it is."""
    if isinstance(loss, ELBO) or (callable(loss) and not isinstance(loss, str)):
        return loss
    if loss not in LOSSES:
        raise ArgumentError(
            f"loss must be one of {sorted(LOSSES)} or an ELBO instance, got {loss!r}"
        )
    kwargs: dict[str, Any] = {"num_particles": num_particles}
    if loss == "jit":
        kwargs["ignore_jit_warnings"] = True
    return LOSSES[loss](**kwargs)


def _check_args(epochs: int, batch_size: int, lr: float, num_particles: int,
                clip_norm: Optional[float]) -> None:
    check_int(epochs, "epochs", min=0)
    check_positive_int(batch_size, "batch_size")
    check_positive_int(num_particles, "num_particles")
    check_positive_float(lr, "lr")
    if clip_norm is not None:
        check_positive_float(clip_norm, "clip_norm")


def fit(
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
    seed: Optional[int] = 0,
    device: Optional[str | torch.device] = None,
    progress: bool = True,
    checkpoint: Optional[str | os.PathLike] = None,
    resume: bool = False,
    callback: Optional[Callable[[int, nn.Module, nn.Module], dict[str, float]]] = None,
    compile: bool | dict[str, Any] = False,
) -> History:
    """Train ``guide`` and ``model`` by SVI on minibatches of groups.

    Each step minimises ``-ELBO(batch) * N / G`` plus each penalty's value, from one guide pass
    (:class:`~pyro_groups.adversary.penalized.PenalizedLoss`); the penalties' adversaries then
    take their steps on the same codes, detached, on their own optimisers.

    :param loss: ``"trace"`` (``Trace_ELBO``, default), ``"meanfield"`` (``TraceMeanField_ELBO``:
        analytic KL where available), ``"jit"`` (``JitTrace_ELBO``; batches are then padded to a
        fixed shape), any Pyro ``ELBO`` with ``differentiable_loss`` (``TraceEnum_ELBO`` for models
        with enumerated discrete sites), or a callable ``loss(model, guide, x, mask, num_groups=N)``
        returning a differentiable loss (the objectives of :mod:`pyro_groups.objectives`; the
        same callable works in ``pyro.infer.SVI``).
    :param optimizer: a factory ``params -> torch.optim.Optimizer`` or a Pyro optimiser such as
        ``pyro.optim.Adam({"lr": 1e-3})`` (default ``torch.optim.Adam(params, lr)``).
    :param seed: seeds torch, numpy, Python and the minibatch order; ``None`` leaves them alone.
        The initial weights were drawn when the modules were built: seed before building them
        (``pyro.set_rng_seed``) for a run that is reproducible from scratch.
    :param device: ``"cpu"``, ``"cuda"``, ...; model, guide, penalties and data are moved there.
        On a GPU the step does not wait for the device: the data's values are checked once,
        then Pyro's validation is off during training; the default Adam is fused, and without
        penalties the NaN guard is deferred (a non-finite step and all later ones are skipped on
        the device, and the error is raised at the end of the epoch;
        :mod:`~pyro_groups.training.guard`).
    :param checkpoint: a path written atomically after every epoch; with ``resume=True`` an
        existing checkpoint there is loaded and training continues exactly where it stopped. It
        must be of the same model, guide, data, penalties and loss (else ``CheckpointError``); a
        new ``lr`` replaces the saved one, with a warning.
    :param callback: ``callback(epoch, model, guide) -> dict`` of extra per-epoch metrics.
    :param compile: compile the networks of the model and guide with ``torch.compile``
        (:func:`~pyro_groups.training.compile.compile_networks`; a network that cannot be
        compiled runs eagerly, with a warning; the penalties' critics stay eager); a dict gives
        ``torch.compile`` 's arguments (``{"mode": "max-autotune"}``).
    :returns: the per-epoch :class:`History` (``loss`` is the negative ELBO per group).
    :raises TrainingDivergedError: on a NaN/inf loss or gradient (parameters left untouched).
    """
    _check_args(epochs, batch_size, lr, num_particles, clip_norm)
    dev = resolve_device(device)
    if len(data) == 0:
        raise ArgumentError("cannot fit on an empty data set")
    data = data.to(dev)
    for m in (model, guide, *penalties):
        m.to(dev)
    generator = torch.Generator()
    if seed is not None:
        pyro.set_rng_seed(seed)
        generator.manual_seed(seed)
    elbo = make_elbo(loss, num_particles)
    objective = PenalizedLoss(elbo, penalties) if penalties else elbo
    if isinstance(guide, AutoGuide):
        raise ArgumentTypeError(
            f"fit got a bare {type(guide).__name__}: its plates would pair its per-group "
            f"parameters with the wrong groups; wrap it: GroupAutoGuide({type(guide).__name__}, "
            "model) (pyro_groups.guides.GroupAutoGuide)"
        )
    fixed_shape = isinstance(elbo, JitTrace_ELBO)
    pad = isinstance(guide, GroupAutoGuide)
    if pad:
        _materialise(guide, data, batch_size, dev)
    params = unique_params([model, guide])
    if not params:
        raise ArgumentError("the model and guide have no parameters to train")
    setup = step_setup(dev, params, lr=lr, optimizer=optimizer, penalised=bool(penalties))
    opt, guard = setup.optimizer, setup.guard
    if dev.type == "cuda":
        check_group_inputs(data.x, data.mask, values=True)
    if compile:
        compile_networks(model, guide, **(compile if isinstance(compile, dict) else {}))
    identity = run_identity(data, penalties, elbo)
    history, start = History(), 0
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        start, history = restore(
            load_checkpoint(checkpoint, map_location=dev), str(checkpoint), model, guide, opt,
            elbo, penalties=penalties, generator=generator, identity=identity,
            lr=lr if optimizer is None else None,
        )
    n = len(data)
    if isinstance(elbo, JitTrace_ELBO) and start < epochs:
        _compile(elbo, model, guide, data, batch_size, n, dev)
    bar = tqdm(range(start, epochs), disable=not progress, desc="fit", unit="epoch")
    for epoch in bar:
        t0 = time.perf_counter()
        totals: dict[str, Tensor | float] = {}
        steps = 0
        for batch in data.batches(batch_size, generator=generator, fixed_shape=fixed_shape,
                                  pad=pad):
            record = train_step(
                objective, model, guide, opt, params, batch, num_groups=n, clip_norm=clip_norm,
                where=f"epoch {epoch}, step {steps}", guard=guard, validate=setup.validate,
                **_plate_kwargs(guide, batch),
            )
            for k, v in record.items():
                v = v.detach().double() if isinstance(v, Tensor) else float(v)
                totals[k] = totals[k] + v if k in totals else v
            steps += 1
        guard.check()
        row: dict[str, Any] = {"epoch": epoch, **_epoch_means(totals, steps, n)}
        row["seconds"] = time.perf_counter() - t0
        if callback is not None:
            row.update(callback(epoch, model, guide))
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.4g}")
        if checkpoint is not None:
            save_checkpoint(checkpoint, run_state(
                model, guide, opt, elbo, penalties=penalties, epoch=epoch, history=history,
                generator=generator, identity=identity,
            ))
    return history


def _plate_kwargs(guide: nn.Module, batch: Any) -> dict[str, Any]:
    """An autoguide keeps local parameters per group: it needs the batch's group indices."""
    if isinstance(guide, GroupAutoGuide) and batch.index is not None:
        return {"group_index": batch.index}
    return {}


def _materialise(guide: nn.Module, data: GroupedData, batch_size: int, dev: torch.device) -> None:
    """Run a guide that creates its parameters on first use (a Pyro autoguide) once, on a forked
    RNG, so that the optimiser sees them and the random streams stay those of the run."""
    first = next(data.batches(batch_size, shuffle=False, pad=True))
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), torch.no_grad():
        poutine.trace(guide).get_trace(first.x, first.mask, num_groups=len(data),
                                       group_index=first.index)


def _epoch_means(totals: dict[str, Tensor | float], steps: int, n: int) -> dict[str, float]:
    """Per-step means (read once per epoch); the loss and penalties per group."""
    per_group = {k for k in totals if k == "loss" or k.startswith("penalty_")}
    return {k: float(v) / steps / (n if k in per_group else 1) for k, v in totals.items()}


def _compile(elbo: ELBO, model: nn.Module, guide: nn.Module, data: GroupedData, batch_size: int,
             n: int, dev: torch.device) -> None:
    """Compile a JIT ELBO on a forked RNG, so that a resumed run draws the same random numbers as
    an uninterrupted one (compiling runs the model and guide three times)."""
    first = next(data.batches(batch_size, shuffle=False, fixed_shape=True))
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), quiet_jit():
        elbo.differentiable_loss(model, guide, first.x, first.mask, num_groups=n)
