"""The Exam-Scores comparison trained data-parallel on several processes, GPUs or machines.

Under ``torchrun`` every process runs :func:`run_distributed` (``pyro-groups exam-scores
--distributed``): the (row, seed) jobs are trained one after the other, each by all processes
together with :func:`~pyro_groups.training.distributed.fit_distributed`. The global batch is the
single-process run's ``Config.batch_size`` groups, split evenly over the processes, so a step sees
as many groups as in ``pyro-groups exam-scores`` (the numbers differ by the random streams, not by
the setting). Rank 0 evaluates every epoch (the four hold-out errors), measures the MI probe,
writes ``results.json`` and the figures as :func:`~pyro_groups.experiments.exam_scores.run` does.
"""
from __future__ import annotations

import os
import time
from functools import partial
from typing import Any, Optional

import pyro

from pyro_groups.data.exam_scores import exam_scores
from pyro_groups.evaluation.exam_scores import exam_scores_errors
from pyro_groups.evaluation.mi_probe import mi_probe
from pyro_groups.experiments.exam_scores import (
    Config,
    _translation_panel,
    build,
    check_rows,
    write_results,
)
from pyro_groups.training.ddp_sync import init_process_group, rank_device
from pyro_groups.training.distributed import fit_distributed
from pyro_groups.validation import ArgumentError

__all__ = ["run_distributed"]


def _errors(epoch: int, model: Any, guide: Any, *, holdout: Any, seed: int) -> dict[str, float]:
    return exam_scores_errors(model, guide, holdout, seed=seed)


def run_distributed(
    cfg: Config, out: str | os.PathLike, *, progress: bool = True
) -> Optional[dict[str, Any]]:
    """Train every (row, seed) job data-parallel; rank 0 writes the results into ``out`` and
    returns them (the other ranks return ``None``).

    :raises ArgumentError: when ``cfg.batch_size`` does not split evenly over the processes.
    """
    check_rows(cfg)
    dev = rank_device(cfg.device)
    world, rank = init_process_group(dev)
    if cfg.batch_size % world:
        raise ArgumentError(
            f"batch_size {cfg.batch_size} (groups per step) does not split over {world} "
            "processes; choose a multiple"
        )
    data = exam_scores(cfg.groups, seed=cfg.data_seed, noise=cfg.noise)
    train, holdout = data.split(cfg.holdout, seed=cfg.data_seed)
    holdout = holdout.to(dev)
    runs, wall = [], time.perf_counter()
    jobs = [(name, seed) for seed in range(cfg.seeds) for name in cfg.rows]
    for i, (name, seed) in enumerate(jobs):
        pyro.clear_param_store()
        pyro.set_rng_seed(seed)
        model, guide, penalties = build(name, cfg)
        if progress and rank == 0:
            print(f"[{i + 1}/{len(jobs)}] {name}, seed {seed}", flush=True)
        history = fit_distributed(
            model, guide, train, epochs=cfg.epochs, batch_size=cfg.batch_size // world,
            lr=cfg.lr, penalties=penalties, seed=seed, device=dev, progress=progress,
            callback=partial(_errors, holdout=holdout, seed=seed),
        )
        if rank == 0:
            probe = cfg.extra.get("probe", {})
            runs.append({
                "model": name,
                "seed": seed,
                "history": history.to_list(),
                "v_leak": mi_probe(guide, holdout, seed=seed, **probe)["held_out"],
                "translation": _translation_panel(model, guide, holdout, name),
            })
    if rank != 0:
        return None
    return write_results(runs, cfg, out, world_size=world,
                         wall_seconds=time.perf_counter() - wall)
