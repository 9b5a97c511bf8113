"""How long ``pyro-groups exam-scores`` (its default or ``--paper``) takes on idle cores, from one
timed epoch of each of its jobs, without running it.

For every job of :func:`pyro_groups.experiments.exam_scores.plan_jobs` (runs of one guide
architecture trained as replicates by
:func:`~pyro_groups.training.replicated.fit_replicated`), at the setting's N and batch size, one
thread, in this process:

- ``epoch``: the CPU (and wall) seconds of ``--epochs`` epoch(s) of the job, with the
  experiment's per-epoch hold-out errors (``callback``, also timed on their own), divided by the
  epochs timed;
- ``records``: the end-of-run records of the job's runs (the held-out MI probe and the
  translation panel), once.

A job's CPU seconds at the full setting are ``epochs * epoch + records``. The run's estimate on
``--cores`` idle cores schedules the jobs in plan order on that many single-threaded workers, each
taking the next job when it is free (as ``run_jobs`` does): the makespan, beside the lower bound
``sum / cores``. With ``--solo`` it also times one epoch of ``fit`` for one seed of every row (the
``--replicas 1`` run) and extrapolates it the same way.

Usage::

    python benchmarks/exam_scores_time.py --setting paper --out results/exam_scores_time
    python benchmarks/exam_scores_time.py --smoke-test --out /tmp/est
"""
from __future__ import annotations

import argparse
import heapq
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import pyro
import torch

from pyro_groups.evaluation.exam_scores import exam_scores_errors
from pyro_groups.experiments.environment import environment, smoke_requested
from pyro_groups.experiments.exam_scores import (
    Config,
    _data,
    _record,
    build,
    paper_config,
    plan_jobs,
    smoke_config,
)
from pyro_groups.training.fit import fit
from pyro_groups.training.replicated import fit_replicated


class _Clock:
    """CPU and wall seconds spent inside the wrapped callables."""

    def __init__(self) -> None:
        self.cpu = self.wall = 0.0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any) -> Any:
            c, w = time.process_time(), time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.cpu += time.process_time() - c
                self.wall += time.perf_counter() - w

        return timed


def _errors(holdout: Any, seed: int) -> Callable[..., dict[str, float]]:
    return lambda epoch, m, g: exam_scores_errors(m, g, holdout, seed=seed)


def time_job(runs: list[tuple[str, int]], cfg: Config, epochs: int) -> dict[str, Any]:
    """One job's per-epoch and end-of-run seconds (replicated when it has several runs)."""
    pyro.clear_param_store()
    c0, w0 = time.process_time(), time.perf_counter()
    train, holdout = _data(cfg)
    replicas = []
    for name, seed in runs:
        pyro.set_rng_seed(seed)
        replicas.append(build(name, cfg))
    clock = _Clock()
    callbacks = [clock.wrap(_errors(holdout, seed)) for _, seed in runs]
    setup_cpu = time.process_time() - c0
    c1, w1 = time.process_time(), time.perf_counter()
    if len(runs) > 1:
        histories = fit_replicated(
            replicas, train, seeds=[s for _, s in runs], epochs=epochs, batch_size=cfg.batch_size,
            lr=cfg.lr, device=cfg.device, progress=False, callback=callbacks,
        )
    else:
        (model, guide, pens), (_, seed) = replicas[0], runs[0]
        histories = [fit(model, guide, train, penalties=pens, epochs=epochs,
                         batch_size=cfg.batch_size, lr=cfg.lr, seed=seed, device=cfg.device,
                         progress=False, callback=callbacks[0])]
    c2, w2 = time.process_time(), time.perf_counter()
    for (name, seed), h, rep in zip(runs, histories, replicas):
        _record(name, seed, h, rep[0], rep[1], holdout, cfg)
    c3, w3 = time.process_time(), time.perf_counter()
    return {
        "runs": [list(r) for r in runs],
        "setup_cpu_seconds": setup_cpu,
        "epoch_cpu_seconds": (c2 - c1) / epochs,
        "epoch_wall_seconds": (w2 - w1) / epochs,
        "callback_cpu_seconds_per_epoch": clock.cpu / epochs,
        "records_cpu_seconds": c3 - c2,
        "wall_seconds": w3 - w0,
    }


def job_seconds(job: dict[str, Any], epochs: int) -> float:
    return job["setup_cpu_seconds"] + epochs * job["epoch_cpu_seconds"] + job[
        "records_cpu_seconds"]


def makespan(seconds: list[float], cores: int) -> float:
    """Jobs taken in order by ``cores`` workers, each taking the next when free."""
    free = [0.0] * max(1, cores)
    for s in seconds:
        heapq.heapreplace(free, free[0] + s)
    return max(free)


def estimate(jobs: list[dict[str, Any]], cfg: Config, cores: int, copies: int = 1) -> dict:
    seconds = [job_seconds(j, cfg.epochs) for j in jobs for _ in range(copies)]
    return {
        "job_count": len(seconds),
        "cpu_seconds": sum(seconds),
        "lower_bound_minutes": sum(seconds) / cores / 60,
        "minutes": makespan(seconds, cores) / 60,
        "longest_job_minutes": max(seconds) / 60,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=("paper", "default"), default="paper")
    parser.add_argument("--epochs", type=int, default=1, help="epochs timed per job")
    parser.add_argument("--cores", type=int, default=2, help="idle cores to estimate for")
    parser.add_argument("--solo", action="store_true", help="also time one solo fit per row")
    parser.add_argument("--smoke-test", action="store_true")
    parser.add_argument("--out", default="results/exam_scores_time")
    args = parser.parse_args(argv)
    smoke = smoke_requested(args.smoke_test)
    cfg = (replace(smoke_config(), rows=("cxvae", "gvae"), seeds=2) if smoke
           else paper_config() if args.setting == "paper" else Config())
    epochs = 1 if smoke else args.epochs
    torch.set_num_threads(1)
    wall, cpu = time.perf_counter(), time.process_time()
    jobs = [time_job(runs, cfg, epochs) for runs in plan_jobs(cfg)]
    result: dict[str, Any] = {
        "benchmark": "exam_scores_time",
        "config": {"smoke_test": smoke, "setting": "smoke" if smoke else args.setting,
                   "groups": cfg.groups, "epochs": cfg.epochs, "seeds": cfg.seeds,
                   "rows": list(cfg.rows), "replicas": cfg.replicas,
                   "batch_size": cfg.batch_size, "epochs_timed": epochs, "cores": args.cores},
        "environment": environment("cpu"),
        "results": [{"variant": "replicated", "jobs": jobs,
                     **estimate(jobs, cfg, args.cores)}],
    }
    if args.solo or smoke:
        solo = [time_job([(name, 0)], cfg, epochs) for name in cfg.rows]
        result["results"].append({"variant": "solo", "jobs": solo,
                                  **estimate(solo, cfg, args.cores, copies=cfg.seeds)})
    result["wall_seconds"] = time.perf_counter() - wall
    result["cpu_seconds"] = time.process_time() - cpu
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1))
    for r in result["results"]:
        print(f"{r['variant']}: {r['job_count']} jobs, {r['cpu_seconds']:.0f} CPU-s, "
              f"{r['minutes']:.1f} min on {args.cores} idle "
              f"cores (lower bound {r['lower_bound_minutes']:.1f})")
    return result


if __name__ == "__main__":
    main()
