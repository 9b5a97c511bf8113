"""Figures of the disentanglement benchmark (Locatello et al. 2019, Figs. 4-7 in spirit).

- ``rank_correlation.png``: Spearman rank correlation between the metrics over all runs;
- ``scores_by_seed.png``: every run's score per metric, by model and hyper-parameter value, one
  marker per seed (how much the seed matters next to the model and the hyper-parameter);
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
    "group_mig": "group-MIG",
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


def write_figures(runs, rho, examples: dict[str, dict], cfg, out: Path) -> list[str]:
    from pyro_groups.experiments.disentanglement import METRICS

    ran = [m for m in cfg.models if any(r["model"] == m for r in runs)]
    paths = [
        rank_correlation_figure(rho, METRICS, out / "rank_correlation.png"),
        scores_by_seed_figure(runs, METRICS, ran, cfg.grid, out / "scores_by_seed.png"),
    ]
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
