"""Training: the ``fit()`` SVI loop, checkpoints and per-epoch history."""
from pyro_groups.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pyro_groups.training.fit import LOSSES, TrainingDivergedError, fit, make_elbo, resolve_device
from pyro_groups.training.history import History

__all__ = [
    "LOSSES",
    "CheckpointError",
    "History",
    "TrainingDivergedError",
    "fit",
    "load_checkpoint",
    "make_elbo",
    "resolve_device",
    "save_checkpoint",
]
