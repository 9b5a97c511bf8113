"""Matplotlib figures, saved to files.

matplotlib is imported lazily, and figures are drawn on a :class:`matplotlib.figure.Figure` with
its own Agg canvas: nothing here goes through ``pyplot``, so a user's backend, interactive
figures and ``pyplot`` state are left alone (no ``matplotlib.use``).
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from pyro_groups.validation import ArgumentError

__all__ = [
    "draw_error_curves",
    "draw_k_shot",
    "draw_translation",
    "error_curves_figure",
    "k_shot_figure",
    "new_figure",
    "save_figure",
    "translation_figure",
]


def new_figure(**kwargs: Any) -> Any:
    """A ``matplotlib.figure.Figure`` (``kwargs`` as for ``Figure``, e.g. ``figsize``, ``layout``)
    attached to an Agg canvas, outside pyplot: it never opens a window and is freed with its last
    reference."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | os.PathLike, **kwargs: Any) -> str:
    """Save ``fig`` to ``path`` (``dpi=110`` unless given) and return the path as a string."""
    kwargs.setdefault("dpi", 110)
    fig.savefig(path, **kwargs)
    return str(path)


def translation_figure(
    panels: Sequence[Mapping[str, Any]], path: str | os.PathLike, *, title: str = "Translation"
) -> str:
    """CxVAE Fig. 3: for each panel, the source and target groups' scores, the translated scores,
    and a line from each source observation to its translation (uncrossed lines = instance kept).

    The legend sits in its own row below the last panel, outside the data; the title above the
    first panel's. Saved to ``path`` (returned as a string); :func:`draw_translation` returns the
    figure instead.

    :param panels: dicts with ``name``, 1-D arrays ``source``, ``target``, ``translated`` (aligned
        with ``source``) and optionally ``truth`` (the ground-truth translation).
    """
    return save_figure(draw_translation(panels, title=title), path)


def draw_translation(panels: Sequence[Mapping[str, Any]], *, title: str = "Translation") -> Any:
    """The figure of :func:`translation_figure`, not saved."""
    if len(panels) == 0:
        raise ArgumentError("panels is empty: nothing to draw")
    fig = new_figure(figsize=(8, 1.0 + 2.0 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, sharex=True)
    for ax, p in zip(axes[:, 0], panels):
        src, tgt, tr = (np.asarray(p[k]).ravel() for k in ("source", "target", "translated"))
        if src.shape != tr.shape:
            raise ArgumentError(
                f"panel {p.get('name')!r}: translated has {tr.size} values, source {src.size}"
            )
        for a, b in zip(src, tr):
            ax.plot([a, b], [0.0, 1.0], color="grey", lw=0.6, alpha=0.7)
        ax.scatter(src, np.zeros_like(src), color="gold", label="source", zorder=3)
        ax.scatter(tgt, np.full_like(tgt, 1.25), color="darkorange", label="target", zorder=3)
        ax.scatter(tr, np.ones_like(tr), color="red", label="translated", zorder=3)
        if "truth" in p:
            truth = np.asarray(p["truth"]).ravel()
            y = np.full_like(truth, 0.85)
            ax.scatter(truth, y, color="black", marker="|", label="true translation", zorder=4)
        ax.set_yticks([0, 1, 1.25], ["source", "translated", "target"])
        ax.set_ylim(-0.2, 1.45)
        ax.set_title(str(p["name"]), fontsize="medium", loc="left")
    axes[-1, 0].set_xlabel("score x")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize="small")
    fig.suptitle(title)
    return fig


def error_curves_figure(
    curves: Mapping[str, Mapping[str, Sequence[Sequence[float]]]],
    metrics: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str = "Hold-out errors by epoch (median, min-max band over seeds)",
) -> str:
    """CxVAE Fig. 5: per metric, each model's median over seeds with a min-max band.

    Epochs are whole numbers on the x axis; the legend sits below the panels, outside the data.
    Saved to ``path`` (returned as a string); :func:`draw_error_curves` returns the figure instead.

    :param curves: ``curves[model][metric]`` is a ``[seeds][epochs]`` nested list.
    """
    return save_figure(draw_error_curves(curves, metrics, title=title), path)


