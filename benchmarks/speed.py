"""Training speed: the library's CxVAE step against the same ELBO written in plain PyTorch.

For each batch size (groups per step) and thread setting, in one process and on the same
minibatches, this times optimisation steps (loss, backward, Adam) of

- ``handwritten``: :mod:`handwritten_cxvae` (same architecture, same objective, no Pyro);
- ``pyro_trace``: ``GroupVAE(ExamScoresDecoder())`` + ``preset_guide("cxvae")`` with
  ``Trace_ELBO().differentiable_loss`` and ``torch.optim.Adam``, as ``pyro_groups.fit`` does,
  Pyro validation off;
- ``pyro_trace_validated``: the same with Pyro's default validation on (distribution argument
  checks and the library's data checks);
- ``pyro_jit``: the same with ``JitTrace_ELBO`` (validation off).

Every step gets a fixed-shape batch (padded to the data set's largest group), so that the JIT
variant compiles once and all variants see identical tensors. Each repeat runs every variant in
turn (rotating the order), so that a machine's changing load hits all of them alike; we report the
median steps per second over repeats and the median over repeats of the paired time ratio
``library seconds per step / hand-written seconds per step`` (1.0 = no overhead).

Usage::

    python benchmarks/speed.py                       # writes results/speed.json
    python benchmarks/speed.py --smoke-test --out /tmp/speed.json   # a few seconds (also under CI)
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

from pyro_groups.data import GroupBatch, exam_scores  # noqa: E402
from pyro_groups.guides import preset_guide  # noqa: E402
from pyro_groups.models import ExamScoresDecoder, GroupVAE  # noqa: E402

VARIANTS = ("handwritten", "pyro_trace", "pyro_trace_validated", "pyro_jit")
LIBRARY = VARIANTS[1:]


Step = Callable[[GroupBatch], float]


def make_step(variant: str, num_groups: int, lr: float, hidden: Sequence[int]) -> Step:
    """A closure doing one optimisation step of ``variant`` on a batch (fresh parameters)."""
    model = GroupVAE(ExamScoresDecoder())
    guide = preset_guide("cxvae", 1, 2, 1, hidden=tuple(hidden))
    if variant == "handwritten":
        hw = HandwrittenCxVAE.from_guide(guide)
        opt = torch.optim.Adam(hw.parameters(), lr=lr)

        def loss_fn(b: GroupBatch) -> torch.Tensor:
            return hw.loss(b.x, b.mask, num_groups)

    else:
        elbo = JitTrace_ELBO(ignore_jit_warnings=True) if variant == "pyro_jit" else Trace_ELBO()
        params = list({id(p): p for m in (model, guide) for p in m.parameters()}.values())
        opt = torch.optim.Adam(params, lr=lr)
        validate = variant == "pyro_trace_validated"

        def loss_fn(b: GroupBatch) -> torch.Tensor:
            pyro.enable_validation(validate)
            return elbo.differentiable_loss(model, guide, b.x, b.mask, num_groups=num_groups)

    def step(b: GroupBatch) -> float:
        loss = loss_fn(b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def time_steps(step: Step, batches: list[GroupBatch], n: int, offset: int = 0) -> float:
    """Steps per second over ``n`` steps cycling through ``batches``."""
    t0 = time.perf_counter()
    for i in range(n):
        step(batches[(offset + i) % len(batches)])
    return n / (time.perf_counter() - t0)


def bench_config(
    batch_size: int,
    threads: int,
    *,
    variants: Sequence[str],
    num_groups: int,
    warmup: int,
    steps: Optional[int],
    seconds: float,
    repeats: int,
    lr: float,
    hidden: Sequence[int],
    seed: int,
) -> dict:
    torch.set_num_threads(threads)
    data = exam_scores(num_groups, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    batches = list(data.batches(batch_size, generator=gen, fixed_shape=True))[:32]
    pyro.set_rng_seed(seed)
    fns = {v: make_step(v, num_groups, lr, hidden) for v in variants}
    n_steps = {}
    for v, fn in fns.items():  # warm-up (JIT compiles here), then calibrate steps per repeat
        time_steps(fn, batches, warmup)
        if steps is not None:
            n_steps[v] = steps
        else:
            rate = time_steps(fn, batches, max(3, warmup))
            n_steps[v] = max(5, int(rate * seconds))
    rates: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(repeats):
        order = list(variants[r % len(variants):]) + list(variants[: r % len(variants)])
        for v in order:
            rates[v].append(time_steps(fns[v], batches, n_steps[v], offset=r))
    pyro.enable_validation(True)
    row: dict = {
        "batch_size": batch_size,
        "threads": threads,
        "padded_group_size": int(batches[0].mask.shape[1]),
        "steps_per_repeat": n_steps,
        "steps_per_second": {v: statistics.median(rs) for v, rs in rates.items()},
        "steps_per_second_repeats": rates,
    }
    if "handwritten" in variants:
        hw = rates["handwritten"]
        row["time_ratio_vs_handwritten"] = {
            v: statistics.median(h / lib for h, lib in zip(hw, rates[v]))
            for v in variants
            if v != "handwritten"
        }
    return row


def environment(threads: int) -> dict:
    return {
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "device": "cpu",
        "threads": threads,
    }


def format_rows(rows: list[dict]) -> str:
    variants = list(rows[0]["steps_per_second"])
    head = f"{'groups/step':>11} {'threads':>7} " + " ".join(f"{v:>22}" for v in variants)
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = []
        for v in variants:
            ratio = r.get("time_ratio_vs_handwritten", {}).get(v)
            cell = f"{r['steps_per_second'][v]:8.1f}/s"
            cell += f" ({ratio:4.2f}x)" if ratio is not None else ""
            cells.append(f"{cell:>22}")
        lines.append(f"{r['batch_size']:>11} {r['threads']:>7} " + " ".join(cells))
    lines.append(
        "(steps per second, median over repeats; (r x) = library time per step / hand-written)"
    )
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/speed.json", help="JSON output path")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument(
        "--threads", type=int, nargs="+", help="thread counts (default: 1 and torch's default)"
    )
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--groups", type=int, default=32_768, help="data-set size N (scale N/G)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, help="steps per repeat (default: --seconds worth)")
    parser.add_argument("--seconds", type=float, default=1.5, help="target seconds per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--smoke-test", action="store_true", help="a few steps only (also when CI is set)"
    )
    args = parser.parse_args(argv)

    default_threads = torch.get_num_threads()
    threads = args.threads or sorted({1, default_threads})
    smoke = args.smoke_test or bool(os.environ.get("CI"))
    if smoke:
        args.batch_sizes, args.groups, args.warmup, args.steps, args.repeats = [8], 512, 2, 3, 2
        threads = [1]
    config = {
        "model": "GroupVAE(ExamScoresDecoder()) + preset_guide('cxvae', 1, 2, 1)",
        "hidden": [64, 64],
        "lr": 1e-3,
        "optimizer": "torch.optim.Adam",
        "num_groups": args.groups,
        "batch_sizes": args.batch_sizes,
        "threads": threads,
        "variants": args.variants,
        "warmup": args.warmup,
        "steps": args.steps,
        "seconds_per_repeat": None if args.steps else args.seconds,
        "repeats": args.repeats,
        "fixed_shape_batches": True,
        "seed": args.seed,
        "smoke_test": smoke,
    }
    rows = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings(
            "ignore", message=".*torch.jit.trace.*", category=DeprecationWarning
        )
        warnings.filterwarnings("ignore", category=FutureWarning)
        for t in threads:
            for bs in args.batch_sizes:
                pyro.clear_param_store()
                rows.append(
                    bench_config(
                        bs, t, variants=args.variants, num_groups=args.groups, warmup=args.warmup,
                        steps=args.steps, seconds=args.seconds, repeats=args.repeats, lr=1e-3,
                        hidden=(64, 64), seed=args.seed,
                    )
                )
                print(format_rows(rows[-1:]).splitlines()[-2], flush=True)
    torch.set_num_threads(default_threads)
    result = {
        "benchmark": "speed",
        "config": config,
        "environment": environment(default_threads),
        "results": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(format_rows(rows))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
