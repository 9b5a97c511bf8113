"""Disentanglement benchmark after Locatello et al. (2019) on procedural dSprites.

Rows: the six unsupervised baselines (beta-VAE, AnnealedVAE, FactorVAE, beta-TCVAE, DIP-VAE-I,
DIP-VAE-II; ``IIDVAE`` + ``IIDGuide`` on i.i.d. images) and the weakly supervised group models
GVAE and ML-VAE (``GroupVAE`` + ``make_guide(group="average" | "product")`` on groups sharing the
``shared`` factors). Every row is trained over a small hyper-parameter grid and several seeds with
the same architecture (Locatello et al.'s conv encoder/decoder, Bernoulli likelihood), the same
number of images per step and of steps; the codes of fresh images (posterior means; a group model
encodes an image as a group of one, code ``[u, v]``) are scored by every metric of
:mod:`pyro_groups.evaluation.disentanglement`.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch

from pyro_groups.data.batch import GroupBatch
from pyro_groups.data.factors import group_by_factors, random_groups
from pyro_groups.data.sprites import Sprites
from pyro_groups.evaluation import disentanglement as dm
from pyro_groups.evaluation.codes import encode
from pyro_groups.evaluation.disentanglement.utils import mutual_info_and_entropy
from pyro_groups.experiments.environment import (
    available_cpus, environment, json_safe, run_jobs, summarize,
)
from pyro_groups.guides.group_guide import make_guide
from pyro_groups.guides.iid_guide import IIDGuide
from pyro_groups.models.group_vae import GroupVAE
from pyro_groups.models.iid_vae import IIDVAE
from pyro_groups.nn_conv import ConvDecoder, conv_body
from pyro_groups.objectives.annealed_vae import AnnealedVAELoss
from pyro_groups.objectives.beta_tcvae import BetaTCVAELoss
from pyro_groups.objectives.beta_vae import BetaVAELoss
from pyro_groups.objectives.dip_vae import DIPVAELoss
from pyro_groups.adversary.factor_vae import FactorVAEPenalty
from pyro_groups.training.fit import fit

MODELS = (
    "beta_vae", "annealed_vae", "factor_vae", "beta_tcvae", "dip_vae_i", "dip_vae_ii",
    "gvae", "mlvae",
)
GROUP_MODELS = {"gvae": "average", "mlvae": "product"}
# model -> (hyper-parameter, values); Locatello et al.'s grids are larger (6 values each).
GRID: dict[str, tuple[str, tuple[float, ...]]] = {
    "beta_vae": ("beta", (1.0, 4.0)),
    "annealed_vae": ("c_max", (5.0, 25.0)),
    "factor_vae": ("gamma", (10.0, 40.0)),
    "beta_tcvae": ("beta", (2.0, 6.0)),
    "dip_vae_i": ("lambda_od", (1.0, 10.0)),
    "dip_vae_ii": ("lambda_od", (1.0, 10.0)),
    "gvae": ("group_size", (2, 8)),
    "mlvae": ("group_size", (2, 8)),
}
METRICS = (
    "beta_vae_score", "factor_vae_score", "mig", "dci_disentanglement", "sap", "modularity",
    "group_mig",
)
EXTRA_METRICS = (
    "dci_completeness", "dci_informativeness_test", "explicitness_test", "group_mig_u",
    "group_mig_v", "reconstruction_nll", "kl", "active_dims",
)


@dataclass
class Config:
    image_size: int = 32
    z_dim: int = 10
    u_dim: int = 4  # group models: u_dim + v_dim = z_dim
    shared: tuple[str, ...] = ("shape", "scale")
    train_size: int = 12_800  # observations
    steps: int = 600
    batch_size: int = 64  # observations per step
    lr: float = 1e-3
    seeds: int = 3
    eval_size: int = 5000
    score_points: tuple[int, int] = (2000, 1000)  # BetaVAE / FactorVAE score train / eval points
    models: tuple[str, ...] = MODELS
    grid: dict[str, tuple[str, tuple[float, ...]]] = field(default_factory=lambda: dict(GRID))
    annealed_gamma: float = 1000.0
    annealed_fraction: float = 0.5  # capacity reaches c_max after this fraction of the steps
    disc_hidden: tuple[int, ...] = (256, 256)
    disc_lr: float = 1e-3
    workers: int = field(default_factory=available_cpus)  # one process per core
    device: str = "cpu"
    data_seed: int = 0
    figures: bool = True
    traversal_models: int = len(MODELS)  # traversal figures for the first models only
    fast_metrics: bool = False  # modularity from the MI matrix only, no explicitness (smoke test)


def smoke_config() -> Config:
    """A seconds-long run for CI: 16x16 images, a few steps, one value per model, 2 seeds, one
    worker, the cheap form of modularity."""
    grid = {m: (p, v[:1]) for m, (p, v) in GRID.items()}
    return Config(
        image_size=16, train_size=128, steps=4, batch_size=32, seeds=2, eval_size=300,
        score_points=(60, 30), grid=grid, disc_hidden=(16,), workers=1, traversal_models=2,
        fast_metrics=True,
    )


def build(name: str, value: float, cfg: Config, total_steps: int):
    """``(model, guide, loss, penalties)`` of row ``name`` with hyper-parameter ``value``."""
    size = cfg.image_size
    if name in GROUP_MODELS:
        v_dim = cfg.z_dim - cfg.u_dim
        model = GroupVAE(ConvDecoder(cfg.u_dim, v_dim, image_size=size))
        guide = make_guide(
            256, cfg.u_dim, v_dim, group=GROUP_MODELS[name], instance="unconditional", hidden=(),
            body=conv_body(1, size),
        )
        return model, guide, BetaVAELoss(1.0), []
    model = IIDVAE(ConvDecoder(0, cfg.z_dim, image_size=size))
    guide = IIDGuide(256, cfg.z_dim, (), body=conv_body(1, size))
    penalties: list = []
    if name == "beta_vae":
        loss: Any = BetaVAELoss(value)
    elif name == "annealed_vae":
        anneal_steps = max(1, int(cfg.annealed_fraction * total_steps))
        loss = AnnealedVAELoss(cfg.annealed_gamma, value, anneal_steps)
    elif name == "factor_vae":
        loss = BetaVAELoss(1.0)
        penalties = [FactorVAEPenalty(cfg.z_dim, value, hidden=cfg.disc_hidden, lr=cfg.disc_lr)]
    elif name == "beta_tcvae":
        loss = BetaTCVAELoss(value)
    elif name in ("dip_vae_i", "dip_vae_ii"):
        loss = DIPVAELoss(value, kind=name.rsplit("_", 1)[1])
    else:
        raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
    return model, guide, loss, penalties


def training_data(name: str, value: float, cfg: Config):
    """I.i.d. images (groups of one) for the baselines, groups sharing ``cfg.shared`` otherwise."""
    data = Sprites(cfg.image_size)
    if name in GROUP_MODELS:
        k = int(value)
        return group_by_factors(data, cfg.shared, cfg.train_size // k, k, rng=cfg.data_seed), k
    return random_groups(data, cfg.train_size, 1, rng=cfg.data_seed), 1


def evaluation_data(cfg: Config) -> tuple[np.ndarray, torch.Tensor]:
    return Sprites(cfg.image_size).sample(cfg.eval_size, rng=cfg.data_seed + 1)


@torch.no_grad()
def representation(
    guide, images: torch.Tensor, chunk: int = 1000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means ``[n, D]`` (``[u, v]`` for group models, each image a group of one) and the
    KL of each posterior to N(0, I) ``[n]``."""
    codes, kls = [], []
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk].unsqueeze(1)
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        u, v = encode(guide, GroupBatch(x, mask))
        codes.append(torch.cat([u, v[:, 0]], -1))
        qs = [guide.group_posterior(x, mask), guide.instance_posterior(x, u.unsqueeze(-2))]
        kl = sum(_kl_std_normal(q).reshape(x.shape[0], -1).sum(-1) for q in qs)
        kls.append(kl)
    return torch.cat(codes), torch.cat(kls)


