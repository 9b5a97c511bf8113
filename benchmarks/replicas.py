"""Replicated seeds: ``R`` solo training steps against one replicated step of the same ``R`` runs.

For the Exam-Scores rows ``cxvae`` (DeepSets + conditional + set penalty) and ``gvae``
(average + unconditional), ``R`` in (1, 3, 7), 256 groups per step (the experiment's) and 16
(where Python and Pyro's per-step overhead dominates), one thread:

- ``solo``: ``R`` separate runs, each advanced by one step as ``fit`` steps it
  (:func:`pyro_groups.training.step.train_step` with ``PenalizedLoss(Trace_ELBO(), penalties)``,
  validation on, the minibatch drawn from the data set);
- ``replicated``: the same ``R`` runs advanced by one step of
  :func:`pyro_groups.training.replicated.fit_replicated`'s engine (``R`` minibatches drawn and
  stacked, one guide pass, one optimiser step, the critics' step).

Each repeat times a block of steps of both, in alternating order (paired and interleaved, so that
the shared machine's load hits both alike). Reported per (row, R): the median wall seconds to
advance all ``R`` runs by one step, solo and replicated, the CPU seconds alike, and the median
of the paired ratios ``solo / replicated`` (the speed-up; above 1 the replicated step is faster).

Usage::

    python benchmarks/replicas.py                      # writes results/replicas/results.json
    python benchmarks/replicas.py --smoke-test --out /tmp/replicas
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pyro
import torch
from pyro.infer import Trace_ELBO

from pyro_groups.adversary.penalized import PenalizedLoss
from pyro_groups.data import GroupedData, exam_scores
from pyro_groups.experiments.environment import environment, smoke_requested
from pyro_groups.experiments.exam_scores import Config, build
from pyro_groups.training.replicas import stack_batches
from pyro_groups.training.replicated import _Run, _step
from pyro_groups.training.step import train_step, unique_params

ROWS = ("cxvae", "gvae")


def _batches(data: GroupedData, size: int, seed: int) -> Iterator[Any]:
    gen = torch.Generator().manual_seed(seed)
    while True:
        yield from data.batches(size, generator=gen)


def solo_stepper(name: str, seeds: list[int], data: GroupedData, groups: int,
                 cfg: Config) -> Callable[[], None]:
    """Advance ``len(seeds)`` solo runs by one step each."""
    runs = []
    for seed in seeds:
        pyro.set_rng_seed(seed)
        model, guide, pens = build(name, cfg)
        objective = PenalizedLoss(Trace_ELBO(), pens) if pens else Trace_ELBO()
        params = unique_params([model, guide])
        opt = torch.optim.Adam(params, lr=cfg.lr)
        runs.append((objective, model, guide, opt, params, _batches(data, groups, seed)))

    def step() -> None:
        for objective, model, guide, opt, params, batches in runs:
            train_step(objective, model, guide, opt, params, next(batches), num_groups=len(data))

    return step


def replicated_stepper(name: str, seeds: list[int], data: GroupedData, groups: int,
                       cfg: Config) -> Callable[[], None]:
    """Advance the same runs by one replicated step."""
    reps = []
    for seed in seeds:
        pyro.set_rng_seed(seed)
        reps.append(build(name, cfg))
    run = _Run([(m, g, list(p)) for m, g, p in reps], seeds, torch.device("cpu"), 1)
    opt = torch.optim.Adam(run.params, lr=cfg.lr)
    streams = [_batches(data, groups, s) for s in seeds]

    def step() -> None:
        batch, run.noise.widths = stack_batches([next(b) for b in streams])
        _step(run, opt, batch, len(data), None, "benchmark")

    return step


def _time(step: Callable[[], None], steps: int) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return (time.perf_counter() - w) / steps, (time.process_time() - c) / steps


def measure(name: str, replicas: int, groups: int, repeats: int, steps: int,
            cfg: Config) -> dict[str, Any]:
    data = exam_scores(groups * 8, seed=0)
    seeds = list(range(replicas))
    variants = {"solo": solo_stepper(name, seeds, data, groups, cfg),
                "replicated": replicated_stepper(name, seeds, data, groups, cfg)}
    for step in variants.values():
        step()  # warm-up
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
    for i in range(repeats):
        order = list(variants) if i % 2 == 0 else list(variants)[::-1]
        for k in order:
            times[k].append(_time(variants[k], steps))
    ratios = [s[0] / r[0] for s, r in zip(times["solo"], times["replicated"])]
    row: dict[str, Any] = {"row": name, "replicas": replicas, "groups": groups}
    for k in variants:
        row[f"{k}_seconds_per_step"] = statistics.median(t[0] for t in times[k])
        row[f"{k}_cpu_seconds_per_step"] = statistics.median(t[1] for t in times[k])
    row["ratio"] = statistics.median(ratios)
    row["ratio_min"], row["ratio_max"] = min(ratios), max(ratios)
    row["cpu_ratio"] = row["solo_cpu_seconds_per_step"] / row["replicated_cpu_seconds_per_step"]
    return row


def figure(rows: list[dict[str, Any]], path: Path) -> None:
    from pyro_groups.plots import new_figure, save_figure

    sizes = sorted({r["groups"] for r in rows}, reverse=True)
    fig = new_figure(figsize=(5 * len(sizes), 3.5), layout="tight")
    axes = fig.subplots(1, len(sizes), squeeze=False)
    for ax, groups in zip(axes[0], sizes):
        for name in ROWS:
            mine = [r for r in rows if r["row"] == name and r["groups"] == groups]
            rs = [r["replicas"] for r in mine]
            for key, style in (("solo", "--"), ("replicated", "-")):
                ms = [1000 * r[f"{key}_cpu_seconds_per_step"] / r["replicas"] for r in mine]
                ax.plot(rs, ms, style, marker="o", label=f"{name} {key}")
        ax.set_xlabel("replicates R")
        ax.set_ylabel("CPU ms per replicate-step")
        ax.set_title(f"{groups} groups a step")
        ax.legend(fontsize=8)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke-test", action="store_true")
    parser.add_argument("--out", default="results/replicas")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--steps", type=int, default=3, help="steps per timed block")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 3, 7])
    parser.add_argument("--groups", type=int, nargs="+", default=[256, 16])
    args = parser.parse_args(argv)
    smoke = smoke_requested(args.smoke_test)
    torch.set_num_threads(1)
    pyro.enable_validation(True)
    config = {
        "smoke_test": smoke,
        "rows": list(ROWS),
        "replicas": [1, 2] if smoke else args.replicas,
        "groups": [32] if smoke else args.groups,
        "repeats": 2 if smoke else args.repeats,
        "steps": 1 if smoke else args.steps,
        "validation": True,
    }
    cfg = Config()
    wall, cpu = time.perf_counter(), time.process_time()
    results = [
        measure(name, r, g, config["repeats"], config["steps"], cfg)
        for g in config["groups"] for name in ROWS for r in config["replicas"]
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "replicas",
        "config": config,
        "environment": environment("cpu"),
        "results": results,
        "wall_seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
    }
    (out / "results.json").write_text(json.dumps(result, indent=1))
    figure(results, out / "replicas.png")
    for r in results:
        print(f"{r['groups']:4d} groups {r['row']:6s} R={r['replicas']}: "
              f"solo {1000 * r['solo_seconds_per_step']:.1f} ms, "
              f"replicated {1000 * r['replicated_seconds_per_step']:.1f} ms, "
              f"speed-up {r['ratio']:.2f}x (CPU {r['cpu_ratio']:.2f}x)")
    return result


if __name__ == "__main__":
    main()
