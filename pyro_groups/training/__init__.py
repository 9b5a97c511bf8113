"""Training: the ``fit()`` SVI loop, its guarded step, checkpoints and per-epoch history."""
from pyro_groups.errors import TrainingDivergedError
from pyro_groups.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_modules,
    load_param_store,
    save_checkpoint,
    save_modules,
)
from pyro_groups.training.fit import LOSSES, fit, make_elbo, make_optimizer, resolve_device
from pyro_groups.training.history import History
from pyro_groups.training.step import train_step

__all__ = [
    "LOSSES",
    "CheckpointError",
    "History",
    "TrainingDivergedError",
    "fit",
    "load_checkpoint",
    "load_modules",
    "load_param_store",
    "make_elbo",
    "make_optimizer",
    "resolve_device",
    "save_checkpoint",
    "save_modules",
    "train_step",
]
