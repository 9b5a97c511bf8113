"""Training: the ``fit()`` SVI loop, its guarded step (NaN guard, device setup), checkpoints,
per-epoch history, ``torch.compile`` of the networks, data-parallel ``fit_distributed`` and
``fit_replicated`` (several seeds or same-shape rows as one computation)."""
from pyro_groups.errors import TrainingDivergedError
from pyro_groups.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_modules,
    load_param_store,
    save_checkpoint,
    save_modules,
)
from pyro_groups.training.compile import compile_networks, uncompile_networks
from pyro_groups.training.device import StepSetup, step_setup
from pyro_groups.training.distributed import fit_distributed
from pyro_groups.training.fit import LOSSES, fit, make_elbo, make_optimizer, resolve_device
from pyro_groups.training.guard import NaNGuard
from pyro_groups.training.history import History
from pyro_groups.training.host_sync import HostSyncCounter
from pyro_groups.training.replicated import fit_replicated
from pyro_groups.training.step import train_step

__all__ = [
    "LOSSES",
    "CheckpointError",
    "History",
    "HostSyncCounter",
    "NaNGuard",
    "StepSetup",
    "TrainingDivergedError",
    "compile_networks",
    "fit",
    "fit_distributed",
    "fit_replicated",
    "load_checkpoint",
    "load_modules",
    "load_param_store",
    "make_elbo",
    "make_optimizer",
    "resolve_device",
    "save_checkpoint",
    "save_modules",
    "step_setup",
    "train_step",
    "uncompile_networks",
]
