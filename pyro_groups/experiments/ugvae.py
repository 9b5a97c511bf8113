"""UG-VAE's experiments (Secs. 4.1-4.3) on the embedded 8x8 digits (or a local MNIST) and sprites.

Models, all trained on *random* batches of ``group_size`` images (the paper: 128) with
``pyro_groups.fit``, the same convolutional encoders / decoder (Locatello et al.'s layout, one
stride-2 layer at 8x8) and a Bernoulli likelihood:

- ``ugvae``: :class:`~pyro_groups.models.UGVAE` with ``num_clusters`` (10, as the paper's MNIST)
  and :class:`~pyro_groups.guides.UGVAEGuide` (``q(d | z)`` enumerated in the guide), trained with
  ``TraceEnum_ELBO(max_plate_nesting=2)`` (eqs. 10-11);
- ``ugvae_k1``: the same without the mixture (one cluster);
- ``mlvae``: ML-VAE (``GroupVAE`` + product-of-normals group encoder), the paper's Fig. 4 / Table 1
  comparison, ``Trace_ELBO``.

Experiments: Fig. 3 / 4 sampling grids, Table 1 structured-batch classification (with the
mean-image baseline, batch sizes 8 / 32 / 128, posterior means and samples of ``beta``), the NMI of
``q(d | z)`` against the digit labels, and Fig. 5 domain alignment on batches mixing digits and
sprites (both at ``domain_image_size``). The evaluations are in
:mod:`pyro_groups.experiments.ugvae_tasks`, the paper's numbers and the verdicts in
:mod:`pyro_groups.experiments.ugvae_report`.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pyro
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from torch import nn

from pyro_groups.data.dataset import GroupedData
from pyro_groups.data.digits import digits
from pyro_groups.data.loaders import load_mnist
from pyro_groups.data.sprites import Sprites
from pyro_groups.evaluation.clusters import cluster_assignments
from pyro_groups.experiments import ugvae_report as report
from pyro_groups.experiments import ugvae_tasks as tasks
from pyro_groups.experiments.environment import environment, run_jobs
from pyro_groups.guides.group_guide import make_guide
from pyro_groups.guides.ugvae_guide import UGVAEGuide
from pyro_groups.models.group_vae import GroupVAE
from pyro_groups.models.ugvae import UGVAE
from pyro_groups.nn_conv import ConvDecoder, conv_body
from pyro_groups.training.fit import fit
from pyro_groups.validation import ArgumentError

MODELS = ("ugvae", "ugvae_k1", "mlvae")


@dataclass
class Config:
    u_dim: int = 8  # beta
    v_dim: int = 8  # z
    num_clusters: int = 10
    features: int = 256  # encoder body width
    group_size: int = 128  # images per random training batch (the paper's B)
    groups_per_step: int = 1
    train_groups: int = 400  # a fixed pool of random batches, reshuffled every epoch
    steps: int = 4000
    lr: float = 1e-3
    seeds: int = 4
    models: tuple[str, ...] = MODELS
    batch_sizes: tuple[int, ...] = (8, 32, 128)
    per_class: int = 100  # classifier batches per class, in each of its train / test splits
    eval_fraction: float = 1 / 3  # digits held out for the classification batches
    domain: bool = True
    domain_models: tuple[str, ...] = ("ugvae", "mlvae")
    domain_image_size: int = 16
    domain_steps: int = 2000
    domain_batches: int = 60  # pure-digit, pure-sprite and mixed batches each, for Fig. 5
    mnist: Optional[str] = None  # a folder with MNIST's idx files: use them instead of digits
    mnist_train: int = 20_000
    workers: int = 2
    data_seed: int = 0
    figures: bool = True


def smoke_config() -> Config:
    """A seconds-long run for CI."""
    return Config(features=32, group_size=16, train_groups=12, steps=6, seeds=2,
                  batch_sizes=(4, 8), per_class=8, domain_steps=4, domain_batches=8,
                  domain_image_size=8, workers=1)


def images_and_labels(cfg: Config) -> dict[str, tuple[torch.Tensor, np.ndarray]]:
    """``train`` (VAE training) and the held-out ``classifier`` pool that the structured batches
    are drawn from: ``(images [n, 1, H, W], labels [n])``."""
    if cfg.mnist:
        train, test = load_mnist(cfg.mnist, "train"), load_mnist(cfg.mnist, "test")
        n = min(cfg.mnist_train, train.num_images)
        return {"train": (train.images_at(np.arange(n)), train.labels[:n]),
                "classifier": (test.images_at(np.arange(test.num_images)), test.labels)}
    data = digits()
    perm = np.random.default_rng(cfg.data_seed).permutation(data.num_images)
    n_eval = int(round(cfg.eval_fraction * data.num_images))
    tr, ev = perm[n_eval:], perm[:n_eval]
    return {"train": (data.images_at(tr), data.labels[tr]),
            "classifier": (data.images_at(ev), data.labels[ev])}


def random_batches(images: torch.Tensor, num_groups: int, size: int, rng) -> GroupedData:
    """``num_groups`` random batches of ``size`` distinct images (UG-VAE's training groups)."""
    index = np.stack([rng.choice(len(images), size, replace=False) for _ in range(num_groups)])
    x = images[torch.as_tensor(index)]
    return GroupedData(x, torch.ones(x.shape[:2], dtype=torch.bool))


def build(name: str, cfg: Config, image_size: int) -> tuple[nn.Module, nn.Module, Any]:
    """``(model, guide, loss)`` of a row."""
    decoder = ConvDecoder(cfg.u_dim, cfg.v_dim, image_size=image_size)
    body = conv_body(1, image_size, out_dim=cfg.features)
    if name == "mlvae":
        mlvae = make_guide(cfg.features, cfg.u_dim, cfg.v_dim, group="product",
                           instance="unconditional", hidden=(), body=body)
        return GroupVAE(decoder), mlvae, Trace_ELBO()
    if name not in ("ugvae", "ugvae_k1"):
        raise ArgumentError(f"unknown model {name!r}; choose from {MODELS}")
    k = 1 if name == "ugvae_k1" else cfg.num_clusters
    guide = UGVAEGuide(cfg.features, cfg.u_dim, cfg.v_dim, k, hidden=(), body=body)
    return UGVAE(decoder, k), guide, TraceEnum_ELBO(max_plate_nesting=2)


def train(name: str, cfg: Config, data: GroupedData, steps: int, seed: int):
    """Train a row for about ``steps`` steps; returns ``model, guide, final loss per image``."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    model, guide, loss = build(name, cfg, data.x.shape[-1])
    epochs = max(1, round(steps / math.ceil(len(data) / cfg.groups_per_step)))
    hist = fit(model, guide, data, epochs=epochs, batch_size=cfg.groups_per_step, lr=cfg.lr,
               loss=loss, seed=seed, progress=False)
    model.eval(), guide.eval()
    return model, guide, hist.to_list()[-1]["loss"] / cfg.group_size


def _digits_job(name: str, seed: int, cfg: Config) -> dict[str, Any]:
    pools = images_and_labels(cfg)
    rng = np.random.default_rng([cfg.data_seed, seed])
    data = random_batches(pools["train"][0], cfg.train_groups, cfg.group_size, rng)
    model, guide, loss = train(name, cfg, data, cfg.steps, seed)
    out: dict[str, Any] = {"final_loss_per_observation": loss}
    out["classification"] = tasks.batch_classification(guide, *pools["classifier"],
                                                       cfg.batch_sizes, cfg.per_class, seed)
    if name != "mlvae":
        out["nmi"] = tasks.clustering_nmi(model, guide, *pools["classifier"])
    if seed == 0:
        out["grids"] = _grids(name, model, guide, pools["classifier"][0])
        out["grid_effects"] = {k: tasks.grid_effects(v) for k, v in out["grids"].items()}
    return out


def _grids(name: str, model, guide, images: torch.Tensor) -> dict[str, np.ndarray]:
    """Fig. 3 for the three most used clusters (UG-VAE), Fig. 4 for ML-VAE."""
    if name == "mlvae":
        return {"ML-VAE": tasks.sampling_grid(model, None).numpy()}
    d = cluster_assignments(model, guide, tasks.full_batch(images[None]))[0]
    top = torch.bincount(d, minlength=model.num_clusters).argsort(descending=True)[:3].tolist()
    label = "UG-VAE" if name == "ugvae" else "UG-VAE K=1"
    return {f"{label}, d={c}": tasks.sampling_grid(model, c).numpy() for c in top}


def _baseline_job(seed: int, cfg: Config) -> dict[str, Any]:
    images, labels = images_and_labels(cfg)["classifier"]
    return {"classification": tasks.batch_classification(None, images, labels, cfg.batch_sizes,
                                                         cfg.per_class, seed)}


def domain_data(cfg: Config) -> dict[str, torch.Tensor]:
    """Digits (resized) and sprites at ``domain_image_size``: training and held-out images."""
    size = cfg.domain_image_size
    pools = images_and_labels(cfg)

    def resize(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear")

    held = pools["classifier"][0]
    sprites = Sprites(size)
    n_train, n_held = len(pools["train"][1]), len(held)
    return {"digits_train": resize(pools["train"][0]), "digits_held": resize(held),
            "sprites_train": sprites.sample(n_train, rng=cfg.data_seed + 1)[1],
            "sprites_held": sprites.sample(n_held, rng=cfg.data_seed + 2)[1]}


def _mixed(a: torch.Tensor, b: torch.Tensor, n: int, size: int, rng) -> torch.Tensor:
    half = size // 2
    x = torch.cat([random_batches(a, n, half, rng).x, random_batches(b, n, size - half, rng).x], 1)
    return x[:, torch.as_tensor(rng.permutation(size))]


def _domain_job(name: str, cfg: Config) -> dict[str, Any]:
    imgs = domain_data(cfg)
    rng = np.random.default_rng([cfg.data_seed, 99])
    x = _mixed(imgs["digits_train"], imgs["sprites_train"], cfg.train_groups, cfg.group_size, rng)
    data = GroupedData(x, torch.ones(x.shape[:2], dtype=torch.bool))
    model, guide, loss = train(name, cfg, data, cfg.domain_steps, 0)
    n, size = cfg.domain_batches, cfg.group_size
    batches = {"digits": random_batches(imgs["digits_held"], n, size, rng).x,
               "sprites": random_batches(imgs["sprites_held"], n, size, rng).x,
               "mixed": _mixed(imgs["digits_held"], imgs["sprites_held"], n, size, rng)}
    codes, kinds, names = tasks.domain_codes(guide, batches)
    means = torch.cat([b.flatten(2).mean(1) for b in batches.values()]).numpy()
    across, u_a, u_b = tasks.interpolation_grid(model, guide, batches["digits"][0],
                                                batches["sprites"][0], 0, 0)
    within, *_ = tasks.interpolation_grid(model, guide, batches["digits"][0],
                                          batches["digits"][1], 0, 0)
    line = torch.stack([(1 - w) * u_a + w * u_b for w in torch.linspace(0, 1, 7)]).numpy()
    embedded = tasks.tsne(np.concatenate([codes, line]))
    return {"final_loss_per_observation": loss, "kinds": names,
            "separability": tasks.separability(codes, kinds),
            "mean_image_separability": tasks.separability(means, kinds),
            "tsne": embedded[: len(codes)], "tsne_kinds": kinds,
            "tsne_interpolation": embedded[len(codes):],
            "interpolation_across": across.numpy(), "interpolation_within": within.numpy(),
            "grid_effects": {"across": tasks.grid_effects(across),
                             "within": tasks.grid_effects(within)}}


def _run_job(job: tuple) -> dict[str, Any]:
    torch.set_num_threads(1)
    pyro.enable_validation(False)
    cpu, wall = time.process_time(), time.perf_counter()
    kind, *args = job
    if kind == "digits":
        out = _digits_job(*args)
    elif kind == "baseline":
        out = _baseline_job(*args)
    else:
        out = _domain_job(*args)
    name = {"digits": args[0], "baseline": "mean_image", "domain": args[0]}[kind]
    seed = args[1] if kind == "digits" else (args[0] if kind == "baseline" else 0)
    out.update(kind=kind, model=name, seed=seed, cpu_seconds=time.process_time() - cpu,
               wall_seconds=time.perf_counter() - wall)
    return out


def jobs(cfg: Config) -> list[tuple]:
    out: list[tuple] = [("digits", m, s, cfg) for s in range(cfg.seeds) for m in cfg.models]
    out += [("baseline", s, cfg) for s in range(cfg.seeds)]
    if cfg.domain:
        out += [("domain", m, cfg) for m in cfg.domain_models]
    return out


def run(cfg: Config, out: str | os.PathLike, *, progress: bool = True) -> dict[str, Any]:
    """Run every job; write ``results.json`` and the figures into ``out``."""
    unknown = [m for m in (*cfg.models, *cfg.domain_models) if m not in MODELS]
    if unknown:
        raise ArgumentError(f"unknown models {unknown}; choose from {MODELS}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cpu, wall = time.process_time(), time.perf_counter()
    runs = run_jobs(_run_job, jobs(cfg), workers=cfg.workers, progress=progress, desc="ugvae")
    result = report.summarize_runs(runs, cfg)
    figures: list[str] = []
    if cfg.figures:
        from pyro_groups.plots_ugvae import write_figures

        figures = write_figures(runs, result, out)
    worker_cpu = sum(r["cpu_seconds"] for r in runs) if cfg.workers > 1 else 0.0
    cpu_total = time.process_time() - cpu + worker_cpu
    result = {
        "benchmark": "ugvae",
        "config": {**asdict(cfg), "cpu_seconds": cpu_total,
                   "wall_seconds": time.perf_counter() - wall,
                   "idle_two_core_minutes": cpu_total / 2 / 60},
        "environment": environment("cpu"),
        **result,
        "figures": figures,
    }
    (out / "results.json").write_text(json.dumps(report.json_safe(result), indent=1))
    return result
