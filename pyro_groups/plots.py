"""Matplotlib figures, saved to files. matplotlib is imported lazily, with the Agg backend
unless one is already chosen."""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np


def _pyplot():
    import matplotlib

    if "MPLBACKEND" not in os.environ:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def translation_figure(
    panels: Sequence[Mapping[str, Any]], path: str | os.PathLike, *, title: str = "Translation"
) -> str:
    """CxVAE Fig. 3: for each panel, the source and target groups' scores, the translated scores,
    and a line from each source observation to its translation (uncrossed lines = instance kept).

    :param panels: dicts with ``name``, 1-D arrays ``source``, ``target``, ``translated`` (aligned
        with ``source``) and optionally ``truth`` (the ground-truth translation).
    """
    plt = _pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.2 * len(panels)), squeeze=False)
    for ax, p in zip(axes[:, 0], panels):
        src, tgt, tr = (np.asarray(p[k]).ravel() for k in ("source", "target", "translated"))
        for a, b in zip(src, tr):
            ax.plot([a, b], [0.0, 1.0], color="grey", lw=0.6, alpha=0.7)
        ax.scatter(src, np.zeros_like(src), color="gold", label="source", zorder=3)
        ax.scatter(tgt, np.full_like(tgt, 1.25), color="darkorange", label="target", zorder=3)
        ax.scatter(tr, np.ones_like(tr), color="red", label="translated", zorder=3)
        if "truth" in p:
            truth = np.asarray(p["truth"]).ravel()
            y = np.full_like(truth, 0.85)
            ax.scatter(truth, y, color="black", marker="|", label="true translation")
        ax.set_yticks([0, 1, 1.25], ["source", "translated", "target"])
        ax.set_title(str(p["name"]))
    axes[0, 0].legend(loc="upper left", fontsize="small", ncol=4)
    axes[-1, 0].set_xlabel("score x")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def error_curves_figure(
    curves: Mapping[str, Mapping[str, Sequence[Sequence[float]]]],
    metrics: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str = "Hold-out errors by epoch (median, min-max band over seeds)",
) -> str:
    """CxVAE Fig. 5: per metric, each model's median over seeds with a min-max band.

    :param curves: ``curves[model][metric]`` is a ``[seeds][epochs]`` nested list.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for model, by_metric in curves.items():
            arr = np.asarray(by_metric[metric], dtype=float)
            epochs = np.arange(1, arr.shape[1] + 1)
            (line,) = ax.plot(epochs, np.median(arr, 0), label=model)
            ax.fill_between(epochs, arr.min(0), arr.max(0), color=line.get_color(), alpha=0.2)
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
    axes[0, 0].legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
