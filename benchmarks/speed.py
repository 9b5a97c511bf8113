"""Training speed: the library's steps against the same ELBO written in plain PyTorch.

For each number of groups per step, in one process and on the same minibatches, this times
optimisation steps of

- ``handwritten``: :mod:`handwritten_cxvae`, CxVAE's ELBO in plain PyTorch (no Pyro), Adam;
- ``elbo``: the ``cxvae`` model and guide with no penalty (``cxvae-reg-none``), one
  :func:`pyro_groups.training.train_step` with ``Trace_ELBO``, as ``fit`` runs it;
- ``cxvae`` and ``gvae-reg``: the Exam-Scores rows with their mutual-information penalty (set-based
  and Németh's), built by :func:`pyro_groups.experiments.exam_scores.build` and trained by
  ``train_step`` on a ``PenalizedLoss`` exactly as the main job trains them: one guide pass, the
  ELBO, the penalty and the critic's update;
- ``elbo_jit``: ``elbo`` with ``JitTrace_ELBO`` (fixed-shape batches; optional);
- ``ugvae``: UG-VAE's eq. 10-11 step (``TraceEnum_ELBO``, ``d`` enumerated) on one batch of
  B = 128 digit-sized observations, against :mod:`handwritten_ugvae` (``--no-ugvae`` to skip).

Pyro's validation is on for every library variant (``--no-validation`` to switch it off), as
``fit`` runs by default. The library steps are set up by
:func:`pyro_groups.training.device.step_setup`, as ``fit`` sets them up: on a GPU (``--device
cuda``) that means a fused Adam (the hand-written step's too), the deferred NaN guard for the
ELBO-only variants (no host synchronisation in the step) and Pyro's validation off during the
step (the rows then say ``"validation": false``). Each repeat runs every variant in turn
(rotating the order), so that a machine's changing load hits all of them alike; we report the
median seconds per step over repeats and the median over repeats of the paired time ratio
``variant / handwritten`` (1.0 = no overhead). Every result row names ``row``, ``penalised``,
``groups`` and ``ratio``.

Usage::

    python benchmarks/speed.py                        # writes results/speed/results.json
    python benchmarks/speed.py --smoke-test --out /tmp/speed   # a few seconds (also under CI)
    python benchmarks/speed.py --device cuda          # on a GPU machine
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence

import pyro
import torch
from pyro.infer import JitTrace_ELBO, Trace_ELBO

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from handwritten_cxvae import HandwrittenCxVAE  # noqa: E402
from handwritten_ugvae import ugvae_step_ratio  # noqa: E402

from pyro_groups.adversary import PenalizedLoss  # noqa: E402
from pyro_groups.data import GroupBatch, exam_scores  # noqa: E402
from pyro_groups.experiments.environment import environment, smoke_requested  # noqa: E402
from pyro_groups.experiments.exam_scores import Config, build  # noqa: E402
from pyro_groups.training import resolve_device, train_step  # noqa: E402
from pyro_groups.training.device import step_setup  # noqa: E402
from pyro_groups.training.step import unique_params  # noqa: E402

VARIANTS: dict[str, tuple[str, bool]] = {  # variant -> (Exam-Scores row, penalised)
    "handwritten": ("cxvae-reg-none", False),
    "elbo": ("cxvae-reg-none", False),
    "cxvae": ("cxvae", True),
    "gvae-reg": ("gvae-reg", True),
    "elbo_jit": ("cxvae-reg-none", False),
}
DEFAULT_VARIANTS = ("handwritten", "elbo", "cxvae", "gvae-reg")

Step = Callable[[GroupBatch], None]


def make_step(variant: str, num_groups: int, lr: float, device: torch.device) -> Step:
    """One optimisation step of ``variant`` on a batch, with fresh parameters (seeded)."""
    row, _ = VARIANTS[variant]
    torch.manual_seed(0)
    model, guide, penalties = build(row, Config(device=str(device)))
    for m in (model, guide, *penalties):
        m.to(device)
    if variant == "handwritten":
        hw = HandwrittenCxVAE.from_guide(guide).to(device)
        opt = torch.optim.Adam(hw.parameters(), lr=lr,
                               fused=True if device.type == "cuda" else None)

        def step(b: GroupBatch) -> None:
            loss = hw.loss(b.x, b.mask, num_groups)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step
    elbo = JitTrace_ELBO(ignore_jit_warnings=True) if variant == "elbo_jit" else Trace_ELBO()
    loss = PenalizedLoss(elbo, penalties) if penalties else elbo
    params = unique_params([model, guide])
    setup = step_setup(device, params, lr=lr, penalised=bool(penalties))

    def step(b: GroupBatch) -> None:
        train_step(loss, model, guide, setup.optimizer, params, b, num_groups=num_groups,
                   guard=setup.guard, validate=setup.validate)

    return step


def time_steps(step: Step, batches: list[GroupBatch], n: int, device: torch.device,
               offset: int = 0) -> float:
    """Seconds per step over ``n`` steps cycling through ``batches``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for i in range(n):
        step(batches[(offset + i) % len(batches)])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t0) / n


