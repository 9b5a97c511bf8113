r"""group-tcVAE against GVAE and ML-VAE (Tran et al., Sec. 4 and Figs. 3-4), on procedural images.

Rows (each trained over its own hyper-parameter grid and several seeds, with the same
convolutional encoders and decoder, Adam, images per step and steps):

- ``gvae`` / ``mlvae``: :class:`~pyro_groups.models.GroupVAE` with one group code per group, the
  average (Hosoya 2019) or product (Bouchacourt et al. 2018) of the members' normals, and
  :math:`\beta` on the KL (:class:`~pyro_groups.objectives.BetaVAELoss`, the paper's Eq. 1),
  tuned over ``baseline_betas``;
- ``group_tcvae_<level>``: :class:`~pyro_groups.models.paired.PairedVAE` with per-member group
  codes and :class:`~pyro_groups.adversary.GroupTCVAEPenalty` (Eq. 3: :math:`\beta` TC at
  ``level`` ``inter``, ``inter_intra`` or ``full``, :math:`\gamma` pair KL) over
  ``betas`` x ``gammas``, on the ELBO.

Every ELBO has the analytic KL (``BetaVAELoss``; :math:`\beta = 1` for group-tcVAE), so the
models differ only in the objective's terms and the group posterior.

Data: groups of ``group_size`` observations sharing the *content* factors and drawing the others
independently (:func:`~pyro_groups.data.group_by_factors`; pairs for ``group_size = 2``): dSprites-
like :class:`~pyro_groups.data.Sprites` (content: shape, scale, orientation) and 3DShapes-like
:class:`~pyro_groups.data.Shapes3D` (content: object hue, scale, shape; the paper's Fig. 3a
split). The number of training *observations* and of observations per step are the same for
every group size, so the sensitivity runs (Fig. 3c) change only how many observations share a
group.

Evaluation: posterior means ``[u, v]`` of ``eval_size`` fresh single observations; MIG (Chen et
al. 2018) and group-MIG (code block ``u`` for the content factors, ``v`` for the rest), and the
normalised mutual information :math:`I(z_j; v_k) / H(v_k)` of every latent dimension and factor
(the collapse heat maps of Fig. 3a).

Choices where the paper is vague (README.rst, "group-tcVAE"): ``v`` has one dimension per
non-content factor (with room for every factor the per-member ``u`` collapsed); the baselines'
:math:`\beta` grid follows Locatello et al. (2020), which the paper says it used, since
group-tcVAE's :math:`\beta` weighs a TC (its KL weight is 1), so its values (10-100) are not KL
weights; members other than the content are drawn independently (a pair may share another
factor by chance).
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

from pyro_groups.adversary.group_tc import GroupTCVAEPenalty
from pyro_groups.data import GroupBatch, Shapes3D, Sprites
from pyro_groups.data.factors import group_by_factors
from pyro_groups.evaluation.codes import encode
from pyro_groups.evaluation.disentanglement import group_mig, mig
from pyro_groups.evaluation.disentanglement.utils import mutual_info_and_entropy
from pyro_groups.experiments.environment import available_cpus, environment, json_safe, run_jobs
from pyro_groups.experiments.resume import finished_runs, run_settings, save_run
from pyro_groups.guides.paired import pair_guide
from pyro_groups.models.paired import pair_model
from pyro_groups.nn_conv import ConvDecoder, conv_body
from pyro_groups.objectives.beta_vae import BetaVAELoss
from pyro_groups.training.fit import fit

LEVELS = ("inter", "inter_intra", "full")
BASELINES = ("gvae", "mlvae")
DATASETS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "sprites": (Sprites, ("shape", "scale", "orientation")),
    "shapes3d": (Shapes3D, ("object_hue", "scale", "shape")),
}
METRICS = ("mig", "group_mig", "group_mig_u", "group_mig_v")


@dataclass
class Config:
    """Settings of the comparison (the default is the reduced grid; :func:`paper_config` the
    paper's)."""

    datasets: tuple[str, ...] = ("sprites", "shapes3d")
    levels: tuple[str, ...] = LEVELS
    betas: tuple[float, ...] = (10.0, 50.0)  # TC weight (paper: 10, 20, 30, 40, 50, 100)
    gammas: tuple[float, ...] = (8.0, 32.0)  # pair-KL weight (paper: 1, 8, 16, 32, 64)
    baselines: tuple[str, ...] = BASELINES
    baseline_betas: tuple[float, ...] = (1.0, 4.0)  # Locatello et al. 2020: 1, 2, 4, 6, 8, 16
    seeds: int = 2
    steps: int = 600  # reduced from 1,000 so the default fits ~30 min on 2 cores
    observations: int = 8192  # training observations (4,096 pairs)
    batch_observations: int = 64  # per step (32 pairs, as the paper)
    image_size: int = 32
    u_dim: int = 5
    features: int = 256
    lr: float = 1e-3
    disc_hidden: tuple[int, ...] = (256, 256)
    disc_lr: float = 1e-3
    eval_size: int = 5000
    group_sizes: tuple[int, ...] = (2, 8)  # Fig. 3c, on the first data set (paper: 2-16)
    sensitivity: tuple[str, float, Optional[float]] = ("inter", 10.0, 8.0)  # level, beta, gamma
    sensitivity_baseline_beta: float = 1.0
    workers: int = field(default_factory=available_cpus)  # one process per core
    device: str = "cpu"
    data_seed: int = 0
    figures: bool = True


def smoke_config() -> Config:
    """Seconds: 16x16 images, a few steps, one value per grid axis, one level, one seed."""
    return Config(
        levels=("inter",), betas=(10.0,), gammas=(8.0,), baseline_betas=(1.0,), seeds=1,
        steps=3, observations=64, batch_observations=16, image_size=16, features=32,
        disc_hidden=(16,), eval_size=300, group_sizes=(2, 4), workers=1,
    )


def paper_config() -> Config:
    """The paper's grids and five seeds (days on a 2-core CPU)."""
    return Config(
        betas=(10.0, 20.0, 30.0, 40.0, 50.0, 100.0), gammas=(1.0, 8.0, 16.0, 32.0, 64.0),
        baseline_betas=(1.0, 2.0, 4.0, 6.0, 8.0, 16.0), seeds=5, steps=5000,
        group_sizes=(2, 4, 8, 16),
    )


@dataclass(frozen=True)
class Job:
    """One training run."""

    dataset: str
    model: str  # "gvae", "mlvae" or "group_tcvae"
    beta: float
    gamma: Optional[float]
    level: Optional[str]
    group_size: int
    seed: int

    @property
    def name(self) -> str:
        """The row: ``gvae``, ``mlvae`` or ``group_tcvae_<level>``."""
        return self.model if self.level is None else f"{self.model}_{self.level}"


def jobs(cfg: Config) -> list[Job]:
    """The grid on every data set with pairs, then the group-size sensitivity runs."""
    out = []
    for seed in range(cfg.seeds):
        for ds in cfg.datasets:
            for model in cfg.baselines:
                out += [Job(ds, model, b, None, None, 2, seed) for b in cfg.baseline_betas]
            for level in cfg.levels:
                out += [Job(ds, "group_tcvae", b, g, level, 2, seed)
                        for b in cfg.betas for g in cfg.gammas]
        level, beta, gamma = cfg.sensitivity
        for k in cfg.group_sizes:
            if k == 2:
                continue  # the pairs of the grid
            out += [Job(cfg.datasets[0], m, cfg.sensitivity_baseline_beta, None, None, k, seed)
                    for m in cfg.baselines]
            out.append(Job(cfg.datasets[0], "group_tcvae", beta, gamma, level, k, seed))
    return out


def build(job: Job, cfg: Config, channels: int, v_dim: int):
    """``(model, guide, loss, penalties)`` of one job."""
    size, u_dim = cfg.image_size, cfg.u_dim
    model = pair_model(job.model, ConvDecoder(u_dim, v_dim, channels=channels, image_size=size))
    guide = pair_guide(job.model, cfg.features, u_dim, v_dim, hidden=(),
                       body=conv_body(channels, size, out_dim=cfg.features))
    if job.model != "group_tcvae":
        return model, guide, BetaVAELoss(job.beta), []
    if job.gamma is None or job.level is None:
        raise ValueError(f"a group-tcVAE job needs gamma and level, got {job}")
    pen = GroupTCVAEPenalty(u_dim, v_dim, beta=job.beta, gamma=job.gamma, level=job.level,
                            hidden=cfg.disc_hidden, lr=cfg.disc_lr)
    return model, guide, BetaVAELoss(1.0), [pen]


@torch.no_grad()
def representation(guide, images: torch.Tensor, chunk: int = 512) -> np.ndarray:
    """Posterior means ``[n, u_dim + v_dim]`` of single observations."""
    codes = []
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk, None]
        u, v = encode(guide, GroupBatch(x, torch.ones(x.shape[:2], dtype=torch.bool)))
        codes.append(torch.cat([u, v[:, 0]], -1))
    return torch.cat(codes).cpu().numpy()


