"""Figures of the ML-VAE experiments (Bouchacourt et al. 2018), saved to files: the swap grid
(Fig. 4), the 2-D interpolation grid and generation (Fig. 5) and accumulating evidence (Fig. 6a).
The k-shot curves (Fig. 6c) are :func:`pyro_groups.plots.k_shot_figure`.

Images are arrays or tensors ``[..., C, H, W]`` in ``[0, 1]``, as in
:mod:`pyro_groups.plots_images`; figures are drawn outside pyplot
(:func:`pyro_groups.plots.new_figure`).
"""
from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import numpy as np
import torch

from pyro_groups.plots import new_figure, save_figure
from pyro_groups.plots_images import _as_images, _imshow, mosaic
from pyro_groups.validation import ArgumentError

__all__ = ["evidence_figure", "generation_figure", "interpolation_figure", "swap_grid_figure"]


def _frame(ax, rows: tuple[int, int], cols: tuple[int, int], size: tuple[int, int], colour: str,
           pad: int = 1) -> None:
    """A coloured rectangle around the cells ``rows[0] <= r < rows[1]``, same for ``cols``."""
    from matplotlib.patches import Rectangle

    h, w = size
    y0, x0 = rows[0] * (h + pad), cols[0] * (w + pad)
    height, width = (rows[1] - rows[0]) * (h + pad) + pad, (cols[1] - cols[0]) * (w + pad) + pad
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), width, height, fill=False, lw=1.5,
                           edgecolor=colour))


