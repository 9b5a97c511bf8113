"""UG-VAE's experiments: sampling grids per cluster (Fig. 3), ML-VAE on random batches (Fig. 4),
domain alignment of digits and sprites (Fig. 5) and structured-batch classification (Table 1).

Trains UG-VAE (K = 10), UG-VAE without the mixture (K = 1) and ML-VAE on random batches of 128
embedded 8x8 digits (``--mnist DIR``: MNIST's idx files from a local folder instead) over several
seeds, classifies structured batches (digits 0-4 vs 5-9, even vs odd, each with and without a
"random batch" class) from samples and means of the global posterior with linear and RBF SVMs
beside the batch's mean image, at batch sizes 8, 32 and 128, and writes ``results.json`` and the
figures into ``--out``.

    python benchmarks/ugvae.py                    # default: about 11 minutes on 2 idle cores
    python benchmarks/ugvae.py --smoke-test       # seconds (also when CI or PYRO_GROUPS_SMOKE
                                                  # is set)
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from typing import Optional, Sequence

from pyro_groups.experiments import ugvae as ex
from pyro_groups.experiments import ugvae_report as report
from pyro_groups.experiments.environment import smoke_requested


def main(argv: Optional[Sequence[str]] = None) -> int:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    p.add_argument("--out", default="results/ugvae", help="output folder")
    p.add_argument("--smoke-test", action="store_true", help="a seconds-long run (CI)")
    p.add_argument("--mnist", help="a folder holding MNIST's idx files (default: 8x8 digits)")
    p.add_argument("--seeds", type=int, help="seeds per model (default 4)")
    p.add_argument("--steps", type=int, help="training steps per model (default 4000)")
    p.add_argument("--models", nargs="+", choices=ex.MODELS, help="models (default: all)")
    p.add_argument("--no-domain", action="store_true", help="skip the domain alignment (Fig. 5)")
    p.add_argument("--workers", type=int, help="parallel training processes (default 2)")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    smoke = smoke_requested(args.smoke_test)
    cfg = ex.smoke_config() if smoke else ex.Config()
    overrides = {"seeds": args.seeds, "steps": args.steps, "mnist": args.mnist,
                 "models": tuple(args.models) if args.models else None, "workers": args.workers,
                 "domain": False if args.no_domain else None,
                 "figures": False if args.no_figures else None}
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    print(f"ugvae: {', '.join(cfg.models)} x {cfg.seeds} seeds, {cfg.steps} steps of random "
          f"batches of {cfg.group_size} {'MNIST' if cfg.mnist else 'digits'}; "
          f"{cfg.workers} worker(s){' (smoke test)' if smoke else ''}")
    result = ex.run(cfg, args.out, progress=not args.no_progress)
    result["config"]["smoke_test"] = smoke
    print(report.format_table(result["batch_classification"]))
    for f in result["findings"]:
        print("-", report.describe(f))
    c = result["config"]
    print(f"{c['cpu_seconds']:.0f} CPU-s (about {c['idle_two_core_minutes']:.1f} min on 2 idle "
          f"cores), {c['wall_seconds']:.0f} s wall; wrote "
          f"{os.path.join(args.out, 'results.json')} and {', '.join(result['figures'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