def bench_groups(groups: int, *, variants: Sequence[str], data_size: int, warmup: int,
                 steps: Optional[int], seconds: float, repeats: int, lr: float,
                 device: torch.device, validation: bool, seed: int) -> list[dict]:
    """Every variant at ``groups`` groups per step; one result row per variant."""
    data = exam_scores(data_size, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    fixed = "elbo_jit" in variants  # the JIT variant needs one shape; all then see the same
    batches = [b.to(device) for b in
               list(data.batches(groups, generator=gen, fixed_shape=fixed))[:32]]
    pyro.enable_validation(validation)
    fns = {v: make_step(v, data_size, lr, device) for v in variants}
    n_steps = {}
    for v, fn in fns.items():  # warm-up (JIT compiles here), then calibrate steps per repeat
        time_steps(fn, batches, warmup, device)
        n_steps[v] = steps or max(5, int(seconds / time_steps(fn, batches, max(3, warmup),
                                                              device)))
    times: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(repeats):
        order = list(variants[r % len(variants):]) + list(variants[: r % len(variants)])
        for v in order:
            times[v].append(time_steps(fns[v], batches, n_steps[v], device, offset=r))
    pyro.enable_validation(True)
    rows = []
    for v in variants:
        row, penalised = VARIANTS[v]
        ratio = (statistics.median(a / b for a, b in zip(times[v], times["handwritten"]))
                 if "handwritten" in variants else None)
        rows.append({
            "variant": v, "row": row, "penalised": penalised, "groups": groups,
            "padded_group_size": max(int(b.mask.shape[1]) for b in batches),
            "validation": validation and device.type != "cuda", "steps_per_repeat": n_steps[v],
            "seconds_per_step": statistics.median(times[v]), "seconds_per_step_repeats": times[v],
            "ratio": ratio,
        })
    return rows


def format_rows(rows: list[dict]) -> str:
    rows = [r for r in rows if r["row"] != "ugvae"]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    head = f"{'groups':>6} " + " ".join(f"{v:>20}" for v in variants)
    lines = [head, "-" * len(head)]
    for g in dict.fromkeys(r["groups"] for r in rows):
        cells = []
        for v in variants:
            r = next(x for x in rows if x["groups"] == g and x["variant"] == v)
            cell = f"{1000 * r['seconds_per_step']:7.1f} ms"
            cell += f" ({r['ratio']:4.2f}x)" if r["ratio"] is not None else ""
            cells.append(f"{cell:>20}")
        lines.append(f"{g:>6} " + " ".join(cells))
    lines.append("(median ms per step; (r x) = median paired time ratio against handwritten)")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/speed", help="output folder")
    parser.add_argument("--groups", type=int, nargs="+", default=[8, 64, 256],
                        help="groups per step")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS),
                        choices=list(VARIANTS))
    parser.add_argument("--data-size", type=int, default=32_768, help="N (scale N/G)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-validation", action="store_true", help="Pyro validation off")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, help="steps per repeat (default: --seconds worth)")
    parser.add_argument("--seconds", type=float, default=1.5, help="target seconds per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ugvae", action="store_true", help="skip the UG-VAE step")
    parser.add_argument("--smoke-test", action="store_true",
                        help="a few steps only (also when CI or PYRO_GROUPS_SMOKE is set)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} exists and is not a folder")
    smoke = smoke_requested(args.smoke_test)
    if smoke:
        args.groups, args.data_size, args.warmup, args.steps, args.repeats = [8], 512, 1, 2, 2
    if "handwritten" not in args.variants:
        args.variants = ["handwritten", *args.variants]
    torch.set_num_threads(args.threads)
    config = {k: v for k, v in vars(args).items() if k not in ("out", "smoke_test")}
    config.update(smoke_test=smoke, hidden=list(Config().hidden), optimizer="torch.optim.Adam",
                  lr=Config().lr)
    rows: list[dict] = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*torch.jit.trace.*",
                                category=DeprecationWarning)
        for g in args.groups:
            pyro.clear_param_store()
            rows += bench_groups(
                g, variants=args.variants, data_size=args.data_size, warmup=args.warmup,
                steps=args.steps, seconds=args.seconds, repeats=args.repeats, lr=Config().lr,
                device=device, validation=not args.no_validation, seed=args.seed,
            )
            print(format_rows([r for r in rows if r["groups"] == g]).splitlines()[-2],
                  flush=True)
    if not args.no_ugvae:
        steps, repeats = (2, 2) if smoke else (20, args.repeats)
        u = ugvae_step_ratio(batch_size=128, groups=1, steps=steps, repeats=repeats,
                             seed=args.seed)
        for variant, rate in u["steps_per_second"].items():
            rows.append({
                "variant": "handwritten_ugvae" if variant == "handwritten" else f"ugvae_{variant}",
                "row": "ugvae", "penalised": False, "groups": 1, "batch_size": 128,
                "validation": "validated" in variant, "seconds_per_step": 1.0 / rate,
                "ratio": u["time_ratio_vs_handwritten"].get(variant, 1.0),
            })
        print(f"ugvae (B = 128): {u['time_ratio_vs_handwritten']}", flush=True)
    env = environment(device)
    env["threads"] = args.threads
    result = {"benchmark": "speed", "config": config, "environment": env, "results": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1))
    print(format_rows(rows))
    print(f"wrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
