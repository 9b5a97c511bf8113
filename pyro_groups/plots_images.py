"""Image figures saved to files: reconstruction grids and latent traversals.

Images are arrays or tensors ``[..., C, H, W]`` with values in ``[0, 1]`` (``C`` = 1 grey or 3
colour). matplotlib is imported lazily and figures are drawn outside pyplot on an Agg canvas, as
in :mod:`pyro_groups.plots` (a user's backend is left alone).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from pyro_groups.plots import new_figure, save_figure

__all__ = ["latent_traversal_figure", "latent_traversals", "mosaic", "reconstruction_grid"]


def _as_images(images: Any) -> np.ndarray:
    """``[..., C, H, W]`` -> numpy ``[..., H, W]`` (grey) or ``[..., H, W, 3]`` (colour), clipped
    to [0, 1]."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    arr = np.asarray(images, dtype=np.float64)
    if arr.ndim < 3:
        raise ValueError(f"images must be [..., C, H, W], got shape {arr.shape}")
    c = arr.shape[-3]
    if c == 1:
        arr = arr[..., 0, :, :]
    elif c == 3:
        arr = np.moveaxis(arr, -3, -1)
    else:
        raise ValueError(f"images must have 1 or 3 channels, got {c}")
    return np.clip(arr, 0.0, 1.0)


def mosaic(images: np.ndarray, pad: int = 1, fill: float = 0.5) -> np.ndarray:
    """Tile images ``[R, S, H, W(, 3)]`` into one array with ``pad`` pixels of ``fill`` between
    them (one ``imshow`` is much faster than ``R x S`` axes)."""
    rows, cols, h, w = images.shape[:4]
    tail = images.shape[4:]
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, *tail), fill, dtype=np.float64)
    for r in range(rows):
        for c in range(cols):
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            out[y : y + h, x : x + w] = images[r, c]
    return out


def _imshow(ax, grid: np.ndarray) -> None:
    if grid.ndim == 2:
        ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(grid, interpolation="nearest")
    for side in ax.spines.values():
        side.set_visible(False)


def _centres(count: int, size: int, pad: int = 1) -> list[float]:
    return [pad + i * (size + pad) + (size - 1) / 2 for i in range(count)]


def reconstruction_grid(
    originals: Any,
    reconstructions: Any,
    path: str | os.PathLike,
    *,
    title: str = "Reconstructions",
    labels: Sequence[str] = ("data", "reconstruction"),
    columns: Optional[int] = None,
) -> str:
    """A grid of observations above their reconstructions.

    :param originals: ``[n, C, H, W]`` images.
    :param reconstructions: ``[n, C, H, W]`` (e.g. decoder means), or several sets
        ``[r, n, C, H, W]`` (one row each, labelled by ``labels[1:]``).
    :param columns: images per row (default ``n``, at most 16; longer inputs wrap).
    :returns: ``path`` as a string.
    """
    orig = _as_images(originals)
    rec = _as_images(reconstructions)
    if rec.ndim == orig.ndim:
        rec = rec[None]
    if rec.shape[1:] != orig.shape:
        raise ValueError(f"reconstructions {rec.shape[1:]} do not match originals {orig.shape}")
    n = orig.shape[0]
    cols = min(n, 16) if columns is None else max(1, min(int(columns), n))
    blocks = -(-n // cols)
    sets = np.concatenate([orig[None], rec])  # [S, n, ...]
    names = list(labels) + [f"set {i}" for i in range(len(labels), len(sets))]
    padded = np.ones((len(sets), blocks * cols, *orig.shape[1:]))
    padded[:, :n] = sets
    tiles = padded.reshape(len(sets), blocks, cols, *orig.shape[1:]).swapaxes(0, 1)
    tiles = tiles.reshape(blocks * len(sets), cols, *orig.shape[1:])
    h, w = orig.shape[1:3]
    zoom = max(1.0, w / 32), max(1.0, h / 32)
    width = max(4.5, 1.2 + 0.45 * cols * zoom[0])
    fig = new_figure(figsize=(width, 0.6 + 0.45 * len(tiles) * zoom[1]))
    ax = fig.add_subplot()
    _imshow(ax, mosaic(tiles))
    ax.set_xticks([])
    row_names = [names[r % len(sets)] for r in range(len(tiles))]
    ax.set_yticks(_centres(len(tiles), h), row_names, fontsize="small")
    ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    return save_figure(fig, path, dpi=100, bbox_inches="tight")


@torch.no_grad()
def latent_traversals(
    decode: Callable[[torch.Tensor], torch.Tensor],
    code: torch.Tensor,
    values: Sequence[float] | torch.Tensor = (-2.0, -1.0, 0.0, 1.0, 2.0),
    dims: Optional[Sequence[int]] = None,
) -> torch.Tensor:
    """Decode ``code`` with one dimension at a time set to each of ``values``.

    :param decode: maps codes ``[B, D]`` to images ``[B, C, H, W]`` (e.g.
        ``lambda z: model.decode(z[:, None, :])[:, 0]`` for ``IIDVAE``).
    :param code: the base code ``[D]`` (e.g. a posterior mean).
    :param values: the values each traversed dimension takes (``S`` of them).
    :param dims: the dimensions to traverse (default all).
    :returns: images ``[len(dims), S, C, H, W]``.
    """
    code = torch.as_tensor(code).flatten()
    dims = list(range(code.shape[0])) if dims is None else list(dims)
    vals = torch.as_tensor(values, dtype=code.dtype, device=code.device)
    grid = code.repeat(len(dims), len(vals), 1)  # [R, S, D]
    for r, d in enumerate(dims):
        grid[r, :, d] = vals
    images = decode(grid.reshape(-1, code.shape[0]))
    return images.reshape(len(dims), len(vals), *images.shape[1:])


def latent_traversal_figure(
    images: Any,
    path: str | os.PathLike,
    *,
    values: Optional[Sequence[float]] = None,
    row_labels: Optional[Sequence[str]] = None,
    title: str = "Latent traversals",
) -> str:
    """One row per traversed latent dimension, one column per value (Higgins et al. 2017, Fig. 7).

    :param images: ``[R, S, C, H, W]``, e.g. from :func:`latent_traversals`.
    :param values: the ``S`` traversal values (column titles).
    :param row_labels: ``R`` row labels (default ``z0, z1, ...``), e.g. with each dimension's KL.
    :returns: ``path`` as a string.
    """
    arr = _as_images(images)
    if arr.ndim not in (4, 5) or (arr.ndim == 5 and arr.shape[-1] != 3):
        raise ValueError("images must be [R, S, C, H, W]")
    rows, cols = arr.shape[:2]
    labels = list(row_labels) if row_labels is not None else [f"z{r}" for r in range(rows)]
    if len(labels) != rows:
        raise ValueError(f"need {rows} row labels, got {len(labels)}")
    h, w = arr.shape[2:4]
    zoom = max(1.0, w / 32), max(1.0, h / 32)
    width = max(4.5, 1.0 + 0.5 * cols * zoom[0])
    fig = new_figure(figsize=(width, 0.7 + 0.5 * rows * zoom[1]))
    ax = fig.add_subplot()
    _imshow(ax, mosaic(arr))
    ax.set_yticks(_centres(rows, h), labels, fontsize="small")
    if values is not None:
        ticks = [f"{float(v) + 0.0:+.1f}" for v in values]  # + 0.0 turns -0.0 into 0.0
        ax.set_xticks(_centres(cols, w), ticks, fontsize="small")
    else:
        ax.set_xticks([])
    ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    return save_figure(fig, path, dpi=100, bbox_inches="tight")