def _kl_std_normal(q) -> torch.Tensor:
    base = q.base_dist
    loc, scale = base.loc, base.scale
    return 0.5 * (scale.pow(2) + loc.pow(2) - 1.0 - 2.0 * scale.log()).sum(-1)


@torch.no_grad()
def decode_codes(model, codes: torch.Tensor, u_dim: int) -> torch.Tensor:
    """Decoder means ``[B, C, H, W]`` of codes ``[B, u_dim + v_dim]``."""
    z = codes.unsqueeze(1)
    return model.decoder.mean(z[..., :u_dim], z[..., u_dim:])[:, 0]


def score(codes: np.ndarray, factors: np.ndarray, code_blocks: list[str], factor_blocks: list[str],
          cfg: Config, seed: int) -> dict[str, float]:
    """Every metric of the suite on ``codes`` ``[n, D]`` against ``factors`` ``[n, K]``."""
    n_train, n_eval = cfg.score_points
    out: dict[str, float] = {}
    out.update(dm.beta_vae_score(codes, factors, rng=seed, num_train=n_train, num_eval=n_eval))
    out.update(dm.factor_vae_score(codes, factors, rng=seed, num_train=n_train, num_eval=n_eval))
    out.update(dm.mig(codes, factors))
    out.update(dm.dci(codes, factors, rng=seed))
    out.update(dm.sap(codes, factors, rng=seed))
    if cfg.fast_metrics:
        out.update(dm.modularity_from_mi(mutual_info_and_entropy(codes, factors, 20)[0]))
        out.update({"explicitness_train": float("nan"), "explicitness_test": float("nan")})
    else:
        out.update(dm.modularity_explicitness(codes, factors, rng=seed))
    out.update(dm.group_mig(codes, factors, code_blocks=code_blocks, factor_blocks=factor_blocks))
    return {k: float(v) for k, v in out.items() if "_factor_" not in k}


