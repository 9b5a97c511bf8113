"""The ML-VAE paper's experiments (Bouchacourt et al. 2018, Sec. 4; supplement Secs. 1-3, 5, 7) on
small data: swapping, interpolation, generation, accumulating evidence and k-shot classification.

Rows (models), all with the same networks (the paper's MNIST architecture with our widths: a dense
layer of ``features`` units per encoder, one to the decoder; ``conv_layers`` stride-2 convolutions
before it, 0 by default), the same codes (``u_dim`` content, ``v_dim`` style) and a Bernoulli
likelihood (cross-entropy on grey levels; the paper: a normal one):

- ``mlvae``: :class:`~pyro_groups.models.GroupVAE` + product of normals (the paper's model);
- ``mlvae-mixture``: the supplement's mixture of normals;
- ``gvae``: the average of normals (Hosoya 2019);
- ``cxvae``: DeepSets + context-conditioned instance encoder;
- ``vae``: the i.i.d. VAE (:class:`~pyro_groups.models.IIDVAE`, code size ``u_dim + v_dim``),
  the paper's baseline: its codes are accumulated by the product of normals for the k-shot task;
- ``svi``: the non-amortised baseline (:class:`~pyro_groups.guides.NonAmortisedGuide`, the same
  decoder); its test groups get their own posteriors by test-time inference with the decoder
  frozen. It has no k-shot row (each of the k-groups would need its own inference).

The amortised group models train with one content draw per observation (``content_samples=
"observation"``, the paper's Algorithm 1; ``"group"`` is the library's default). Every run is
evaluated on the held-out pool (:mod:`~pyro_groups.experiments.mlvae_data`): its -ELBO per test
group (``test_loss``), reconstruction NLL per image with the content accumulated over the test
group (``test_nll``) or from the image alone (``test_nll_alone``), the share of reconstructions a
pixel classifier (logistic regression on the training images) assigns to the true class under both
strategies (``label_acc_alone`` / ``label_acc_accumulated``), the k-shot rows, and for the group
presets the ELBO-gradient variance with one content draw per group against one per observation.
The report (claims, tables) is :mod:`~pyro_groups.experiments.mlvae_report`.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pyro
import torch
from pyro.infer import Trace_ELBO

from pyro_groups.evaluation.evidence import (
    accumulating_evidence,
    reconstruction_nll,
    strategy_reconstruction,
)
from pyro_groups.evaluation.gradient_variance import elbo_gradient_variance
from pyro_groups.evaluation.grids import generate, interpolation_grid, swap_grid
from pyro_groups.evaluation.k_shot import k_shot
from pyro_groups.experiments.environment import environment, run_jobs
from pyro_groups.experiments.mlvae_data import MLVAEData, load_data
from pyro_groups.experiments.mlvae_report import findings, summarize_runs
from pyro_groups.guides.group_guide import PRESETS, content_samples, preset_guide
from pyro_groups.guides.iid_guide import IIDGuide
from pyro_groups.guides.non_amortised import NonAmortisedGuide
from pyro_groups.models.group_vae import GroupVAE
from pyro_groups.models.iid_vae import IIDVAE
from pyro_groups.nn_conv import ConvDecoder, conv_body
from pyro_groups.training.fit import fit
from pyro_groups.validation import ArgumentError

MODELS = ("mlvae", "mlvae-mixture", "gvae", "cxvae", "vae", "svi")
GROUP_MODELS = tuple(m for m in MODELS if m in PRESETS)


@dataclass
class Config:
    data: str = "digits"
    mnist: Optional[str] = None
    shared: tuple[str, ...] = ("shape",)
    image_size: int = 32
    test_fraction: float = 0.5
    group_size: int = 8
    test_group_size: int = 8
    u_dim: int = 10
    v_dim: int = 10
    features: int = 256
    conv_layers: int = 0
    epochs: int = 600
    batch_size: int = 16
    lr: float = 1e-3
    content_samples: str = "observation"
    svi_lr: float = 1e-2
    svi_test_steps: int = 2000
    svi_test_lr: float = 1e-2
    K: int = 10
    trials: int = 5
    classifier_steps: int = 2000
    mean_features: bool = True
    nll_draws: int = 10
    variance_draws: int = 64
    variance_groups: int = 32
    seeds: int = 5
    models: tuple[str, ...] = MODELS
    workers: int = 2
    device: str = "cpu"
    data_seed: int = 0
    figures: bool = True


def smoke_config() -> Config:
    """A seconds-long run for CI."""
    return Config(epochs=2, svi_test_steps=5, K=3, trials=1, classifier_steps=20, nll_draws=1,
                  variance_draws=3, variance_groups=4, seeds=2, workers=1)


_CACHE: dict[tuple, Any] = {}


def _data_key(cfg: Config) -> tuple:
    return (cfg.data, cfg.data_seed, cfg.test_fraction, cfg.group_size, cfg.test_group_size,
            cfg.mnist, cfg.shared, cfg.image_size)


def data_for(cfg: Config) -> MLVAEData:
    """The run's data (loaded once per process and configuration)."""
    key = ("data", *_data_key(cfg))
    if key not in _CACHE:
        _CACHE[key] = load_data(
            cfg.data, seed=cfg.data_seed, test_fraction=cfg.test_fraction,
            group_size=cfg.group_size, test_group_size=cfg.test_group_size, mnist=cfg.mnist,
            shared=cfg.shared, image_size=cfg.image_size,
        )
    return _CACHE[key]


