"""``torch.compile`` 's speed-up on the library's training steps: ``fit(compile=True)`` against
eager, paired in one run.

Cases (each one optimisation step as ``fit`` takes it: :func:`pyro_groups.training.train_step`
with :func:`pyro_groups.training.device.step_setup`'s optimiser, guard and validation):

- ``elbo``: the Exam-Scores ``cxvae-reg-none`` row (DeepSets + conditional encoder, hidden
  (64, 64)), ELBO only, at each ``--groups`` groups per step;
- ``cxvae``: the ``cxvae`` row with its set-based penalty (the penalised step);
- ``conv``: the disentanglement benchmark's GVAE (convolutional encoder and decoder, 32x32
  sprites, groups of 4 sharing shape and scale, 16 groups per step).

For each case both variants are built from the same seed; the compiled one compiles its networks
(:func:`pyro_groups.training.compile.compile_networks`, inductor by default) during the warm-up,
whose time is recorded as ``compile_seconds``. Then every repeat times ``steps`` steps of both
variants in alternating order, so that the machine's changing load hits both alike; ``ratio`` is
the median over repeats of ``compiled / eager`` seconds per step (below 1: compiling helps).
``results.json`` also records the process's CPU seconds.

Usage::

    python benchmarks/compile.py                          # writes results/compile/results.json
    python benchmarks/compile.py --smoke-test --out /tmp/compile   # seconds (also under CI)
    python benchmarks/compile.py --device cuda --backend inductor
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import pyro
import torch

from pyro_groups.adversary import PenalizedLoss
from pyro_groups.data import GroupBatch, Sprites, exam_scores, group_by_factors
from pyro_groups.experiments import disentanglement as dis
from pyro_groups.experiments.environment import environment, smoke_requested
from pyro_groups.experiments.exam_scores import Config, build
from pyro_groups.training import resolve_device, train_step
from pyro_groups.training.compile import compile_networks
from pyro_groups.training.device import step_setup
from pyro_groups.training.step import unique_params

CASES = ("elbo", "cxvae", "conv")
Step = Callable[[GroupBatch], None]


def _modules(case: str, device: torch.device) -> tuple[Any, Any, Any, list]:
    """``(model, guide, loss, penalties)`` of ``case``, freshly seeded."""
    torch.manual_seed(0)
    pyro.clear_param_store()
    if case == "conv":
        model, guide, loss, penalties = dis.build("gvae", 4, dis.Config(image_size=32), 1)
    else:
        model, guide, penalties = build("cxvae-reg-none" if case == "elbo" else "cxvae",
                                        Config(device=str(device)))
        loss = pyro.infer.Trace_ELBO()
    for m in (model, guide, *penalties):
        m.to(device)
    return model, guide, PenalizedLoss(loss, penalties) if penalties else loss, penalties


def make_step(case: str, compiled: bool, num_groups: int, device: torch.device,
              options: dict[str, Any]) -> tuple[Step, Callable[[], None]]:
    """A step closure of ``case`` (eager or compiled) and its guard's check."""
    model, guide, loss, penalties = _modules(case, device)
    if compiled:
        compile_networks(model, guide, **options)  # as fit(compile=...): critics stay eager
    params = unique_params([model, guide])
    setup = step_setup(device, params, lr=1e-3, penalised=bool(penalties))

    def step(b: GroupBatch) -> None:
        train_step(loss, model, guide, setup.optimizer, params, b, num_groups=num_groups,
                   guard=setup.guard, validate=setup.validate)

    return step, setup.guard.check


def batches_for(case: str, groups: int, device: torch.device, smoke: bool
                ) -> tuple[list[GroupBatch], int]:
    """Up to 16 minibatches of the case's data, on ``device``, and the data-set size."""
    gen = torch.Generator().manual_seed(0)
    if case == "conv":
        data = group_by_factors(Sprites(32), ["shape", "scale"], 64 if smoke else 512, 4, rng=0)
        size = 4 if smoke else 16
    else:
        data, size = exam_scores(max(64, 4 * groups) if smoke else 32_768, seed=0), groups
    batches = [b.to(device) for b in data.batches(size, generator=gen)]
    return batches[:16], len(data)


def timed(step: Step, batches: list[GroupBatch], n: int, device: torch.device) -> float:
    """Seconds per step over ``n`` steps cycling through ``batches``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for i in range(n):
        step(batches[i % len(batches)])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t0) / n


def bench(case: str, groups: int, *, device: torch.device, steps: int, repeats: int,
          warmup: int, smoke: bool, options: dict[str, Any]) -> dict[str, Any]:
    batches, n = batches_for(case, groups, device, smoke)
    variants, compile_seconds = {}, {}
    for compiled in (False, True):
        step, check = make_step(case, compiled, n, device, options)
        t0 = time.perf_counter()
        timed(step, batches, warmup, device)
        compile_seconds[compiled] = time.perf_counter() - t0
        variants[compiled] = (step, check)
    times: dict[bool, list[float]] = {False: [], True: []}
    for r in range(repeats):
        for compiled in ((False, True) if r % 2 == 0 else (True, False)):
            times[compiled].append(timed(variants[compiled][0], batches, steps, device))
    for _, check in variants.values():
        check()
    ratios = sorted(c / e for c, e in zip(times[True], times[False]))
    return {
        "case": case,
        "groups": int(batches[0].mask.shape[0]),
        "penalised": case == "cxvae",
        "eager_seconds_per_step": statistics.median(times[False]),
        "compiled_seconds_per_step": statistics.median(times[True]),
        "ratio": statistics.median(ratios),
        "ratio_range": [ratios[0], ratios[-1]],
        "warmup_seconds": {"eager": compile_seconds[False], "compiled": compile_seconds[True]},
        "compile_seconds": compile_seconds[True] - compile_seconds[False],
        "steps_per_repeat": steps,
        "repeats": repeats,
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/compile", help="output folder")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--groups", type=int, nargs="+", default=[8, 256],
                        help="groups per step of the Exam-Scores cases")
    parser.add_argument("--steps", type=int, default=20, help="steps per variant and repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=5, help="steps before timing (compiles)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--backend", default="inductor", help="torch.compile backend")
    parser.add_argument("--mode", default=None, help="torch.compile mode")
    parser.add_argument("--smoke-test", action="store_true",
                        help="seconds-long run (also when CI or PYRO_GROUPS_SMOKE is set)")
    args = parser.parse_args(argv)
    smoke = smoke_requested(args.smoke_test)
    options: dict[str, Any] = {"backend": args.backend, "mode": args.mode}
    if smoke:
        args.groups, args.steps, args.repeats, args.warmup = [8], 1, 2, 1
        options["backend"] = "eager"  # dynamo's capture without inductor's C++ build: seconds
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    wall, cpu = time.perf_counter(), time.process_time()
    rows = []
    for case in args.cases:
        for groups in ([16] if case == "conv" else args.groups):
            row = bench(case, groups, device=device, steps=args.steps, repeats=args.repeats,
                        warmup=args.warmup, smoke=smoke, options=options)
            rows.append(row)
            print(f"{case:<6} {row['groups']:>4} groups: eager {row['eager_seconds_per_step']:.4f} "
                  f"s/step, compiled {row['compiled_seconds_per_step']:.4f} s/step, ratio "
                  f"{row['ratio']:.2f} (compile {row['compile_seconds']:.0f} s)", flush=True)
    result = {
        "benchmark": "compile",
        "config": {**{k: v for k, v in vars(args).items() if k != "out"}, "smoke_test": smoke,
                   "compile_options": options},
        "environment": environment(device),
        "results": rows,
        "wall_seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
