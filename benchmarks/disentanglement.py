"""The Locatello et al. (2019) study on procedural dSprites.

Trains the six unsupervised baselines (beta-VAE, AnnealedVAE, FactorVAE, beta-TCVAE, DIP-VAE-I,
DIP-VAE-II) and the group models GVAE and ML-VAE over a hyper-parameter grid and several seeds,
scores them with every metric under disentanglement_lib's conventions, and analyses the runs:
R^2 of each metric on objective, hyper-parameter and seed; metric agreement; sampled vs mean
representation TC; unsupervised model selection; downstream sample efficiency. Writes
``results.json`` (DESIGN.md's benchmark format), ``rank_correlation.png``, ``scores_by_seed.png``,
``tc_by_regularisation.png``, ``model_selection.png``, ``downstream.png``,
``reconstructions.png`` and ``traversal_<model>.png`` into ``--out``.

    python benchmarks/disentanglement.py                  # default: <= ~30 min on 2 idle cores
    python benchmarks/disentanglement.py --paper          # Locatello's grids, 5 seeds (days)
    python benchmarks/disentanglement.py --smoke-test     # seconds (also when CI or
                                                          # PYRO_GROUPS_SMOKE is set)
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from typing import Optional, Sequence

from pyro_groups.experiments import disentanglement as ex
from pyro_groups.experiments import disentanglement_report as rep
from pyro_groups.experiments import disentanglement_tables as tables
from pyro_groups.experiments.environment import smoke_requested


def main(argv: Optional[Sequence[str]] = None) -> int:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    p.add_argument("--out", default="results/disentanglement", help="output folder")
    p.add_argument("--smoke-test", action="store_true", help="a seconds-long run (CI)")
    p.add_argument("--paper", action="store_true", help="Locatello et al.'s grids, 5 seeds")
    p.add_argument("--seeds", type=int, help="seeds per configuration (default 3)")
    p.add_argument("--steps", type=int, help="training steps per run (default 600)")
    p.add_argument("--image-size", type=int, help="image side (default 32)")
    p.add_argument("--models", nargs="+", choices=ex.MODELS, help="models to run (default: all)")
    p.add_argument("--workers", type=int,
                   help="parallel training processes (default: one per available core)")
    p.add_argument("--device", help="cpu (default) or cuda")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if smoke_requested(args.smoke_test):
        cfg = ex.smoke_config()
    else:
        cfg = ex.paper_config() if args.paper else ex.Config()
    overrides = {"seeds": args.seeds, "steps": args.steps, "image_size": args.image_size,
                 "models": tuple(args.models) if args.models else None, "workers": args.workers,
                 "device": args.device, "figures": False if args.no_figures else None}
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    runs = sum(len(cfg.grid[m][1]) for m in cfg.models) * cfg.seeds
    print(f"disentanglement: {len(cfg.models)} models, {runs} runs ({cfg.seeds} seeds), "
          f"{cfg.steps} steps of {cfg.batch_size} {cfg.image_size}x{cfg.image_size} images, "
          f"{cfg.workers} worker(s); metrics under disentanglement_lib's conventions")
    result = ex.run(cfg, args.out, progress=not args.no_progress)
    print(rep.format_rst(result["models"], ex.METRICS + ("reconstruction_nll",)))
    print(rep.format_table(result["results"], ex.METRICS))
    print(rep.format_r2_rst(result["r2"]["unsupervised"]))
    print(tables.readme_tables(result, ex.METRICS))
    for f in result["findings"]:
        print(rep.describe(f))
    print(f"wall {result['wall_seconds']:.0f} s, {result['cpu_seconds']:.0f} CPU-s "
          f"(~{result['cpu_seconds_per_core_on_2_cores'] / 60:.0f} min on 2 idle cores); wrote "
          f"{os.path.join(args.out, 'results.json')} and {', '.join(result.get('figures', []))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
