"""Figures of the Locatello study (Locatello et al. 2019, Figs. 1-6 in spirit).

- ``rank_correlation.png`` (Fig. 2): Spearman rank correlation between the metrics over the
  unsupervised runs;
- ``scores_by_seed.png`` (Fig. 3): every run's score per metric, by model and hyper-parameter
  value, one marker per seed (how much the seed matters next to the model and the
  hyper-parameter);
- ``tc_by_regularisation.png`` (Fig. 1): Gaussian TC of the sampled and the mean representation
  at each objective's weakest and strongest regularisation;
- ``model_selection.png`` (Fig. 4): MIG and DCI against the ELBO and the sampled TC, every run;
- ``downstream.png`` (Figs. 5-6): downstream accuracy and sample efficiency against MIG and the
  FactorVAE score;
- ``reconstructions.png`` and ``traversal_<model>.png``: seed 0 at each model's first value.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pyro_groups.plots import new_figure, save_figure
from pyro_groups.plots_images import latent_traversal_figure, reconstruction_grid

LABELS = {
    "beta_vae_score": "BetaVAE", "factor_vae_score": "FactorVAE", "mig": "MIG",
    "dci_disentanglement": "DCI Dis.", "sap": "SAP", "modularity": "Modularity",
    "group_mig": "group-MIG", "elbo": "ELBO (nats)", "tc_sampled": "TC, sampled",
    "logistic_large": "logistic acc., many labels",
    "logistic_efficiency": "logistic efficiency", "gbt_efficiency": "GBT efficiency",
}
MARKERS = "os^vDP*X"


def rank_correlation_figure(rho: np.ndarray, metrics: Sequence[str], path: str | os.PathLike,
                            *, title: str = "Spearman rank correlation of the metrics") -> str:
    names = [LABELS.get(m, m) for m in metrics]
    fig = new_figure(figsize=(1.0 + 0.8 * len(names), 0.6 + 0.7 * len(names)))
    ax = fig.add_subplot()
    shown = np.where(np.isfinite(rho), rho, 0.0)
    im = ax.imshow(shown, vmin=-1, vmax=1, cmap="RdBu_r")
    for i in range(len(names)):
        for j in range(len(names)):
            text = f"{100 * rho[i, j]:.0f}" if np.isfinite(rho[i, j]) else "–"
            dark = np.isfinite(rho[i, j]) and abs(rho[i, j]) > 0.6
            colour = "white" if dark else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize="small", color=colour)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def scores_by_seed_figure(
    runs: Sequence[dict[str, Any]],
    metrics: Sequence[str],
    models: Sequence[str],
    grid: dict,
    path: str | os.PathLike,
) -> str:
    """One panel per metric; x: model, two offsets for the two hyper-parameter values (low: blue,
    high: orange), one marker per seed, a bar at each configuration's mean."""
    cols = min(4, len(metrics))
    rows = -(-len(metrics) // cols)
    fig = new_figure(figsize=(4.2 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for ax, m in zip(axes.flat, metrics):
        for i, name in enumerate(models):
            values = grid[name][1]
            for h, value in enumerate(values):
                sel = [r for r in runs if r["model"] == name and r["value"] == value]
                x0 = i + (h - (len(values) - 1) / 2) * 0.3
                ys = [r["metrics"][m] for r in sel]
                for r, y in zip(sel, ys):
                    marker = MARKERS[r["seed"] % len(MARKERS)]
                    colour = colours[h % 4]
                    ax.scatter(x0, y, color=colour, marker=marker, s=18, alpha=0.8, zorder=3)
                if ys and np.isfinite(ys).any():
                    ax.hlines(np.nanmean(ys), x0 - 0.12, x0 + 0.12, color="black", lw=1.2, zorder=4)
        ax.set_xticks(range(len(models)), models, rotation=45, ha="right", fontsize="small")
        ax.set_title(LABELS.get(m, m))
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.flat[len(metrics):]:
        ax.axis("off")
    fig.suptitle(
        "Score by model, hyper-parameter (blue: first value, orange: second) and seed (marker)"
    )
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def _colour(name: str, names: Sequence[str]) -> str:
    return f"C{list(names).index(name) % 10}"


def tc_figure(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> str:
    """Sampled (left) and mean (right) representation TC, weak vs strong regularisation."""
    fig = new_figure(figsize=(9, 3.6))
    axes = fig.subplots(1, 2, squeeze=False)
    names = [r["model"] for r in rows]
    for ax, key, title in zip(axes[0], ("tc_sampled", "tc_mean"),
                              ("sampled representation", "mean representation")):
        for r in rows:
            ys = [r[f"{key}_weak"], r[f"{key}_strong"]]
            ax.errorbar([0, 1], [y["mean"] for y in ys], [y["std"] for y in ys], marker="o",
                        capsize=3, color=_colour(r["model"], names), label=r["model"])
        ax.set_xticks([0, 1], ["weakest", "strongest"])
        ax.set_xlabel("regularisation (first / last grid value)")
        ax.set_ylabel("Gaussian total correlation (nats)")
        ax.set_yscale("log")
        ax.set_title(title, fontsize="medium")
        ax.grid(alpha=0.3)
    axes[0, 1].legend(fontsize="x-small")
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def scatter_figure(runs: Sequence[dict[str, Any]], pairs: Sequence[tuple[str, str]],
                   path: str | os.PathLike, title: str) -> str:
    """One panel per ``(x, y)`` metric pair, one point per run coloured by model."""
    names = list(dict.fromkeys(r["model"] for r in runs))
    fig = new_figure(figsize=(3.8 * len(pairs), 3.6))
    axes = fig.subplots(1, len(pairs), squeeze=False)
    for ax, (x, y) in zip(axes[0], pairs):
        for name in names:
            sel = [r for r in runs if r["model"] == name]
            ax.scatter([r["metrics"][x] for r in sel], [r["metrics"][y] for r in sel], s=14,
                       color=_colour(name, names), label=name)
        ax.set_xlabel(LABELS.get(x, x))
        ax.set_ylabel(LABELS.get(y, y))
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize="x-small")
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def write_figures(runs, analysis: dict[str, Any], examples: dict[str, dict], cfg, out: Path, *,
                  metrics: Sequence[str], unsupervised: Sequence[str]) -> list[str]:
    """The study's figures in ``out``; ``metrics`` are the scores compared, ``unsupervised`` the
    models whose runs enter the model-selection and downstream panels."""
    ran = [m for m in cfg.models if any(r["model"] == m for r in runs)]
    unsup = [r for r in runs if r["model"] in unsupervised]
    rho = np.asarray(analysis["rank_correlation"]["spearman"], dtype=float)
    paths = [
        rank_correlation_figure(rho, metrics, out / "rank_correlation.png",
                                title="Spearman rank correlation (unsupervised runs)"),
        scores_by_seed_figure(runs, metrics, ran, cfg.grid, out / "scores_by_seed.png"),
        scatter_figure(unsup, [("elbo", "mig"), ("elbo", "dci_disentanglement"),
                               ("tc_sampled", "mig")], out / "model_selection.png",
                       "Unsupervised scores against MIG / DCI (every unsupervised run)"),
        scatter_figure(unsup, [("mig", "logistic_large"), ("mig", "logistic_efficiency"),
                               ("factor_vae_score", "gbt_efficiency")], out / "downstream.png",
                       "Downstream accuracy and sample efficiency (every unsupervised run)"),
    ]
    if analysis["tc"]:
        paths.append(tc_figure(analysis["tc"], out / "tc_by_regularisation.png"))
    if examples:
        names = list(examples)
        first = examples[names[0]]
        recs = np.stack([examples[n]["reconstructions"] for n in names])
        title = "Reconstructions (posterior means, seed 0)"
        paths.append(reconstruction_grid(first["originals"], recs, out / "reconstructions.png",
                                         labels=("data", *names), title=title))
        for name, ex in list(examples.items())[: cfg.traversal_models]:
            u = ex["u_dim"]
            dims = range(ex["traversals"].shape[0])
            labels = [f"u{j}" if j < u else (f"v{j - u}" if u else f"z{j}") for j in dims]
            paths.append(latent_traversal_figure(
                ex["traversals"], out / f"traversal_{name}.png", values=ex["values"],
                row_labels=labels, title=f"{name}: latent traversals (seed 0)",
            ))
    return paths
