"""Figures of the group-tcVAE comparison (Tran et al., Figs. 3-4), saved as PNG files.

- ``distributions.png`` (Fig. 4): MIG and group-MIG of every run (configurations x seeds) per
  model and data set, as violins with the runs on top;
- ``collapse.png`` (Fig. 3a): normalised MI :math:`I(z_j; v_k) / H(v_k)` between every latent
  dimension and factor, one heat map per model and data set (seed 0 of its best-MIG
  configuration);
- ``content_vs_rest.png`` (Fig. 3b): content group-MIG against non-content group-MIG, every run;
- ``sensitivity.png`` (Fig. 3c): MIG and group-MIG against the group size (mean ± std over seeds).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pyro_groups.experiments.group_tcvae_report import LABELS, best_config, sensitivity_rows
from pyro_groups.plots import new_figure, save_figure

COLOURS = {"gvae": "tab:blue", "mlvae": "tab:orange", "group_tcvae_inter": "tab:green",
           "group_tcvae_inter_intra": "tab:red", "group_tcvae_full": "tab:purple"}
TITLES = {"mig": "MIG", "group_mig": "group-MIG", "group_mig_u": "content group-MIG",
          "group_mig_v": "non-content group-MIG"}


def _names(runs: Sequence[dict]) -> list[str]:
    return list(dict.fromkeys(r["name"] for r in runs))


def distributions_figure(runs: Sequence[dict], path: str | os.PathLike) -> str:
    """Violins of MIG and group-MIG over all pair runs, one panel per data set and metric."""
    pairs = [r for r in runs if r["group_size"] == 2]
    datasets = list(dict.fromkeys(r["dataset"] for r in pairs))
    names = _names(pairs)
    fig = new_figure(figsize=(1.4 * len(names) + 4, 3.2 * len(datasets)))
    axes = fig.subplots(len(datasets), 2, squeeze=False)
    rng = np.random.default_rng(0)
    for row, ds in zip(axes, datasets):
        for ax, metric in zip(row, ("mig", "group_mig")):
            values = [[r["metrics"][metric] for r in pairs if r["dataset"] == ds and r["name"] == n]
                      for n in names]
            shown = [i for i, v in enumerate(values) if len(v) > 1]
            if shown:
                parts = ax.violinplot([values[i] for i in shown], positions=shown,
                                      showextrema=False)
                for body, i in zip(parts["bodies"], shown):
                    body.set_facecolor(COLOURS.get(names[i], "grey"))
            for i, v in enumerate(values):
                ax.scatter(i + rng.uniform(-0.08, 0.08, len(v)), v, s=10, color="black", zorder=3)
            ax.set_xticks(range(len(names)), [LABELS.get(n, n) for n in names], rotation=30,
                          ha="right", fontsize="small")
            ax.set_title(f"{ds}: {TITLES[metric]} (all runs)", fontsize="medium")
            ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def collapse_figure(runs: Sequence[dict], factor_names: dict[str, Sequence[str]], u_dim: int,
                    path: str | os.PathLike) -> str:
    """Heat maps of the normalised MI of seed 0 at each model's best-MIG configuration."""
    pairs = [r for r in runs if r["group_size"] == 2]
    datasets = list(dict.fromkeys(r["dataset"] for r in pairs))
    names = _names(pairs)
    fig = new_figure(figsize=(2.4 * len(names) + 1, 3.6 * len(datasets)), layout="constrained")
    axes = fig.subplots(len(datasets), len(names), squeeze=False)
    image = None
    for row, ds in zip(axes, datasets):
        for ax, name in zip(row, names):
            sel = [r for r in pairs if r["dataset"] == ds and r["name"] == name]
            found = best_config(sel, "mig")
            if found is None:
                ax.axis("off")
                continue
            (_, beta, gamma), best = found
            run = min(best, key=lambda r: r["seed"])
            mi = np.asarray(run["mi"])
            image = ax.imshow(mi, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            dims = [f"u{j}" if j < u_dim else f"v{j - u_dim}" for j in range(mi.shape[0])]
            ax.set_yticks(range(len(dims)), dims, fontsize="x-small")
            ax.axhline(u_dim - 0.5, color="white", lw=1)
            ax.set_xticks(range(mi.shape[1]), factor_names[ds], rotation=60, ha="right",
                          fontsize="x-small")
            setting = f"b={beta:g}" + (f", g={gamma:g}" if gamma is not None else "")
            ax.set_title(f"{ds}: {LABELS.get(name, name)}\n{setting}, MIG "
                         f"{run['metrics']['mig']:.2f}, g-MIG {run['metrics']['group_mig']:.2f}",
                         fontsize="x-small")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.02, label="I(z_j; v_k) / H(v_k)")
    return save_figure(fig, path, dpi=100)


def content_figure(runs: Sequence[dict], path: str | os.PathLike) -> str:
    """Content against non-content group-MIG, every pair run, one panel per data set."""
    pairs = [r for r in runs if r["group_size"] == 2]
    datasets = list(dict.fromkeys(r["dataset"] for r in pairs))
    fig = new_figure(figsize=(4.6 * len(datasets), 4))
    axes = fig.subplots(1, len(datasets), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for name in _names(pairs):
            sel = [r for r in pairs if r["dataset"] == ds and r["name"] == name]
            ax.scatter([r["metrics"]["group_mig_v"] for r in sel],
                       [r["metrics"]["group_mig_u"] for r in sel], s=16,
                       color=COLOURS.get(name, "grey"), label=LABELS.get(name, name))
        ax.axhline(0, color="grey", lw=0.6)
        ax.axvline(0, color="grey", lw=0.6)
        ax.set_xlabel("non-content group-MIG")
        ax.set_ylabel("content group-MIG")
        ax.set_title(ds, fontsize="medium")
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize="x-small")
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def sensitivity_figure(rows: Sequence[dict], path: str | os.PathLike) -> str:
    """MIG and group-MIG (mean ± std over seeds) against group size."""
    fig = new_figure(figsize=(9, 3.6))
    axes = fig.subplots(1, 2, squeeze=False)
    for ax, metric in zip(axes[0], ("mig", "group_mig")):
        for name in dict.fromkeys(r["model"] for r in rows):
            sel = sorted((r for r in rows if r["model"] == name), key=lambda r: r["group_size"])
            ks = [r["group_size"] for r in sel]
            ax.errorbar(ks, [r[metric]["mean"] for r in sel], [r[metric]["std"] for r in sel],
                        marker="o", capsize=3, color=COLOURS.get(name, "grey"),
                        label=LABELS.get(name, name))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("observations per group")
        ax.set_title(f"{rows[0]['dataset'] if rows else ''}: {TITLES[metric]}", fontsize="medium")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize="x-small")
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def write_figures(runs: list[dict[str, Any]], cfg, out: Path, *,
                  factor_names: dict[str, Sequence[str]]) -> list[str]:
    """The comparison's figures in ``out``; ``factor_names`` names each data set's factors."""
    paths = [distributions_figure(runs, out / "distributions.png"),
             collapse_figure(runs, factor_names, cfg.u_dim, out / "collapse.png"),
             content_figure(runs, out / "content_vs_rest.png")]
    rows = sensitivity_rows(runs, cfg)
    if rows:
        paths.append(sensitivity_figure(rows, out / "sensitivity.png"))
    return paths
