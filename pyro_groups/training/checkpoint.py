"""Atomic checkpoints of a training run, and the random-number state needed to resume exactly."""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyro_groups.errors import PyroGroupsError

FORMAT = "pyro_groups.checkpoint/1"


class CheckpointError(PyroGroupsError, RuntimeError):
    """A checkpoint is missing, corrupt, or was not written by pyro_groups."""


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Capture torch (CPU and CUDA), numpy, Python and the data generator's states."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]),
        "python": random.getstate(),
        "data": generator.get_state(),
    }


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy(), *rest))
    random.setstate(state["python"])
    generator.set_state(state["data"])


def atomic_save(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save(obj)`` to ``path`` atomically: a temporary file in the same folder, flushed
    to disk, then renamed over ``path``. A crash while writing leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (:func:`atomic_save`)."""
    atomic_save(path, {"format": FORMAT, **state})


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    :raises CheckpointError: when the file is missing, truncated/corrupt or of another format.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable: {e}") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a pyro_groups checkpoint (format {FORMAT!r})")
    return state


MODULES_FORMAT = "pyro_groups.modules/1"


def save_modules(path: str | os.PathLike, **modules: torch.nn.Module) -> None:
    """Save trained modules (model, guide, penalties, ...) by name, atomically::

        save_modules("cxvae.pt", model=model, guide=guide)

    Rebuild the same architecture and call :func:`load_modules` to restore them.
    """
    if not modules:
        raise ValueError("save_modules needs at least one module, e.g. model=..., guide=...")
    state = {name: m.state_dict() for name, m in modules.items()}
    atomic_save(path, {"format": MODULES_FORMAT, "modules": state})


def load_modules(
    path: str | os.PathLike, map_location: Any = "cpu", **modules: torch.nn.Module
) -> None:
    """Load what :func:`save_modules` wrote into modules of the same architecture, by name.

    :raises CheckpointError: when the file is missing or corrupt, a name is not in it, or a
        module's parameters do not match.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no saved modules at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:
        raise CheckpointError(f"{path} is corrupt or unreadable: {e}") from e
    if not isinstance(state, dict) or state.get("format") != MODULES_FORMAT:
        raise CheckpointError(f"{path} was not written by save_modules (format {MODULES_FORMAT!r})")
    saved = state["modules"]
    for name, module in modules.items():
        if name not in saved:
            raise CheckpointError(f"{path} holds no module {name!r}; it holds {sorted(saved)}")
        try:
            module.load_state_dict(saved[name])
        except (RuntimeError, KeyError, ValueError) as e:
            first = str(e).strip().splitlines()[0]
            raise CheckpointError(
                f"{path}: module {name!r} does not match the saved one ({first})"
            ) from e


def load_param_store(path: str | os.PathLike, *modules: torch.nn.Module) -> None:
    """``pyro.get_param_store().load(path)``, then copy the loaded values into ``modules``.

    A ``PyroModule`` owns its ``nn.Parameter`` s: Pyro's param store refers to them while the module
    runs, but loading a store replaces the store's tensors without touching the module's. This
    copies each parameter ``"<module name>.<parameter path>"`` back into the module.

    :raises CheckpointError: when the store lacks one of the modules' parameters or its shape
        differs (e.g. modules built with other names or sizes).
    """
    import pyro

    store = pyro.get_param_store()
    store.load(str(path))
    for module in modules:
        prefix = getattr(module, "_pyro_name", "")
        for name, param in module.named_parameters():
            full = f"{prefix}.{name}" if prefix else name
            if full not in store:
                raise CheckpointError(
                    f"the param store loaded from {path} has no parameter {full!r}: build the "
                    f"modules with the names they were saved under (name=...)"
                )
            value = store.get_param(full).detach()
            if value.shape != param.shape:
                raise CheckpointError(
                    f"parameter {full!r} has shape {tuple(value.shape)} in the param store, "
                    f"{tuple(param.shape)} in the module"
                )
            with torch.no_grad():
                param.copy_(value)