def _panels(count: int, cell: tuple[int, int], cells: tuple[int, int], title: str,
            columns: int = 4):
    """A figure of ``count`` panels, at most ``columns`` a row, each ``cells`` (rows, columns)
    images of ``cell`` pixels; returns ``(fig, axes)`` with one axis per panel."""
    inch = 0.3 * max(1.0, cell[1] / 16)  # per image
    width, height = cells[1] * inch + 0.5, cells[0] * inch * cell[0] / cell[1] + 0.8
    ncols = min(count, columns)
    nrows = -(-count // ncols)
    fig = new_figure(figsize=(max(3.0, width * ncols), max(2.5, height * nrows)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize="medium")
    return fig, list(axes.flat[:count])


def _save(fig, path) -> str:
    for ax in fig.axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return save_figure(fig, path, dpi=120, bbox_inches="tight")


def swap_grid_figure(
    panels: Sequence[tuple[str, Any]], path: str | os.PathLike, *, title: str = "Swapping"
) -> str:
    """ML-VAE's Fig. 4, one panel per ``(name, grid)``: the first row and column are test images
    (green), the second their reconstructions (blue), the rest decode the style of the row with
    the content of the column (red).

    :param panels: ``(name, SwapGrid)`` pairs (:func:`pyro_groups.evaluation.swap_grid`).
    """
    fig = None
    for i, (name, grid) in enumerate(panels):
        rows_img, cols_img = _as_images(grid.style_images), _as_images(grid.content_images)
        swapped = _as_images(grid.swapped)
        r, c = swapped.shape[:2]
        cells = np.full((r + 2, c + 2, *swapped.shape[2:]), np.nan)
        cells[0, 2:], cells[1, 2:] = cols_img, _as_images(grid.content_reconstructions)
        cells[2:, 0], cells[2:, 1] = rows_img, _as_images(grid.style_reconstructions)
        cells[2:, 2:] = swapped
        size = swapped.shape[2:4]
        if fig is None:
            fig, axes = _panels(len(panels), size, (r + 2, c + 2), title)
        ax = axes[i]
        _imshow(ax, mosaic(np.nan_to_num(cells, nan=1.0)))
        _frame(ax, (0, 1), (2, c + 2), size, "green")
        _frame(ax, (2, r + 2), (0, 1), size, "green")
        _frame(ax, (1, 2), (2, c + 2), size, "blue")
        _frame(ax, (2, r + 2), (1, 2), size, "blue")
        _frame(ax, (2, r + 2), (2, c + 2), size, "red")
        ax.set_title(name, fontsize="small")
        ax.set_xlabel("content", fontsize="small")
        ax.set_ylabel("style", fontsize="small")
    if fig is None:
        raise ArgumentError("panels is empty: nothing to draw")
    return _save(fig, path)


def interpolation_figure(
    grids: Any,
    path: str | os.PathLike,
    *,
    names: Optional[Sequence[str]] = None,
    title: str = "Interpolation",
) -> str:
    """ML-VAE's Fig. 5 (right): one panel per grid ``[S, S, *event]`` of ``grids``
    (:func:`pyro_groups.evaluation.interpolation_grid`); rows fix the style, columns the
    content, from the first image (top left) to the second (bottom right)."""
    arr = _as_images(grids)
    if arr.ndim < 5 or arr.shape[1] != arr.shape[2]:
        raise ArgumentError(f"grids must be [G, S, S, C, H, W], got {np.shape(grids)}")
    fig, axes = _panels(len(arr), arr.shape[3:5], arr.shape[1:3], title)
    for i, (ax, grid) in enumerate(zip(axes, arr)):
        _imshow(ax, mosaic(grid))
        ax.set_xlabel("content \u2192", fontsize="small")
        ax.set_ylabel("\u2190 style", fontsize="small")
        if names is not None:
            ax.set_title(names[i], fontsize="small")
    return _save(fig, path)


def generation_figure(
    groups: Any,
    generated: Any,
    path: str | os.PathLike,
    *,
    mask: Any = None,
    title: str = "Generation: accumulated content, styles from the prior",
) -> str:
    """ML-VAE's Fig. 5 (left): per row a group's images (green, padded slots blank) and images
    decoded from its accumulated content with styles drawn from the prior (red).

    :param groups: ``[G, K, *event]`` the groups' images; ``mask`` ``[G, K]`` their real slots.
    :param generated: ``[G, S, *event]`` (:func:`pyro_groups.evaluation.generate`).
    """
    data, gen = _as_images(groups), _as_images(generated)
    if mask is not None:
        keep = np.asarray(torch.as_tensor(mask).cpu())
        data = np.where(keep.reshape(*keep.shape, *[1] * (data.ndim - 2)), data, 1.0)
    if len(data) != len(gen):
        raise ArgumentError(f"{len(data)} groups but {len(gen)} rows of generated images")
    k, s = data.shape[1], gen.shape[1]
    cells = np.concatenate([data, np.ones_like(gen[:, :1]), gen], 1)
    fig, axes = _panels(1, data.shape[2:4], cells.shape[:2], title)
    _imshow(axes[0], mosaic(cells))
    size = data.shape[2:4]
    _frame(axes[0], (0, len(data)), (0, k), size, "green")
    _frame(axes[0], (0, len(data)), (k + 1, k + 1 + s), size, "red")
    return _save(fig, path)


def evidence_figure(
    images: Any,
    alone: Any,
    accumulated: Any,
    path: str | os.PathLike,
    *,
    title: str = "Accumulating evidence: data | each image alone | accumulated over the group",
) -> str:
    """ML-VAE's Fig. 6a: per group (panels side by side) a column of its images, their
    reconstructions from each image alone (strategy 1) and from the group (strategy 2).

    :param images: ``[G, K, *event]``; ``alone`` and ``accumulated`` the same shape
        (:func:`pyro_groups.evaluation.accumulating_evidence`).
    """
    cols = [_as_images(a) for a in (images, alone, accumulated)]
    if not cols[0].shape == cols[1].shape == cols[2].shape:
        raise ArgumentError("images, alone and accumulated must have the same shape")
    fig, axes = _panels(len(cols[0]), cols[0].shape[2:4], (cols[0].shape[1], 3), title)
    for g, ax in enumerate(axes):
        _imshow(ax, mosaic(np.stack([c[g] for c in cols], 1)))
        ax.set_title(f"group {g}", fontsize="small")
    return _save(fig, path)