def build(name: str, cfg: Config, data: MLVAEData) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Model and guide of row ``name``."""
    shape = data.image_shape
    size, layers = shape[1:], cfg.conv_layers
    body = conv_body(shape[0], size, out_dim=cfg.features, num_layers=layers)
    if name == "vae":
        z = cfg.u_dim + cfg.v_dim
        model = IIDVAE(ConvDecoder(0, z, shape[0], image_size=size, num_layers=layers))
        return model, IIDGuide(cfg.features, z, (), body=body)
    mode = cfg.content_samples if name in PRESETS else "group"
    decoder = ConvDecoder(cfg.u_dim, cfg.v_dim, shape[0], image_size=size, num_layers=layers)
    model = GroupVAE(decoder, content_samples=mode)
    if name == "svi":
        return model, NonAmortisedGuide(data.train, cfg.u_dim, cfg.v_dim)
    if name not in PRESETS:
        raise ArgumentError(f"unknown model {name!r}; choose from {MODELS}")
    guide = preset_guide(name, cfg.features, cfg.u_dim, cfg.v_dim, hidden=(), body=body,
                         content_samples=mode)
    return model, guide


def _split_lr(guide: torch.nn.Module, lr: float, local_lr: float):
    """Adam with the learning rate ``local_lr`` for the guide's (per-group) parameters."""
    local = {id(p) for p in guide.parameters()}

    def make(params):
        return torch.optim.Adam([
            {"params": [p for p in params if id(p) not in local], "lr": lr},
            {"params": [p for p in params if id(p) in local], "lr": local_lr},
        ])

    return make


def infer_non_amortised(model, data, cfg: Config, seed: int) -> NonAmortisedGuide:
    """Test-time inference: posteriors for the groups of ``data`` with the decoder frozen (Adam
    over the new guide's parameters only), ``cfg.svi_test_steps`` full-batch steps."""
    guide = NonAmortisedGuide(data, cfg.u_dim, cfg.v_dim)
    local = list(guide.parameters())
    fit(model, guide, data, epochs=cfg.svi_test_steps, batch_size=len(data), seed=seed,
        optimizer=lambda params: torch.optim.Adam(local, lr=cfg.svi_test_lr), device=cfg.device,
        progress=False)
    model.zero_grad(set_to_none=True)
    return guide


@torch.no_grad()
def _test_loss(model, guide, batch, draws: int) -> float:
    """-ELBO per test group (Trace_ELBO, ``draws`` particles; one content draw per group)."""
    elbo = Trace_ELBO(num_particles=draws)
    if hasattr(model, "content_samples") and hasattr(guide, "content_samples"):
        with content_samples(model, guide, "group"):
            return float(elbo.loss(model, guide, batch.x, batch.mask)) / batch.num_groups
    return float(elbo.loss(model, guide, batch.x, batch.mask)) / batch.num_groups