def evaluate(codes: np.ndarray, factors: np.ndarray, content: list[int], u_dim: int) -> dict:
    """MIG, group-MIG (overall, content ``u`` and non-content ``v`` factors), per-factor MIG and
    the normalised MI matrix ``I(z_j; v_k) / H(v_k)`` ``[D, K]``."""
    code_blocks = ["u"] * u_dim + ["v"] * (codes.shape[1] - u_dim)
    factor_blocks = ["u" if k in content else "v" for k in range(factors.shape[1])]
    out = mig(codes, factors)
    metrics = {"mig": out["mig"]}
    gm = group_mig(codes, factors, code_blocks=code_blocks, factor_blocks=factor_blocks)
    metrics.update({m: gm[m] for m in METRICS[1:]})
    mi, ent = mutual_info_and_entropy(codes, factors, 20)
    normalised = mi / np.where(ent > 0, ent, 1.0)[None, :]
    return {"metrics": metrics, "mig_per_factor": [out[f"mig_factor_{k}"] for k in
                                                   range(factors.shape[1])],
            "mi": normalised.tolist()}


def run_one(job: Job, cfg: Config) -> dict[str, Any]:
    """Train one job and score it; the result row of ``results.json``'s ``runs``."""
    from threadpoolctl import threadpool_limits

    pyro.clear_param_store()
    wall, cpu = time.perf_counter(), time.process_time()
    cls, content_names = DATASETS[job.dataset]
    data_set = cls(cfg.image_size)
    content = [data_set.factor_index(f) for f in content_names]
    v_dim = data_set.num_factors - len(content)
    channels = data_set.observation_shape[0]
    with threadpool_limits(1):
        train = group_by_factors(data_set, content, cfg.observations // job.group_size,
                                 job.group_size, rng=cfg.data_seed + 1000 * job.seed)
        batch_groups = max(1, cfg.batch_observations // job.group_size)
        epochs = max(1, round(cfg.steps / math.ceil(len(train) / batch_groups)))
        pyro.set_rng_seed(job.seed)
        model, guide, loss, penalties = build(job, cfg, channels, v_dim)
        history = fit(model, guide, train, epochs=epochs, batch_size=batch_groups, lr=cfg.lr,
                      loss=loss, penalties=penalties, seed=job.seed, device=cfg.device,
                      progress=False)
        train_cpu = time.process_time() - cpu
        model.eval(), guide.eval()
        factors, images = data_set.sample(cfg.eval_size, rng=10_000 + job.seed)
        codes = representation(guide.cpu(), images)
        row: dict[str, Any] = {**asdict(job), "name": job.name}
        row.update(evaluate(codes, factors, content, cfg.u_dim))
    last = history.to_list()[-1]
    row.update(steps=epochs * math.ceil(len(train) / batch_groups), final_loss=last["loss"],
               train_cpu_seconds=train_cpu, cpu_seconds=time.process_time() - cpu,
               wall_seconds=time.perf_counter() - wall)
    if penalties:
        row["discriminator_loss"] = last.get("discriminator_loss")
    return row


# Config fields that are the grid's axes or do not change a run's numbers.
NOT_SETTINGS = ("datasets", "levels", "betas", "gammas", "baselines", "baseline_betas", "seeds",
                "group_sizes", "sensitivity", "sensitivity_baseline_beta", "workers", "device",
                "figures")


def _run_job(args: tuple[int, Job, Config, str]) -> dict[str, Any]:
    index, job, cfg, folder = args
    row = save_run(folder, asdict(job), run_one(job, cfg), run_settings(cfg, NOT_SETTINGS))
    return {**row, "index": index}


def run(cfg: Config, out: str | os.PathLike, *, progress: bool = True) -> dict[str, Any]:
    """Run every job; write ``results.json`` (and the figures) into the folder ``out``.

    Each finished run is also saved in ``out/runs/``; calling again with the same run settings
    and folder skips the runs found there (an interrupted run resumes; see
    :mod:`~pyro_groups.experiments.resume`).
    """
    from pyro_groups.experiments import group_tcvae_report as report

    for name in cfg.datasets:
        if name not in DATASETS:
            raise ValueError(f"unknown data set {name!r}; choose from {sorted(DATASETS)}")
    bad = [lv for lv in cfg.levels if lv not in LEVELS]
    if bad or any(b not in BASELINES for b in cfg.baselines):
        raise ValueError(f"levels must be in {LEVELS} and baselines in {BASELINES}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    todo = jobs(cfg)
    folder = out / "runs"
    folder.mkdir(exist_ok=True)
    done = finished_runs(folder, [asdict(j) for j in todo], run_settings(cfg, NOT_SETTINGS))
    start, cpu0 = time.perf_counter(), time.process_time()
    args = [(i, j, cfg, str(folder)) for i, j in enumerate(todo) if i not in done]
    runs = run_jobs(_run_job, args, workers=cfg.workers, progress=progress, desc="group-tcVAE")
    runs = sorted(runs + [{**r, "index": i} for i, r in done.items()], key=lambda r: r["index"])
    result = {
        "benchmark": "group_tcvae",
        "config": {**asdict(cfg), "levels": list(cfg.levels), "betas": list(cfg.betas),
                   "gammas": list(cfg.gammas), "baseline_betas": list(cfg.baseline_betas),
                   "content": {d: list(DATASETS[d][1]) for d in cfg.datasets}},
        "environment": environment(cfg.device),
        "results": report.config_rows(runs),
        "models": report.model_rows(runs),
        "sensitivity": report.sensitivity_rows(runs, cfg),
        "findings": report.findings(runs, cfg),
        "runs": runs,
        "wall_seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu0 + sum(r["cpu_seconds"] for r in runs),
        "paper": "Fig. 4 shows densities over 5 seeds and the grids, no table: compare claims",
    }
    result["cpu_seconds_per_core_on_2_cores"] = result["cpu_seconds"] / 2
    result["resumed_runs"] = len(done)
    path = out / "results.json"
    path.write_text(json.dumps(json_safe(result), indent=1, allow_nan=False))
    if cfg.figures:
        from pyro_groups.experiments.group_tcvae_figures import write_figures

        names = {d: DATASETS[d][0].factor_names for d in cfg.datasets}
        paths = write_figures(runs, cfg, out, factor_names=names)
        result["figures"] = [os.path.basename(p) for p in paths]
        path.write_text(json.dumps(json_safe(result), indent=1, allow_nan=False))
    return result
