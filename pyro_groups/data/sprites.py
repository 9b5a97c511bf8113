r"""Procedural dSprites (Matthey et al. 2017): binary 64x64 images of shapes, rendered on demand.

Five factors with the sizes of dSprites (its constant ``color`` factor is left out, as in
``disentanglement_lib``):

=============  =====  ============================================================
factor         size   values
=============  =====  ============================================================
shape          3      square, ellipse, heart
scale          6      ``linspace(0.5, 1, 6)``
orientation    40     ``linspace(0, 2 pi, 40)`` radians (classes 0 and 39 coincide, as in dSprites)
pos_x          32     ``linspace(0, 1, 32)``, left to right
pos_y          32     ``linspace(0, 1, 32)``, top to bottom
=============  =====  ============================================================

An image is rendered by mapping every pixel centre back through the translation, rotation and
scaling of its factor row and evaluating the shape's implicit function there; a batch of rows is
one set of tensor operations (no 737,280-image array is held). On a 64-pixel canvas the shape's
centre sits at pixel ``15.5 + 32 * pos`` (so one ``pos_x`` class moves it ``32 / 31`` pixels) and
its radius is ``10 * scale`` pixels (a square at scale 1 is 20 pixels wide).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from pyro_groups.data.factors import FactorDataset
from pyro_groups.validation import check_int

SHAPES = ("square", "ellipse", "heart")
_HEART_ZOOM = 1.15  # the heart curve spans about [-1.14, 1.14] x [-1, 1.24]; fit it to radius ~1.2


def _square(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.maximum(a.abs(), b.abs()) <= 1.0


def _ellipse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a * (1 / 1.2), b * (1 / 0.6)
    return a * a + b * b <= 1.0


def _heart(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a * _HEART_ZOOM, b * _HEART_ZOOM + 0.1
    a2 = a * a
    r = a2 + b * b - 1.0
    return r * r * r <= a2 * b * b * b


_INSIDE = (_square, _ellipse, _heart)  # implicit functions; (a, b) local, b upwards, unit = radius


class Sprites(FactorDataset):
    """dSprites-like images of a square, an ellipse and a heart, rendered from their factors.

    :param image_size: side of the square canvas (64 as in dSprites); the geometry scales with it.
    :param chunk_size: rows rendered per vectorised pass (bounds the memory of a large request).
    """

    factor_names = ("shape", "scale", "orientation", "pos_x", "pos_y")
    factor_sizes = (3, 6, 40, 32, 32)

    def __init__(self, image_size: int = 64, chunk_size: int = 512) -> None:
        self.image_size = check_int(image_size, "image_size", min=8)
        self.chunk_size = check_int(chunk_size, "chunk_size", min=1)
        self.observation_shape = (1, self.image_size, self.image_size)
        self.values = (
            np.arange(1, 4, dtype=np.float64),
            np.linspace(0.5, 1.0, 6),
            np.linspace(0.0, 2 * math.pi, 40),
            np.linspace(0.0, 1.0, 32),
            np.linspace(0.0, 1.0, 32),
        )
        self._tables = [torch.as_tensor(v, dtype=torch.float32) for v in self.values]

    def __repr__(self) -> str:
        return f"Sprites(image_size={self.image_size})"

    def images(self, factors) -> torch.Tensor:
        """Binary images ``[n, 1, H, W]`` (float32, values 0 and 1) of factor rows ``[n, 5]``."""
        f = torch.as_tensor(self.check_factors(factors))
        out = torch.empty((f.shape[0], *self.observation_shape))
        for start in range(0, f.shape[0], self.chunk_size):
            stop = start + self.chunk_size
            out[start:stop, 0] = self._render(f[start:stop])
        return out

    def _render(self, f: torch.Tensor) -> torch.Tensor:
        """Evaluate each shape on a ``P x P`` patch around its centre, then paste the patches."""
        n, size = f.shape[0], self.image_size
        unit = size / 64.0
        patch = min(size, math.ceil(32 * unit) + 2)
        scale, angle, px, py = (self._tables[j][f[:, j]].view(-1, 1) for j in range(1, 5))
        cx, cy = (15.5 + 32.0 * px) * unit, (15.5 + 32.0 * py) * unit
        ox = torch.floor(cx - patch / 2 + 0.5).clamp(0, size - patch)
        oy = torch.floor(cy - patch / 2 + 0.5).clamp(0, size - patch)
        step = torch.arange(patch, dtype=torch.float32).view(1, -1)
        cols, rows = ox + step, oy + step  # [n, P] pixel coordinates of the patch
        inv_r = 1.0 / (10.0 * unit * scale)
        dx = ((cols - cx) * inv_r).unsqueeze(1)  # [n, 1, P]
        dy = ((cy - rows) * inv_r).unsqueeze(2)  # [n, P, 1], upwards
        cos, sin = torch.cos(angle).unsqueeze(2), torch.sin(angle).unsqueeze(2)
        a, b = cos * dx + sin * dy, cos * dy - sin * dx  # inverse rotation, [n, P, P]
        inside = torch.zeros(n, patch, patch, dtype=torch.bool)
        for k, fn in enumerate(_INSIDE):
            sel = (f[:, 0] == k).nonzero().flatten()
            if sel.numel():
                inside[sel] = fn(a[sel], b[sel])
        index = (rows.long().unsqueeze(2) * size + cols.long().unsqueeze(1)).view(n, -1)
        out = torch.zeros(n, size * size)
        out.scatter_(1, index, inside.view(n, -1).to(torch.float32))
        return out.view(n, size, size)