def draw_error_curves(
    curves: Mapping[str, Mapping[str, Sequence[Sequence[float]]]],
    metrics: Sequence[str],
    *,
    title: str = "Hold-out errors by epoch (median, min-max band over seeds)",
) -> Any:
    """The figure of :func:`error_curves_figure`, not saved."""
    from matplotlib.ticker import MaxNLocator

    if len(metrics) == 0 or len(curves) == 0:
        raise ArgumentError("curves and metrics must both be non-empty")
    fig = new_figure(figsize=(4.2 * len(metrics), 4.0), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for model, by_metric in curves.items():
            arr = np.asarray(by_metric[metric], dtype=float)
            if arr.ndim != 2 or arr.shape[1] == 0:
                raise ArgumentError(
                    f"curves[{model!r}][{metric!r}] must be [seeds][epochs], got shape {arr.shape}"
                )
            epochs = np.arange(1, arr.shape[1] + 1)
            (line,) = ax.plot(epochs, np.median(arr, 0), label=model, marker=".", ms=3)
            ax.fill_between(epochs, arr.min(0), arr.max(0), color=line.get_color(), alpha=0.2)
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_yscale("log")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    ncol = min(len(labels), 5)
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize="small")
    fig.suptitle(title)
    return fig


def k_shot_figure(
    rows: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    *,
    num_classes: int | None = None,
    title: str = "k-shot classification from the codes (mean ± std over seeds)",
) -> str:
    """ML-VAE Fig. 6c: accuracy and conditional entropy (cross-entropy, bits) against the number
    ``k`` of test images accumulated, one line per model and code (content solid, style dashed).

    Saved to ``path`` (returned as a string); :func:`draw_k_shot` returns the figure instead.

    :param rows: ``{"model", "code", "k", "accuracy", "cond_entropy_bits"}`` with each metric a
        number or ``{"mean", "std", ...}``.
    :param num_classes: draws chance accuracy and ``log2(num_classes)`` bits when given.
    """
    return save_figure(draw_k_shot(rows, num_classes=num_classes, title=title), path)


def draw_k_shot(
    rows: Sequence[Mapping[str, Any]],
    *,
    num_classes: int | None = None,
    title: str = "k-shot classification from the codes (mean ± std over seeds)",
) -> Any:
    """The figure of :func:`k_shot_figure`, not saved."""
    from matplotlib.ticker import MaxNLocator

    if len(rows) == 0:
        raise ArgumentError("rows is empty: nothing to draw")
    fig = new_figure(figsize=(10, 4.6), layout="constrained")
    axes = fig.subplots(1, 2)
    series: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        series.setdefault((str(r["model"]), str(r["code"])), []).append(r)
    colours: dict[str, Any] = {}
    for (model, code), rs in series.items():
        rs = sorted(rs, key=lambda r: r["k"])
        k = [r["k"] for r in rs]
        for ax, metric in zip(axes, ("accuracy", "cond_entropy_bits")):
            cells = [r[metric] for r in rs]
            mean = [c["mean"] if isinstance(c, Mapping) else c for c in cells]
            std = [c.get("std", 0.0) if isinstance(c, Mapping) else 0.0 for c in cells]
            line = ax.errorbar(k, mean, yerr=std, capsize=2, lw=1.2, color=colours.get(model),
                               ls="-" if code == "content" else "--", label=f"{model} {code}")
            colours.setdefault(model, line.lines[0].get_color())
    if num_classes:
        axes[0].axhline(1.0 / num_classes, color="grey", lw=0.8, ls=":", label="chance")
        axes[1].axhline(float(np.log2(num_classes)), color="grey", lw=0.8, ls=":")
    axes[0].set_ylabel("accuracy")
    axes[1].set_ylabel("conditional entropy bound (bits)")
    for ax in axes:
        ax.set_xlabel("k (test images accumulated)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4),
               fontsize="x-small")
    fig.suptitle(title, fontsize="medium")
    return fig
