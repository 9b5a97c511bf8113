"""ML-VAE's experiments (Bouchacourt et al. 2018): swapping, interpolation, generation,
accumulating evidence and k-shot classification from the content and style codes, for ML-VAE
(product and mixture), GVAE, CxVAE, the i.i.d. VAE and the non-amortised SVI baseline.

Writes ``results.json`` (DESIGN.md's format, with ``k_shot`` rows ``{model, code, k, accuracy,
cond_entropy_bits}`` summarised over seeds) and ``swap.png``, ``interpolation.png``,
``generation.png``, ``accumulating_evidence.png`` and ``k_shot.png`` into ``--out``.

    python benchmarks/mlvae.py                          # sklearn digits; ~15 min on 2 idle cores
    python benchmarks/mlvae.py --data sprites --shared shape scale
    python benchmarks/mlvae.py --data mnist --mnist ~/data/mnist
    python benchmarks/mlvae.py --smoke-test             # seconds (also when CI or
                                                        # PYRO_GROUPS_SMOKE is set)
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from typing import Optional, Sequence

from pyro_groups.experiments import mlvae as ex
from pyro_groups.experiments import mlvae_report as report
from pyro_groups.experiments.environment import smoke_requested
from pyro_groups.experiments.mlvae_data import DATA_SETS


def main(argv: Optional[Sequence[str]] = None) -> int:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    p.add_argument("--out", default="results/mlvae", help="output folder")
    p.add_argument("--smoke-test", action="store_true", help="a seconds-long run (CI)")
    p.add_argument("--data", choices=DATA_SETS, help="digits (default), sprites or mnist")
    p.add_argument("--mnist", help="folder with the MNIST idx files (implies --data mnist)")
    p.add_argument("--shared", nargs="+", help="sprites: the factors a group shares (shape)")
    p.add_argument("--image-size", type=int, help="sprites: image side (default 32)")
    p.add_argument("--seeds", type=int, help="seeds per model (default 5)")
    p.add_argument("--epochs", type=int, help="training epochs (default 600)")
    p.add_argument("--models", nargs="+", choices=ex.MODELS, help="models (default: all)")
    p.add_argument("--content-samples", choices=("group", "observation"),
                   help="content draws while training the group models (default observation)")
    p.add_argument("--svi-lr", type=float,
                   help="learning rate of SVI's per-group parameters (default 1e-2)")
    p.add_argument("--workers", type=int, help="parallel training processes (default 2)")
    p.add_argument("--device", help="cpu (default) or cuda")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    cfg = ex.smoke_config() if smoke_requested(args.smoke_test) else ex.Config()
    overrides = {
        "data": "mnist" if args.mnist and not args.data else args.data, "mnist": args.mnist,
        "shared": tuple(args.shared) if args.shared else None, "image_size": args.image_size,
        "seeds": args.seeds, "epochs": args.epochs,
        "models": tuple(args.models) if args.models else None,
        "content_samples": args.content_samples, "svi_lr": args.svi_lr,
        "workers": args.workers, "device": args.device,
        "figures": False if args.no_figures else None,
    }
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    print(f"mlvae: {cfg.data}, {len(cfg.models)} models x {cfg.seeds} seeds, {cfg.epochs} epochs "
          f"of {cfg.batch_size} groups, {cfg.workers} worker(s)")
    result = ex.run(cfg, args.out, progress=not args.no_progress)
    print(report.format_models(result["results"]))
    print(report.format_k_shot(result["k_shot"], ks=(1, 2, 5, cfg.K)))
    if result["k_shot_means"]:
        print("content features from posterior means instead of draws:")
        print(report.format_k_shot(result["k_shot_means"], ks=(1, 2, 5, cfg.K)))
    print(report.format_variance(result["gradient_variance"]))
    for f in result["findings"]:
        print(f"[{f['source']}] {report.describe(f)}")
    print(f"CPU {result['cpu_seconds']:.0f} s (~{result['cpu_seconds_per_2_cores'] / 60:.1f} min "
          f"on 2 idle cores), wall {result['wall_seconds']:.0f} s; wrote "
          f"{os.path.join(args.out, 'results.json')} and {', '.join(result['figures'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