def code_blocks_for(
    name: str, codes: np.ndarray, factors: np.ndarray, factor_blocks: list[str], cfg: Config
) -> list[str]:
    """The u/v split of a group model; for an i.i.d. model (no split) each dimension is assigned
    post hoc to the block of the factor it is most informative about (an oracle split)."""
    if name in GROUP_MODELS:
        return ["u"] * cfg.u_dim + ["v"] * (cfg.z_dim - cfg.u_dim)
    mi, _ = mutual_info_and_entropy(codes, factors, 20)
    return [factor_blocks[int(k)] for k in mi.argmax(1)]


def run_one(name: str, value: float, seed: int, cfg: Config) -> dict[str, Any]:
    """Train row ``name`` at hyper-parameter ``value`` with ``seed``; return its scores."""
    pyro.clear_param_store()
    wall, cpu = time.perf_counter(), time.process_time()
    train, k = training_data(name, value, cfg)
    batch_groups = max(1, cfg.batch_size // k)
    epochs = max(1, round(cfg.steps / math.ceil(len(train) / batch_groups)))
    total_steps = epochs * math.ceil(len(train) / batch_groups)
    pyro.set_rng_seed(seed)
    model, guide, loss, penalties = build(name, value, cfg, total_steps)
    history = fit(model, guide, train, epochs=epochs, batch_size=batch_groups, lr=cfg.lr, loss=loss,
                  penalties=penalties, seed=seed, device=cfg.device, progress=False)
    train_cpu = time.process_time() - cpu
    factors, images = evaluation_data(cfg)
    images = images.to(cfg.device)
    codes_t, kl = representation(guide, images)
    codes = codes_t.cpu().numpy()
    data = Sprites(cfg.image_size)
    factor_blocks = ["u" if f in cfg.shared else "v" for f in data.factor_names]
    blocks = code_blocks_for(name, codes, factors, factor_blocks, cfg)
    metrics = score(codes, factors, blocks, factor_blocks, cfg, seed)
    u_dim = cfg.u_dim if name in GROUP_MODELS else 0
    few = images[:1000]
    with torch.no_grad():
        z = codes_t[: few.shape[0]].unsqueeze(1)
        nll = -model.decoder(z[..., :u_dim], z[..., u_dim:]).log_prob(few.unsqueeze(1)).mean()
    metrics["reconstruction_nll"] = float(nll)
    metrics["kl"] = float(kl.mean())
    metrics["active_dims"] = float((codes.std(0) > 0.05).sum())
    out: dict[str, Any] = {
        "model": name, "hyperparameter": cfg.grid[name][0], "value": value, "seed": seed,
        "metrics": metrics, "steps": total_steps, "final_loss": history.to_list()[-1]["loss"],
        "train_cpu_seconds": train_cpu, "cpu_seconds": time.process_time() - cpu,
        "wall_seconds": time.perf_counter() - wall,
    }
    if cfg.figures and seed == 0 and value == cfg.grid[name][1][0]:
        out["examples"] = _examples(model, codes_t, images, u_dim)
    return out


def _examples(model, codes: torch.Tensor, images: torch.Tensor, u_dim: int) -> dict[str, Any]:
    """Reconstructions of 8 evaluation images and traversals of the first one's code."""
    values = torch.linspace(-2.0, 2.0, 7)
    from pyro_groups.plots_images import latent_traversals

    trav = latent_traversals(lambda z: decode_codes(model, z, u_dim), codes[0], values)
    return {
        "originals": images[:8].cpu().numpy(),
        "reconstructions": decode_codes(model, codes[:8], u_dim).cpu().numpy(),
        "traversals": trav.cpu().numpy(),
        "values": values.tolist(),
        "u_dim": u_dim,
    }


def _run_job(args: tuple[str, float, int, Config]) -> dict[str, Any]:
    return run_one(*args)


def summarize_runs(runs: list[dict[str, Any]], cfg: Config) -> tuple[list[dict], list[dict]]:
    """Per (model, hyper-parameter) row and per model (all values and seeds pooled):
    ``{"mean", "std", "n"}`` of every metric over runs."""
    keys = METRICS + EXTRA_METRICS
    rows, pooled = [], []
    for name in cfg.models:
        mine = [r for r in runs if r["model"] == name]
        if not mine:
            continue
        param, values = cfg.grid[name]
        for value in values:
            sel = sorted((r for r in mine if r["value"] == value), key=lambda r: r["seed"])
            row: dict[str, Any] = {"model": name, "hyperparameter": {param: value}}
            row.update({m: summarize([r["metrics"][m] for r in sel]) for m in keys})
            row["train_cpu_seconds"] = summarize([r["train_cpu_seconds"] for r in sel])
            rows.append(row)
        row = {"model": name, "hyperparameter": {param: list(values)}}
        row.update({m: summarize([r["metrics"][m] for r in mine]) for m in keys})
        pooled.append(row)
    return rows, pooled


def spearman_matrix(runs: list[dict[str, Any]], metrics=METRICS) -> np.ndarray:
    """Spearman rank correlation between metrics over all runs (pairwise complete)."""
    from scipy.stats import spearmanr

    table = np.array([[r["metrics"][m] for m in metrics] for r in runs], dtype=float)
    out = np.eye(len(metrics))
    for i in range(len(metrics)):
        for j in range(i + 1, len(metrics)):
            ok = np.isfinite(table[:, i]) & np.isfinite(table[:, j])
            a, b = table[ok, i], table[ok, j]
            varied = ok.sum() > 2 and a.std() > 0 and b.std() > 0
            out[i, j] = out[j, i] = spearmanr(a, b).statistic if varied else np.nan
    return out


def variance_split(runs: list[dict[str, Any]], metrics=METRICS) -> dict[str, dict[str, float]]:
    """Per metric: the spread of the per-model means, of the per-configuration means within a
    model, and of the seeds within a configuration (Locatello et al.: seeds and hyper-parameters
    matter more than the model)."""
    out = {}
    for m in metrics:
        by_model: dict[str, list] = {}
        by_config: dict[tuple, list] = {}
        for r in runs:
            by_model.setdefault(r["model"], []).append(r["metrics"][m])
            by_config.setdefault((r["model"], r["value"]), []).append(r["metrics"][m])
        model_means = [np.nanmean(v) for v in by_model.values()]
        config_std = [
            np.nanstd([np.nanmean(v) for c, v in by_config.items() if c[0] == k]) for k in by_model
        ]
        seed_std = [np.nanstd(v, ddof=1) for v in by_config.values() if len(v) > 1]
        out[m] = {"between_models_std": float(np.nanstd(model_means)),
                  "between_hyperparameters_std": float(np.nanmean(config_std)),
                  "between_seeds_std": float(np.nanmean(seed_std)) if seed_std else float("nan")}
    return out


def format_table(rows: list[dict[str, Any]], metrics=METRICS) -> str:
    head = f"{'model':<14}{'setting':<18}" + "".join(f"{m[:12]:>14}" for m in metrics)
    lines = [head, "-" * len(head)]
    for r in rows:
        (param, value), = r["hyperparameter"].items()
        setting = f"{param}={value}" if not isinstance(value, list) else "all"
        cells = "".join(f"{r[m]['mean']:>8.3f}±{r[m]['std']:<5.2f}" for m in metrics)
        lines.append(f"{r['model']:<14}{setting:<18}{cells}")
    return "\n".join(lines)


def run(cfg: Config, out: str | os.PathLike, *, progress: bool = True) -> dict[str, Any]:
    """Run every (model, value, seed) job; write ``results.json`` and the figures into ``out``."""
    from pyro_groups.experiments.disentanglement_figures import write_figures

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    unknown = [m for m in cfg.models if m not in cfg.grid]
    if unknown:
        raise ValueError(f"unknown models {unknown}; choose from {sorted(cfg.grid)}")
    jobs = [(m, v, s, cfg) for s in range(cfg.seeds) for m in cfg.models for v in cfg.grid[m][1]]
    start = time.perf_counter()
    runs = run_jobs(_run_job, jobs, workers=cfg.workers, progress=progress, desc="disentanglement")
    order = {(m, v, s): i for i, (m, v, s, _) in enumerate(jobs)}
    runs.sort(key=lambda r: order[(r["model"], r["value"], r["seed"])])
    examples = {r["model"]: r.pop("examples") for r in runs if "examples" in r}
    rows, pooled = summarize_runs(runs, cfg)
    rho = spearman_matrix(runs)
    result = {
        "benchmark": "disentanglement",
        "config": asdict(cfg),
        "environment": environment(cfg.device),
        "results": rows,
        "models": pooled,
        "rank_correlation": {"metrics": list(METRICS), "spearman": rho.tolist()},
        "variance": variance_split(runs),
        "runs": runs,
        "wall_seconds": time.perf_counter() - start,
        "paper": "Locatello et al. (2019) report figures, not tables; compare rankings and spreads",
    }
    if cfg.figures:
        paths = write_figures(runs, rho, examples, cfg, out)
        result["figures"] = [os.path.basename(p) for p in paths]
    result = json_safe(result)
    (out / "results.json").write_text(json.dumps(result, indent=1, allow_nan=False))
    return result
