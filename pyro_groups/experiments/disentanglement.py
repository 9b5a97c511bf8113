"""The study of Locatello et al. (2019), "Challenging common assumptions in the unsupervised
learning of disentangled representations", on procedural dSprites.

Rows: the six unsupervised baselines (beta-VAE, AnnealedVAE, FactorVAE, beta-TCVAE, DIP-VAE-I,
DIP-VAE-II; ``IIDVAE`` + ``IIDGuide`` on i.i.d. images) and the weakly supervised group models
GVAE and ML-VAE (``GroupVAE`` + ``make_guide(group="average" | "product")`` on groups sharing the
``shared`` factors). Every row is trained over a hyper-parameter grid and several seeds with the
same architecture (Locatello et al.'s conv encoder/decoder, Bernoulli likelihood), the same
number of images per step and of steps. Fresh images are encoded (posterior means, and one draw
from the encoder for the sampled representation; a group model encodes an image as a group of
one, code ``[u, v]``) and scored by :func:`~pyro_groups.experiments.disentanglement_scores.score`
(every metric under ``disentanglement_lib``'s conventions, Gaussian total correlations,
downstream accuracy); the ELBO, reconstruction and KL on the same images are the unsupervised
scores. :mod:`~pyro_groups.experiments.disentanglement_analysis` regresses and correlates the
runs, :mod:`~pyro_groups.experiments.disentanglement_report` checks the paper's claims.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pyro
import torch

from pyro_groups.data.batch import GroupBatch
from pyro_groups.data.factors import group_by_factors, random_groups
from pyro_groups.data.sprites import Sprites
from pyro_groups.evaluation.codes import encode
from pyro_groups.evaluation.disentanglement.utils import mutual_info_and_entropy
from pyro_groups.experiments.disentanglement_scores import score
from pyro_groups.experiments.environment import available_cpus, environment, json_safe, run_jobs
from pyro_groups.experiments.resume import finished_runs, run_settings, save_run
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
UNSUPERVISED = MODELS[:6]
GROUP_MODELS = {"gvae": "average", "mlvae": "product"}
# model -> (hyper-parameter, values), each grid ordered by regularisation strength (weaker
# first) except AnnealedVAE's capacity (a larger c_max regularises less) and the group size.
GRID: dict[str, tuple[str, tuple[float, ...]]] = {
    "beta_vae": ("beta", (1.0, 4.0)),
    "annealed_vae": ("c_max", (5.0, 25.0)),
    "factor_vae": ("gamma", (10.0, 40.0)),
    "beta_tcvae": ("beta", (2.0, 6.0)),
    "dip_vae_i": ("lambda_od", (1.0, 10.0)),
    "dip_vae_ii": ("lambda_od", (1.0, 10.0)),
    "gvae": ("group_size", (8,)),
    "mlvae": ("group_size", (8,)),
}
# Locatello et al. (2019), Table 2: six values per model.
PAPER_GRID: dict[str, tuple[str, tuple[float, ...]]] = {
    "beta_vae": ("beta", (1.0, 2.0, 4.0, 6.0, 8.0, 16.0)),
    "annealed_vae": ("c_max", (5.0, 10.0, 25.0, 50.0, 75.0, 100.0)),
    "factor_vae": ("gamma", (10.0, 20.0, 30.0, 40.0, 50.0, 100.0)),
    "beta_tcvae": ("beta", (1.0, 2.0, 4.0, 6.0, 8.0, 10.0)),
    "dip_vae_i": ("lambda_od", (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)),
    "dip_vae_ii": ("lambda_od", (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)),
    "gvae": ("group_size", (2, 4, 8, 16)),
    "mlvae": ("group_size", (2, 4, 8, 16)),
}
METRICS = (
    "beta_vae_score", "factor_vae_score", "mig", "dci_disentanglement", "sap", "modularity",
    "group_mig",
)
UNSUPERVISED_SCORES = ("elbo", "reconstruction_nll", "kl", "tc_sampled", "tc_mean")
EXTRA_METRICS = (
    "dci_completeness", "dci_informativeness_test", "explicitness_test", "group_mig_u",
    "group_mig_v", "sap_pyro_groups", "dci_disentanglement_pyro_groups", *UNSUPERVISED_SCORES,
    "active_dims", "logistic_small", "logistic_large", "logistic_efficiency", "gbt_small",
    "gbt_large", "gbt_efficiency",
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
    eval_size: int = 15_000  # fresh images: 10,000 training and 5,000 test rows
    score_points: tuple[int, int] = (10_000, 5000)  # BetaVAE / FactorVAE train / eval points
    dci_rows: int = 750  # DCI's gradient boosting on 500 / 250 rows (library: 10,000 / 5,000)
    dci_estimator: Optional[str] = None  # None: the convention's (gradient boosting)
    downstream_sizes: tuple[int, int] = (100, 10_000)
    downstream_test: int = 5000
    downstream_predictors: tuple[str, ...] = ("logistic", "gbt")
    nll_images: int = 1000  # images for the ELBO / reconstruction / KL
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
    """A seconds-long run for CI: 16x16 images, a few steps, three models with two values, 2
    seeds, one worker, cheap estimators (random-forest DCI, no downstream classifiers)."""
    models = ("beta_vae", "beta_tcvae", "gvae")
    grid = {**GRID, "gvae": ("group_size", (2, 8))}
    return Config(
        image_size=16, train_size=128, steps=4, batch_size=32, seeds=2, eval_size=300,
        score_points=(60, 30), dci_rows=150, dci_estimator="random_forest",
        downstream_sizes=(20, 100), downstream_test=100, downstream_predictors=(), nll_images=100,
        models=models, grid={m: grid[m] for m in models}, disc_hidden=(16,), workers=1,
        traversal_models=1, fast_metrics=True,
    )


def paper_config() -> Config:
    """Locatello et al.'s grids (six values per model), 5 seeds, 5,000 steps, and the library's
    10,000 / 5,000 rows for DCI and the downstream gradient boosting (days on a 2-core CPU)."""
    return Config(steps=5000, seeds=5, grid=dict(PAPER_GRID), dci_rows=15_000)


def build(name: str, value: float, cfg: Config, total_steps: int):
    """``(model, guide, loss, penalties)`` of row ``name`` with hyper-parameter ``value``."""
    size = cfg.image_size
    if name in GROUP_MODELS:
        v_dim = cfg.z_dim - cfg.u_dim
        group_model = GroupVAE(ConvDecoder(cfg.u_dim, v_dim, image_size=size))
        group_guide = make_guide(
            256, cfg.u_dim, v_dim, group=GROUP_MODELS[name], instance="unconditional", hidden=(),
            body=conv_body(1, size),
        )
        return group_model, group_guide, BetaVAELoss(1.0), []
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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Posterior means ``[n, D]`` (``[u, v]`` for group models, each image a group of one), one
    draw from the posterior ``[n, D]`` (the sampled representation) and the KL of each
    posterior to N(0, I) ``[n]``."""
    codes, draws, kls = [], [], []
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk].unsqueeze(1)
        batch = GroupBatch(x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device))
        u, v = encode(guide, batch)
        codes.append(torch.cat([u, v[:, 0]], -1))
        us, vs = encode(guide, batch, sample=True)
        draws.append(torch.cat([us, vs[:, 0]], -1))
        qs = [guide.group_posterior(x, batch.mask), guide.instance_posterior(x, u.unsqueeze(-2))]
        kls.append(torch.stack([_kl_std_normal(q).reshape(x.shape[0], -1).sum(-1)
                                for q in qs]).sum(0))
    return torch.cat(codes), torch.cat(draws), torch.cat(kls)