def pixel_classifier(cfg: Config):
    """A logistic regression from the pixels of the training images to their class (fitted once
    per process and configuration): it labels reconstructions."""
    key = ("pixels", *_data_key(cfg))
    if key not in _CACHE:
        from sklearn.linear_model import LogisticRegression

        data = data_for(cfg)
        x = data.train.x[data.train.mask].flatten(1).numpy()
        _CACHE[key] = LogisticRegression(max_iter=2000).fit(x, data.train_labels)
    return _CACHE[key]


def _label_accuracy(clf, images: torch.Tensor, labels: np.ndarray) -> float:
    return float((clf.predict(images.flatten(1).cpu().numpy()) == labels).mean())


def figure_groups(data: MLVAEData, n: int = 6) -> dict[str, list]:
    """Test groups shown in the figures: a largest group of each class (columns, up to ``n``),
    ``n`` other groups (rows), pairs of classes to interpolate, groups to generate from."""
    classes = data.test.u_true[:, 0].numpy()
    sizes = data.test.mask.sum(-1).numpy()
    first = [int(np.flatnonzero(classes == c)[np.argmax(sizes[classes == c])])
             for c in range(data.num_classes)]
    cols = first[:n]
    rows = [i for i in range(len(classes)) if i not in first][:n]
    nc = data.num_classes
    pairs = [(first[0], first[1 % nc]), (first[2 % nc], first[3 % nc])]
    return {"cols": cols, "rows": rows, "pairs": pairs, "generate": first[:4]}


def _figures(name: str, model, guide, data: MLVAEData) -> dict[str, Any]:
    sel = figure_groups(data)
    test = data.test
    out: dict[str, Any] = {}
    grid = swap_grid(model, guide, test[sel["rows"]], test[sel["cols"]])
    out["swap"] = [t.cpu().numpy() for t in grid]
    if name not in ("mlvae",):
        return out
    out["swap_alone"] = [t.cpu().numpy() for t in swap_grid(
        model, guide, test[sel["rows"]], test[sel["cols"]], accumulate=False)]
    a = test[[p[0] for p in sel["pairs"]]]
    b = test[[p[1] for p in sel["pairs"]]]
    out["interpolation"] = interpolation_grid(model, guide, a, b, 7).cpu().numpy()
    gen = test[sel["generate"]]
    out["generation"] = {
        "groups": gen.x.cpu().numpy(), "mask": gen.mask.cpu().numpy(),
        "generated": generate(model, guide, gen, 8,
                              generator=torch.Generator().manual_seed(0)).cpu().numpy(),
    }
    four = test[sel["generate"]]
    four = type(four)(x=four.x[:, :4], mask=four.mask[:, :4])
    ev = accumulating_evidence(model, guide, four)
    out["evidence"] = [four.x.cpu().numpy(), ev.alone.cpu().numpy(), ev.accumulated.cpu().numpy()]
    return out


