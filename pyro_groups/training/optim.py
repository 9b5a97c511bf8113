"""The optimiser ``fit`` and its relatives build from their ``optimizer`` argument."""
from __future__ import annotations

from typing import Callable, Optional

import torch
from pyro.optim import PyroOptim
from torch import nn

from pyro_groups.errors import ArgumentTypeError

__all__ = ["OptimizerArg", "make_optimizer"]

OptimizerArg = Callable[[list[nn.Parameter]], torch.optim.Optimizer] | PyroOptim


def make_optimizer(
    optimizer: Optional[OptimizerArg], params: list[nn.Parameter], lr: float,
    *, fused: Optional[bool] = None,
) -> torch.optim.Optimizer:
    """``torch.optim.Adam(params, lr, fused=fused)`` by default; a factory
    ``params -> torch optimizer``; or a Pyro optimiser (``pyro.optim.Adam({"lr": ...})``), whose
    torch class and arguments are used."""
    if optimizer is None:
        return torch.optim.Adam(params, lr=lr, fused=fused)
    if isinstance(optimizer, PyroOptim):
        args = optimizer.pt_optim_args
        if callable(args):
            raise ArgumentTypeError(
                "fit takes a Pyro optimiser with fixed arguments (pyro.optim.Adam({'lr': 1e-3})); "
                "per-parameter argument functions need a plain SVI loop, or pass a factory "
                "`lambda params: torch.optim.Adam(params, lr=...)`"
            )
        return optimizer.pt_optim_constructor(params, **args)
    if isinstance(optimizer, torch.optim.Optimizer):
        raise ArgumentTypeError(
            "optimizer must build the optimiser from the parameters fit collects: pass a factory "
            "such as `lambda params: torch.optim.Adam(params, lr=1e-3)` or a Pyro optimiser, not "
            "an optimiser instance"
        )
    if not callable(optimizer):
        raise ArgumentTypeError(
            f"optimizer must be a factory or a Pyro optimiser, got {optimizer!r}"
        )
    return optimizer(params)
