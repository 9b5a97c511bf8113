"""group-tcVAE vs GVAE and ML-VAE on pairs of procedural sprites: MIG and group-MIG.

A small demonstration of Tran et al., "Weakly-supervised group disentanglement using total
correlation" (Sec. 4.2, Fig. 4), on :class:`pyro_groups.data.Sprites` (procedural dSprites):

- data: pairs that share the content factors ``c`` (``--content``, default ``shape, scale,
  orientation``: the object, by analogy with the paper's 3DShapes split into object and scene) and
  differ in every other factor (default ``pos_x, pos_y``)
  (:func:`pyro_groups.data.pairs.pairs_from_factors`), rendered at ``--image-size`` pixels; one
  fixed training set of ``--pairs`` pairs per seed;
- rows: ``group_tcvae`` (``PairedVAE`` + per-member ``PairedGuide`` + ``GroupTCVAEPenalty``:
  ELBO, beta * TC at ``--level``, gamma * pair KL), ``gvae`` (average of the members' group
  posteriors) and ``mlvae`` (product), all with the same convolutional encoders (one per code) and
  decoder (Locatello et al. 2019's architecture, fewer layers for small images), trained with
  ``pyro_groups.fit`` (Adam) for ``--steps`` steps of ``--batch-pairs`` pairs;
- codes: ``u_dim = 5``; ``v_dim`` = the number of non-content factors (2 by default). With
  ``--v-dim 5`` (our first setting) ``v`` can hold every factor, and in all our group-tcVAE runs
  the per-member group code then collapsed to the prior (pair KL ~1e-4 nats): Eq. (3) rewards
  agreement of the members' ``u`` but nothing rewards putting the shared factors in ``u`` rather
  than ``v``. Capping ``v`` at the non-content factors removes that way out;
- hyper-parameters: beta = 10 and gamma = 8 from the paper's grids, TC level ``inter``, a
  256-256 discriminator with Adam 1e-3 (the paper: FactorVAE's); VAE Adam 1e-3, 32 pairs a step;
- metrics on ``--eval`` fresh single observations encoded by their posterior means ``[u, v]``:
  ``mig`` (Chen et al. 2018) over the five factors, and ``group_mig`` with code blocks ``u`` / ``v``
  and factor blocks content -> ``u``, the rest -> ``v`` (also per block).

The paper gives no table (Fig. 4 shows densities over a hyper-parameter grid and 5 seeds on the
real dSprites and 3DShapes at 64x64 with long training); our budgets on a 2-core CPU are a few
thousand steps at 32x32, so the numbers show the pipeline working, not the paper's results.

Usage::

    python benchmarks/group_tcvae.py                                  # results/group_tcvae.json
    python benchmarks/group_tcvae.py --smoke-test --out /tmp/g.json   # seconds (also under CI or
                                                                      # PYRO_GROUPS_SMOKE)
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pyro
import torch

from pyro_groups.data import GroupBatch, Sprites
from pyro_groups.data.pairs import pairs_from_factors
from pyro_groups.evaluation import encode
from pyro_groups.evaluation.disentanglement import group_mig, mig
from pyro_groups.experiments.environment import environment, summarize
from pyro_groups.guides.paired import pair_guide
from pyro_groups.models.paired import pair_model
from pyro_groups.nn_conv import ConvDecoder, conv_body
from pyro_groups.adversary.group_tc import GroupTCVAEPenalty
from pyro_groups.training import fit, resolve_device

CONTENT = ("shape", "scale", "orientation")
ROWS = ("group_tcvae", "gvae", "mlvae")
METRICS = ("mig", "group_mig", "group_mig_u", "group_mig_v")


def build(kind: str, args) -> tuple[torch.nn.Module, torch.nn.Module, list]:
    """Model, guide and penalties of one row."""
    model = pair_model(kind, ConvDecoder(args.u_dim, args.v_dim, image_size=args.image_size))
    body = conv_body(1, args.image_size, out_dim=args.features)
    guide = pair_guide(kind, args.features, args.u_dim, args.v_dim, hidden=(), body=body)
    penalties = []
    if kind == "group_tcvae":
        penalties.append(GroupTCVAEPenalty(
            args.u_dim, args.v_dim, beta=args.beta, gamma=args.gamma, level=args.level,
            hidden=tuple(args.disc_hidden), lr=args.disc_lr,
        ))
    return model, guide, penalties


def evaluate(
    guide, sprites: Sprites, n: int, seed: int, content_cols: Sequence[int], u_dim: int, v_dim: int,
    device: str = "cpu",
) -> dict:
    """MIG and group-MIG of posterior means on ``n`` fresh single observations."""
    factors, images = sprites.sample(n, rng=np.random.default_rng(10_000 + seed))
    codes = []
    for start in range(0, n, 512):
        x = images[start:start + 512, None].to(device)
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        u, v = encode(guide, GroupBatch(x, mask))
        codes.append(torch.cat([u, v[:, 0]], -1))
    z = torch.cat(codes).cpu().numpy()
    code_blocks = ["u"] * u_dim + ["v"] * v_dim
    factor_blocks = ["u" if j in content_cols else "v" for j in range(sprites.num_factors)]
    out = {"mig": mig(z, factors)["mig"]}
    gm = group_mig(z, factors, code_blocks=code_blocks, factor_blocks=factor_blocks)
    out.update({k: gm[k] for k in ("group_mig", "group_mig_u", "group_mig_v")})
    per_factor = mig(z, factors)
    out["mig_per_factor"] = {
        name: per_factor[f"mig_factor_{j}"] for j, name in enumerate(sprites.factor_names)
    }
    return out


def run(kind: str, seed: int, args) -> dict:
    """Train one row on one seed's pairs and score it."""
    torch.set_num_threads(args.threads)
    pyro.enable_validation(False)
    torch.manual_seed(seed)
    sprites = Sprites(args.image_size)
    data = pairs_from_factors(sprites, args.pairs, args.content, rng=seed)
    model, guide, penalties = build(kind, args)
    steps_per_epoch = -(-len(data) // args.batch_pairs)
    epochs = max(1, round(args.steps / steps_per_epoch))
    t0 = time.perf_counter()
    hist = fit(model, guide, data, epochs=epochs, batch_size=args.batch_pairs, lr=args.lr,
               seed=seed, penalties=penalties, progress=False, device=args.device)
    seconds = time.perf_counter() - t0
    model.eval(), guide.eval()
    row = {"model": kind, "seed": seed, "steps": epochs * steps_per_epoch, "train_seconds": seconds,
           "final_loss_per_pair": hist.to_list()[-1]["loss"]}
    content = [sprites.factor_index(f) for f in args.content]
    row.update(evaluate(guide, sprites, args.eval, seed, content, args.u_dim, args.v_dim,
                        args.device))
    if penalties:
        with torch.no_grad():
            batch = data[torch.arange(min(len(data), 512))].to(args.device)
            terms = penalties[0].terms(guide, batch)
        row["tc_estimate"] = float(terms["tc"])
        row["pair_kl_mean"] = float(terms["pair_kl"].mean())
        row["discriminator_loss_last_epoch"] = hist.to_list()[-1]["discriminator_loss"]
    return row


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/group_tcvae.json")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--content", nargs="+", default=list(CONTENT), choices=Sprites.factor_names,
                        help="the factors each pair shares (the group code's block)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2000, help="training steps per run")
    parser.add_argument("--pairs", type=int, default=4096, help="training pairs per seed")
    parser.add_argument("--batch-pairs", type=int, default=32, help="pairs a step (paper: 32)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--u-dim", type=int, default=5)
    parser.add_argument("--v-dim", type=int, default=None,
                        help="instance code size (default: one per non-content factor)")
    parser.add_argument("--features", type=int, default=256, help="encoder body width")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--beta", type=float, default=10.0, help="TC weight")
    parser.add_argument("--gamma", type=float, default=8.0, help="pair-KL weight")
    parser.add_argument("--level", default="inter", choices=("inter", "inter_intra", "full"))
    parser.add_argument("--disc-hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--disc-lr", type=float, default=1e-3)
    parser.add_argument("--eval", type=int, default=5000, help="observations scored by the metrics")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per run (1: best on a shared CPU)")
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel processes")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--smoke-test", action="store_true",
                        help="seconds-long run (also when CI or PYRO_GROUPS_SMOKE is set)")
    args = parser.parse_args(argv)
    resolve_device(args.device)  # an unknown or absent device fails here, before any work
    smoke = args.smoke_test or any(os.environ.get(k) for k in ("CI", "PYRO_GROUPS_SMOKE"))
    if args.v_dim is None:
        args.v_dim = len(Sprites.factor_names) - len(set(args.content))
    if smoke:
        args.seeds, args.steps, args.pairs, args.batch_pairs = 1, 4, 64, 16
        args.image_size, args.features, args.eval, args.disc_hidden = 16, 32, 256, [16]
        args.threads, args.workers = 1, 1

    torch.set_num_threads(args.threads)  # every run uses this many (the JSON's "threads")
    t0 = time.perf_counter()
    tasks = [(kind, seed, args) for seed in range(args.seeds) for kind in args.rows]
    if args.workers > 1 and len(tasks) > 1:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(min(args.workers, len(tasks))) as pool:
            per_seed = pool.starmap(run, tasks)
    else:
        per_seed = [run(*task) for task in tasks]
    results = []
    for kind in args.rows:
        runs = [r for r in per_seed if r["model"] == kind]
        row = {"model": kind, **{m: summarize([r[m] for r in runs]) for m in METRICS},
               "train_seconds": summarize([r["train_seconds"] for r in runs]),
               "paper": None, "runs": runs}
        results.append(row)
    config = {k: v for k, v in vars(args).items() if k != "out"}
    config.update(smoke_test=smoke, data="Sprites (procedural dSprites)",
                  paper_note="the paper shows densities (Fig. 4), no table: no numbers to list",
                  total_seconds=time.perf_counter() - t0)
    out = {"benchmark": "group_tcvae", "config": config, "environment": environment(args.device),
           "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"{'model':<12}" + "".join(f"{m:>22}" for m in METRICS) + f"{'seconds':>10}")
    for r in results:
        cells = "".join(f"{r[m]['mean']:>14.3f} ± {r[m]['std']:<5.3f}" for m in METRICS)
        print(f"{r['model']:<12}{cells}{r['train_seconds']['mean']:>10.0f}")
    print(f"wrote {args.out} ({config['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