def _kl_std_normal(q) -> torch.Tensor:
    base = q.base_dist
    loc, scale = base.loc, base.scale
    return 0.5 * (scale.pow(2) + loc.pow(2) - 1.0 - 2.0 * scale.log()).sum(-1)


@torch.no_grad()
def decode_codes(model, codes: torch.Tensor, u_dim: int) -> torch.Tensor:
    """Decoder means ``[B, C, H, W]`` of codes ``[B, u_dim + v_dim]``."""
    z = codes.unsqueeze(1)
    return model.decoder.mean(z[..., :u_dim], z[..., u_dim:])[:, 0]


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
    from threadpoolctl import threadpool_limits

    pyro.clear_param_store()
    wall, cpu = time.perf_counter(), time.process_time()
    train, k = training_data(name, value, cfg)
    batch_groups = max(1, cfg.batch_size // k)
    epochs = max(1, round(cfg.steps / math.ceil(len(train) / batch_groups)))
    total_steps = epochs * math.ceil(len(train) / batch_groups)
    pyro.set_rng_seed(seed)
    model, guide, loss, penalties = build(name, value, cfg, total_steps)
    with threadpool_limits(1):
        history = fit(model, guide, train, epochs=epochs, batch_size=batch_groups, lr=cfg.lr,
                      loss=loss, penalties=penalties, seed=seed, device=cfg.device,
                      progress=False)
        train_cpu = time.process_time() - cpu
        factors, images = evaluation_data(cfg)
        images = images.to(cfg.device)
        codes_t, draws_t, kl = representation(guide, images)
        codes, draws = codes_t.cpu().numpy(), draws_t.cpu().numpy()
        data = Sprites(cfg.image_size)
        factor_blocks = ["u" if f in cfg.shared else "v" for f in data.factor_names]
        blocks = code_blocks_for(name, codes, factors, factor_blocks, cfg)
        metrics = score(codes, draws, factors, blocks, factor_blocks, cfg, seed)
    u_dim = cfg.u_dim if name in GROUP_MODELS else 0
    few = images[: cfg.nll_images]
    with torch.no_grad():
        z = draws_t[: few.shape[0]].unsqueeze(1)
        nll = -model.decoder(z[..., :u_dim], z[..., u_dim:]).log_prob(few.unsqueeze(1)).mean()
    metrics["reconstruction_nll"] = float(nll)
    metrics["kl"] = float(kl[: few.shape[0]].mean())
    metrics["elbo"] = -(metrics["reconstruction_nll"] + metrics["kl"])
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


# Config fields that are the grid's axes or do not change a run's numbers.
NOT_SETTINGS = ("seeds", "models", "grid", "workers", "device", "figures", "traversal_models")


def _run_job(args: tuple[int, str, float, int, Config, str]) -> dict[str, Any]:
    index, name, value, seed, cfg, folder = args
    row = run_one(name, value, seed, cfg)
    examples = row.pop("examples", None)
    key = {"model": name, "value": value, "seed": seed}
    save_run(folder, key, row, run_settings(cfg, NOT_SETTINGS))
    row["index"] = index
    if examples is not None:
        row["examples"] = examples
    return row


def _restore_nan(row: dict[str, Any]) -> dict[str, Any]:
    """A saved run's metrics with JSON's ``null`` back as ``nan`` (a score not measured)."""
    metrics = {k: float("nan") if v is None else v for k, v in row["metrics"].items()}
    return {**row, "metrics": metrics}


def run(cfg: Config, out: str | os.PathLike, *, progress: bool = True) -> dict[str, Any]:
    """Run every (model, value, seed) job; write ``results.json`` and the figures into ``out``.

    Each finished run is also saved in ``out/runs/``; calling again with the same run settings
    and folder skips the runs found there (an interrupted run resumes; see
    :mod:`~pyro_groups.experiments.resume`; figures of examples come from the runs trained in
    this call)."""
    from pyro_groups.experiments import disentanglement_analysis as an
    from pyro_groups.experiments import disentanglement_report as rep
    from pyro_groups.experiments.disentanglement_figures import write_figures

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    unknown = [m for m in cfg.models if m not in cfg.grid]
    if unknown:
        raise ValueError(f"unknown models {unknown}; choose from {sorted(cfg.grid)}")
    jobs = [(m, v, s) for s in range(cfg.seeds) for m in cfg.models for v in cfg.grid[m][1]]
    folder = out / "runs"
    folder.mkdir(exist_ok=True)
    keys = [{"model": m, "value": v, "seed": s} for m, v, s in jobs]
    done = finished_runs(folder, keys, run_settings(cfg, NOT_SETTINGS))
    start, cpu0 = time.perf_counter(), time.process_time()
    todo = [(i, *job, cfg, str(folder)) for i, job in enumerate(jobs) if i not in done]
    runs = run_jobs(_run_job, todo, workers=cfg.workers, progress=progress, desc="disentanglement")
    resumed = [{**_restore_nan(r), "index": i} for i, r in done.items()]
    runs = sorted(runs + resumed, key=lambda r: r["index"])
    examples = {r["model"]: r.pop("examples") for r in runs if "examples" in r}
    rows, pooled = an.summarize_runs(runs, cfg, METRICS + EXTRA_METRICS)
    analysis = an.analyse(runs, METRICS, UNSUPERVISED)
    result = {
        "benchmark": "disentanglement",
        "config": {**asdict(cfg), "convention": "disentanglement_lib (fresh samples: disjoint "
                   "parts of i.i.d. rows)"},
        "environment": environment(cfg.device),
        "results": rows,
        "models": pooled,
        **analysis,
        "findings": rep.findings(runs, analysis, cfg),
        "runs": runs,
        "wall_seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu0 + sum(r["cpu_seconds"] for r in runs),
        "paper": "Locatello et al. (2019) report figures and the R^2 table (Table 4); "
                 "compare rankings, correlations and variance shares",
    }
    result["cpu_seconds_per_core_on_2_cores"] = result["cpu_seconds"] / 2
    result["resumed_runs"] = len(done)
    path = out / "results.json"
    path.write_text(json.dumps(json_safe(result), indent=1, allow_nan=False))
    if cfg.figures:
        paths = write_figures(runs, analysis, examples, cfg, out, metrics=METRICS,
                              unsupervised=UNSUPERVISED)
        result["figures"] = [os.path.basename(p) for p in paths]
        path.write_text(json.dumps(json_safe(result), indent=1, allow_nan=False))
    return result
