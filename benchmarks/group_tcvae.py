"""group-tcVAE vs GVAE and ML-VAE (Tran et al., Figs. 3-4) on procedural dSprites and 3DShapes.

Trains GVAE and ML-VAE with beta on the KL over ``baseline_betas`` and group-tcVAE at the three
TC levels over ``betas`` x ``gammas``, on pairs sharing the content factors, several seeds each,
plus the group-size sensitivity runs; scores MIG and group-MIG; checks the paper's claims against
seed noise; writes ``results.json`` (the levels and beta / gamma values in ``config``),
``distributions.png``, ``collapse.png``, ``content_vs_rest.png`` and ``sensitivity.png`` into
``--out`` (see :mod:`pyro_groups.experiments.group_tcvae`).

    python benchmarks/group_tcvae.py                  # reduced grid, 2 seeds, 600 steps (70 runs,
                                                      # ~25 min on 2 idle cores; CPU-seconds in
                                                      # results.json)
    python benchmarks/group_tcvae.py --paper          # the paper's grids, 5 seeds (days)
    python benchmarks/group_tcvae.py --smoke-test     # seconds (also under CI / PYRO_GROUPS_SMOKE)
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from typing import Optional, Sequence

from pyro_groups.experiments import group_tcvae as ex
from pyro_groups.experiments import group_tcvae_report as report
from pyro_groups.experiments.environment import smoke_requested


def main(argv: Optional[Sequence[str]] = None) -> int:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    p.add_argument("--out", default="results/group_tcvae", help="output folder")
    p.add_argument("--smoke-test", action="store_true", help="a seconds-long run (CI)")
    p.add_argument("--paper", action="store_true", help="the paper's grids and 5 seeds")
    p.add_argument("--datasets", nargs="+", choices=sorted(ex.DATASETS))
    p.add_argument("--levels", nargs="+", choices=ex.LEVELS)
    p.add_argument("--betas", nargs="+", type=float, help="group-tcVAE TC weights")
    p.add_argument("--gammas", nargs="+", type=float, help="group-tcVAE pair-KL weights")
    p.add_argument("--baseline-betas", nargs="+", type=float, help="GVAE / ML-VAE KL weights")
    p.add_argument("--seeds", type=int)
    p.add_argument("--steps", type=int, help="training steps per run")
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
    listed = {"datasets": args.datasets, "levels": args.levels, "betas": args.betas,
              "gammas": args.gammas, "baseline_betas": args.baseline_betas}
    overrides = {k: tuple(v) for k, v in listed.items() if v}
    overrides.update({k: v for k, v in {"seeds": args.seeds, "steps": args.steps,
                                        "workers": args.workers, "device": args.device}.items()
                      if v is not None})
    if args.no_figures:
        overrides["figures"] = False
    cfg = replace(cfg, **overrides)
    print(f"group-tcVAE: {len(ex.jobs(cfg))} runs on {', '.join(cfg.datasets)}; levels "
          f"{', '.join(cfg.levels)}; beta {cfg.betas} x gamma {cfg.gammas}; baselines' beta "
          f"{cfg.baseline_betas}; {cfg.seeds} seed(s), {cfg.steps} steps, {cfg.workers} worker(s)")
    result = ex.run(cfg, args.out, progress=not args.no_progress)
    print(report.format_rst(result["models"]))
    for f in result["findings"]:
        print(report.describe(f))
    print(f"wall {result['wall_seconds']:.0f} s, {result['cpu_seconds']:.0f} CPU-s "
          f"(~{result['cpu_seconds_per_core_on_2_cores'] / 60:.0f} min on 2 idle cores); wrote "
          f"{os.path.join(args.out, 'results.json')} and {', '.join(result.get('figures', []))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
