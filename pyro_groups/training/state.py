"""What a checkpoint of ``fit`` holds, and resuming from it with the run's identity checked."""
from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence

import torch
from torch import nn

from pyro_groups.data.dataset import GroupedData
from pyro_groups.training.checkpoint import CheckpointError, rng_state, set_rng_state
from pyro_groups.training.history import History


def data_fingerprint(data: GroupedData) -> dict[str, Any]:
    """Size, shapes and a checksum of the observed values: enough to tell another data set."""
    return {
        "groups": len(data),
        "shape": list(data.x.shape),
        "observations": int(data.mask.sum()),
        "checksum": float(data.x.double().sum()),
    }


def run_identity(data: GroupedData, penalties: Sequence[nn.Module], loss: Any) -> dict[str, Any]:
    """What must not change between a run and its resumption."""
    return {
        "data": data_fingerprint(data),
        "penalties": [type(p).__name__ for p in penalties],
        "loss": type(loss).__name__,
    }


def run_state(
    model: nn.Module,
    guide: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss: Any,
    *,
    penalties: Sequence[nn.Module],
    epoch: int,
    history: History,
    generator: torch.Generator,
    identity: dict[str, Any],
) -> dict[str, Any]:
    """Everything needed to resume exactly after ``epoch``."""
    return {
        "model": model.state_dict(),
        "guide": guide.state_dict(),
        "optimizer": optimizer.state_dict(),
        "penalties": [p.state_dict() for p in penalties],
        "loss": loss.state_dict() if isinstance(loss, nn.Module) else None,
        "epoch": epoch,
        "history": history.to_list(),
        "rng": rng_state(generator),
        "identity": identity,
    }


def _load(module: nn.Module, state: dict[str, Any], what: str, path: str) -> None:
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(
            f"checkpoint {path} holds a different {what} (its parameters do not match this "
            f"one's: {first}); pass another checkpoint path or resume=False"
        ) from e


def restore(
    state: dict[str, Any],
    path: str,
    model: nn.Module,
    guide: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss: Any,
    *,
    penalties: Sequence[nn.Module],
    generator: torch.Generator,
    identity: dict[str, Any],
    lr: Optional[float],
) -> tuple[int, History]:
    """Load ``state`` into the run; returns ``(first epoch to train, history)``.

    :raises CheckpointError: when the checkpoint is of another model, guide, data set, set of
        penalties or loss.
    """
    saved = state.get("identity")
    if saved is not None:
        for key, what in (("data", "data set"), ("penalties", "set of penalties"),
                          ("loss", "loss")):
            if saved[key] != identity[key]:
                raise CheckpointError(
                    f"checkpoint {path} was written for another {what} ({saved[key]} there, "
                    f"{identity[key]} here); pass another checkpoint path or resume=False"
                )
    _load(model, state["model"], "model", path)
    _load(guide, state["guide"], "guide", path)
    for i, (p, s) in enumerate(zip(penalties, state["penalties"])):
        _load(p, s, f"penalty {i} ({type(p).__name__})", path)
    if isinstance(loss, nn.Module) and state.get("loss") is not None:
        _load(loss, state["loss"], "loss", path)
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path}: the optimiser state does not fit ({e})") from e
    if lr is not None:
        old = [g["lr"] for g in optimizer.param_groups]
        if any(o != lr for o in old):
            warnings.warn(
                f"resuming with lr={lr}; the checkpoint's optimiser used lr={old[0]}: training "
                "continues with the new rate", UserWarning, stacklevel=3,
            )
            for g in optimizer.param_groups:
                g["lr"] = lr
    set_rng_state(state["rng"], generator)
    return state["epoch"] + 1, History(state["history"])
