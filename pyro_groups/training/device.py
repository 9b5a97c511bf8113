"""How a training step is set up for its device: the one place where ``fit``, ``fit_distributed``
and the benchmarks decide what differs on a GPU.

On a CPU the step is ``fit``'s documented default: Adam, the immediate NaN guard (one host read per
step, the error raised before the update) and Pyro's validation as the user set it. On a GPU
nothing in the step may wait for the device: the default Adam is fused, the NaN guard is deferred
(:mod:`~pyro_groups.training.guard`; with adversarial penalties it stays immediate, since their
critic updates read the device anyway and must not move after a bad step), and Pyro's validation
is off during the step (the data are checked once beforehand: its value checks read the device).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from pyro_groups.training.guard import NaNGuard, supports_found_inf
from pyro_groups.training.optim import OptimizerArg, make_optimizer


__all__ = ["StepSetup", "step_setup"]


@dataclass
class StepSetup:
    """What :func:`~pyro_groups.training.step.train_step` takes besides the loss and the batch:
    ``train_step(..., optimizer=s.optimizer, guard=s.guard, validate=s.validate)``; call
    ``s.guard.check()`` when logging."""

    optimizer: torch.optim.Optimizer
    guard: NaNGuard
    validate: Optional[bool]


def step_setup(
    device: torch.device,
    params: list[nn.Parameter],
    *,
    lr: float = 1e-3,
    optimizer: Optional[OptimizerArg] = None,
    penalised: bool = False,
    reduce: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
) -> StepSetup:
    """The optimiser, NaN guard and validation setting of a step on ``device`` (see the module
    docstring).

    :param optimizer: as ``fit``'s (default Adam, fused on a GPU).
    :param penalised: whether the loss has adversarial penalties (the guard then stays immediate).
    :param reduce: the guard's cross-process reduction (data parallelism).
    """
    on_gpu = device.type == "cuda"
    opt = make_optimizer(optimizer, params, lr, fused=True if on_gpu else None)
    deferred = on_gpu and not penalised and supports_found_inf(opt)
    return StepSetup(opt, NaNGuard(deferred=deferred, reduce=reduce), False if on_gpu else None)
