"""Figures of the UG-VAE experiments, saved to files (matplotlib imported lazily, figures drawn
outside pyplot with :func:`pyro_groups.plots.new_figure`).

- ``fig3_ugvae_grids.png``: sampling grids for three clusters (rows: ``beta`` on the diagonal
  from -1 to 1; columns: ``z`` from ``mu_d(beta) - 3`` to ``+ 3``);
- ``fig4_baseline_grids.png``: the same for ML-VAE trained on random batches (around ``z = 0``)
  and UG-VAE with one cluster;
- ``fig5_domain_interpolation.png``: ``beta`` between a pure-digit and a pure-sprite batch (rows)
  and ``z`` between a digit and a sprite (columns), and within the digits;
- ``fig5_tsne.png``: t-SNE of the group posterior means of pure and mixed batches;
- ``table1_accuracy.png``: test accuracy against the batch size, per task and model.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from pyro_groups.plots import new_figure, save_figure
from pyro_groups.plots_images import _as_images, _imshow, mosaic

__all__ = ["accuracy_figure", "image_grids_figure", "tsne_figure", "write_figures"]


def image_grids_figure(
    panels: Mapping[str, Any], path: str | os.PathLike, *, row_label: str = "beta",
    col_label: str = "z", title: str = "",
) -> str:
    """One mosaic per panel, side by side: ``{title: images [R, S, C, H, W]}``."""
    fig = new_figure(figsize=(3.2 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (name, images) in zip(axes[0], panels.items()):
        _imshow(ax, mosaic(_as_images(images)))
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(name, fontsize="medium")
        ax.set_xlabel(f"{col_label} →", fontsize="small")
        ax.set_ylabel(f"{row_label} →", fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def tsne_figure(
    panels: Mapping[str, Mapping[str, Any]], path: str | os.PathLike, *,
    title: str = "t-SNE of the group posterior means",
) -> str:
    """Scatter plots ``{title: {"xy": [n, 2], "kinds": [n], "names": [...], "line": [m, 2]}}``;
    ``line`` (optional) is drawn as an interpolation path."""
    fig = new_figure(figsize=(4.2 * len(panels), 4))
    axes = fig.subplots(1, len(panels), squeeze=False)
    styles = [("tab:blue", "s"), ("tab:green", "^"), ("grey", "o")]
    for ax, (name, p) in zip(axes[0], panels.items()):
        xy, kinds = np.asarray(p["xy"]), np.asarray(p["kinds"])
        for i, kind in enumerate(p["names"]):
            color, marker = styles[i % len(styles)]
            sel = kinds == i
            ax.scatter(xy[sel, 0], xy[sel, 1], c=color, marker=marker, s=14, label=kind)
        if p.get("line") is not None:
            line = np.asarray(p["line"])
            ax.plot(line[:, 0], line[:, 1], "r.-", label="interpolation")
        ax.set_title(name, fontsize="medium")
        ax.set_xticks([]), ax.set_yticks([])
    axes[0, 0].legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def accuracy_figure(
    rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, *, features: str = "posterior_mean",
    classifier: str = "rbf_svm", labels: Mapping[str, str] = {},
) -> str:
    """Test accuracy (mean ± std over seeds) against the batch size, one panel per task and one
    line per model (the mean-image baseline dashed)."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig = new_figure(figsize=(3.3 * len(tasks), 3.2))
    axes = fig.subplots(1, len(tasks), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        mine = [r for r in rows if r["task"] == task and r["classifier"] == classifier
                and r["features"] in (features, "mean_image")]
        for model in dict.fromkeys(r["model"] for r in mine):
            pts = sorted((r["batch_size"], r["test_accuracy"]) for r in mine
                         if r["model"] == model)
            sizes = [p[0] for p in pts]
            mean = np.array([p[1]["mean"] for p in pts])
            std = np.array([p[1]["std"] for p in pts])
            style = "--" if model == "mean_image" else "-"
            ax.errorbar(sizes, mean, yerr=std, fmt=style, marker="o", ms=3, capsize=2,
                        label=labels.get(model, model))
        ax.set_xscale("log", base=2)
        ax.set_title(task, fontsize="medium")
        ax.set_xlabel("batch size")
        ax.set_ylim(0, 1.05)
    axes[0, 0].set_ylabel(f"test accuracy ({classifier}, {features})")
    axes[0, 0].legend(fontsize="x-small")
    fig.tight_layout()
    return save_figure(fig, path)


def write_figures(runs: list[dict[str, Any]], result: dict[str, Any], out: Path) -> list[str]:
    """Every figure of :func:`pyro_groups.experiments.ugvae.run`; returns the file names."""
    from pyro_groups.experiments.ugvae_report import LABELS

    paths = []
    grids = {r["model"]: r["grids"] for r in runs if "grids" in r}
    if "ugvae" in grids:
        paths.append(image_grids_figure(grids["ugvae"], out / "fig3_ugvae_grids.png",
                                        title="UG-VAE on random batches: one cluster per panel"))
    baselines = {k: v for m in ("mlvae", "ugvae_k1") for k, v in grids.get(m, {}).items()}
    if baselines:
        paths.append(image_grids_figure(dict(list(baselines.items())[:2]),
                                        out / "fig4_baseline_grids.png",
                                        title="Without the mixture (random batches)"))
    domain = {r["model"]: r for r in runs if r["kind"] == "domain"}
    if domain:
        panels = {}
        for m, r in domain.items():
            panels[f"{LABELS[m]}: digit → sprite"] = r["interpolation_across"]
            if m == "ugvae":
                panels[f"{LABELS[m]}: digit → digit"] = r["interpolation_within"]
        paths.append(image_grids_figure(panels, out / "fig5_domain_interpolation.png",
                                        title="Interpolating beta (rows) and z (columns)"))
        tsne = {f"{LABELS[m]} (separability {r['separability']:.2f})": {
            "xy": r["tsne"], "kinds": r["tsne_kinds"], "names": r["kinds"],
            "line": r["tsne_interpolation"]} for m, r in domain.items()}
        paths.append(tsne_figure(tsne, out / "fig5_tsne.png"))
    if result["batch_classification"]:
        paths.append(accuracy_figure(result["batch_classification"], out / "table1_accuracy.png",
                                     labels=LABELS))
    return [os.path.basename(p) for p in paths]