def run_one(name: str, seed: int, cfg: Config) -> dict[str, Any]:
    """Train row ``name`` with ``seed`` and evaluate it on the held-out pool."""
    torch.set_num_threads(1)
    cpu, wall = time.process_time(), time.perf_counter()
    pyro.clear_param_store()
    data = data_for(cfg)
    pyro.set_rng_seed(seed)
    model, guide = build(name, cfg, data)
    opt = _split_lr(guide, cfg.lr, cfg.svi_lr) if name == "svi" else None
    history = fit(model, guide, data.train, epochs=cfg.epochs, batch_size=cfg.batch_size,
                  lr=cfg.lr, optimizer=opt, seed=seed, device=cfg.device, progress=False)
    dev = torch.device(cfg.device)
    test = data.test.to(dev)
    eval_guide = infer_non_amortised(model, test, cfg, seed) if name == "svi" else guide
    batch = test[torch.arange(len(test))]
    labels = batch.u_true[:, :1].expand(batch.mask.shape)[batch.mask].cpu().numpy()
    pyro.set_rng_seed(seed)
    out: dict[str, Any] = {
        "model": name, "seed": seed, "train_loss": history.to_list()[-1]["loss"],
        "loss_curve": [row["loss"] for row in history.to_list()],
        "test_loss": _test_loss(model, eval_guide, batch, cfg.nll_draws),
        "test_nll": float(reconstruction_nll(model, eval_guide, batch, draws=cfg.nll_draws)
                          .sum() / batch.mask.sum()),
    }
    pixels = pixel_classifier(cfg)
    if name != "svi":
        out["test_nll_alone"] = float(
            reconstruction_nll(model, guide, batch, accumulate=False, draws=cfg.nll_draws).sum()
            / batch.mask.sum())
        ev = accumulating_evidence(model, guide, batch)
        out["label_acc_alone"] = _label_accuracy(pixels, ev.alone[batch.mask], labels)
        out["label_acc_accumulated"] = _label_accuracy(pixels, ev.accumulated[batch.mask], labels)
        out["k_shot"] = k_shot(
            guide, data.pool_x.to(dev), data.pool_y, K=cfg.K, trials=cfg.trials,
            codes=("content",) if name == "vae" else ("content", "style"),
            classifier={"steps": cfg.classifier_steps}, seed=seed,
        )
        if cfg.mean_features:
            out["k_shot_means"] = k_shot(
                guide, data.pool_x.to(dev), data.pool_y, K=cfg.K, trials=cfg.trials,
                codes=("content",), sample=False, classifier={"steps": cfg.classifier_steps},
                seed=seed,
            )
    else:
        rec = strategy_reconstruction(model, eval_guide, batch)
        out["label_acc_accumulated"] = _label_accuracy(pixels, rec[batch.mask], labels)
    if name in GROUP_MODELS:
        train = data.train.to(dev)
        sub = train[torch.arange(min(cfg.variance_groups, len(train)))]
        out["gradient_variance"] = {}
        for mode in ("group", "observation"):
            with content_samples(model, guide, mode):
                out["gradient_variance"][mode] = elbo_gradient_variance(
                    model, guide, sub, draws=cfg.variance_draws, num_groups=len(train))
    if cfg.figures and seed == 0 and name != "vae":
        out["figures"] = _figures(name, model, eval_guide, data)
    out["cpu_seconds"] = time.process_time() - cpu
    out["wall_seconds"] = time.perf_counter() - wall
    return out


def _run_job(args: tuple[str, int, Config]) -> dict[str, Any]:
    return run_one(*args)


def run(cfg: Config, out: str | os.PathLike, *, progress: bool = True) -> dict[str, Any]:
    """Run every (model, seed) job; write ``results.json`` and the figures into ``out``."""
    from pyro_groups.experiments.mlvae_figures import write_figures

    unknown = [m for m in cfg.models if m not in MODELS]
    if unknown:
        raise ArgumentError(f"unknown models {unknown}; choose from {MODELS}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cpu, wall = time.process_time(), time.perf_counter()
    jobs = [(name, seed, cfg) for seed in range(cfg.seeds) for name in cfg.models]
    runs = run_jobs(_run_job, jobs, workers=cfg.workers, progress=progress, desc="mlvae")
    order = {m: i for i, m in enumerate(cfg.models)}
    runs.sort(key=lambda r: (order[r["model"]], r["seed"]))
    summary = summarize_runs(runs, list(cfg.models))
    data = data_for(cfg)
    figures = write_figures(runs, out, num_classes=data.num_classes,
                            k_shot=summary["k_shot"]) if cfg.figures else []
    cpu_total = time.process_time() - cpu + sum(r["cpu_seconds"] for r in runs) \
        if cfg.workers > 1 else time.process_time() - cpu
    result = {
        "benchmark": "mlvae",
        "config": asdict(cfg),
        "environment": environment(cfg.device),
        "data": {"name": data.name, "train_groups": len(data.train),
                 "train_images": int(data.train.mask.sum()), "pool_images": len(data.pool_y),
                 "test_groups": len(data.test), "num_classes": data.num_classes,
                 "image_shape": list(data.image_shape)},
        **summary,
        "findings": findings(summary, num_classes=data.num_classes, K=cfg.K),
        "figures": figures,
        "cpu_seconds": cpu_total,
        "cpu_seconds_per_2_cores": cpu_total / 2,
        "wall_seconds": time.perf_counter() - wall,
        "runs": [{k: v for k, v in r.items() if k != "figures"} for r in runs],
    }
    (out / "results.json").write_text(json.dumps(result, indent=1))
    return result
