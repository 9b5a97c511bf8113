r"""A procedural coloured-scene data set in the spirit of 3DShapes (Burgess & Kim 2018), 64x64 RGB.

Six factors with the sizes of 3DShapes:

=============  =====  ================================================================
factor         size   rendering
=============  =====  ================================================================
floor_hue      10     hue of the floor, ``linspace(0, 0.9, 10)``
wall_hue       10     hue of the back walls
object_hue     10     hue of the object
scale          8      object size, ``linspace(0.75, 1.25, 8)``
shape          4      cube, cylinder, sphere, capsule (lying)
orientation    15     camera angle ``linspace(-30, 30, 15)`` degrees
=============  =====  ================================================================

The scene is flat 2-D with a little perspective: two back walls meet at a vertical corner and
the floor meets them along a "V"; the orientation moves the corner sideways (``20 sin(angle)``
pixels at 64 pixels) and moves the light that shades the object (a cube shows a darker side face).
The object stands on the floor at the bottom centre. Colours are fully saturated HSV hues with a
brightness of 1 (objects, left wall) or less (right wall, floor, shaded faces); pixels are in
``[0, 1]``. Everything is rendered on demand from factor rows by vectorised tensor operations.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from pyro_groups.data.factors import FactorDataset
from pyro_groups.validation import check_int

SHAPES = ("cube", "cylinder", "sphere", "capsule")


def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Vectorised HSV to RGB: tensors of the same shape ``[...]`` in ``[0, 1]`` -> ``[..., 3]``."""
    k = torch.tensor([5.0, 3.0, 1.0], dtype=h.dtype, device=h.device)
    t = torch.remainder(k + h.unsqueeze(-1) * 6.0, 6.0)
    ramp = torch.clamp(torch.minimum(t, 4.0 - t), 0.0, 1.0)
    return v.unsqueeze(-1) - (v * s).unsqueeze(-1) * ramp


def _object_masks(shape: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Whether ``(px, py)`` (object units, ``py`` upwards from the base) is inside the object."""
    cube = (px.abs() <= 1.0) & (py >= 0.0) & (py <= 2.0)
    body = (px.abs() <= 0.85) & (py >= 0.0) & (py <= 1.7)
    cyl = body | ((px / 0.85) ** 2 + ((py - 1.7) / 0.3) ** 2 <= 1.0)
    sphere = px**2 + (py - 1.0) ** 2 <= 1.0
    seg = px.clamp(-0.55, 0.55)
    capsule = (px - seg) ** 2 + (py - 0.55) ** 2 <= 0.55**2
    s = shape.view(-1, 1, 1)
    return torch.where(s == 0, cube, torch.where(s == 1, cyl, torch.where(s == 2, sphere, capsule)))


class Shapes3D(FactorDataset):
    """3DShapes-like coloured scenes rendered from their six factors.

    :param image_size: side of the square canvas (64 as in 3DShapes).
    :param chunk_size: rows rendered per vectorised pass.
    """

    factor_names = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    factor_sizes = (10, 10, 10, 8, 4, 15)

    def __init__(self, image_size: int = 64, chunk_size: int = 512) -> None:
        self.image_size = check_int(image_size, "image_size", min=8)
        self.chunk_size = check_int(chunk_size, "chunk_size", min=1)
        self.observation_shape = (3, self.image_size, self.image_size)
        hues = np.linspace(0.0, 0.9, 10)
        scales, angles = np.linspace(0.75, 1.25, 8), np.linspace(-30.0, 30.0, 15)
        self.values = (hues, hues, hues, scales, np.arange(4.0), angles)
        self._tables = [torch.as_tensor(v, dtype=torch.float32) for v in self.values]

    def __repr__(self) -> str:
        return f"Shapes3D(image_size={self.image_size})"

    def images(self, factors) -> torch.Tensor:
        """RGB images ``[n, 3, H, W]`` (float32 in ``[0, 1]``) of factor rows ``[n, 6]``."""
        f = torch.as_tensor(self.check_factors(factors))
        out = torch.empty((f.shape[0], *self.observation_shape))
        for start in range(0, f.shape[0], self.chunk_size):
            out[start : start + self.chunk_size] = self._render(f[start : start + self.chunk_size])
        return out

    def _render(self, f: torch.Tensor) -> torch.Tensor:
        n, size = f.shape[0], self.image_size
        unit = size / 64.0
        floor_h, wall_h, obj_h, scale, _, angle = (
            self._tables[j][f[:, j]].view(-1, 1, 1) for j in range(6)
        )
        sin = torch.sin(angle * (math.pi / 180.0))
        one = torch.ones(n, 1, 1)
        floor_rgb = hsv_to_rgb(floor_h, one, 0.85 * one).view(n, 3, 1, 1)
        wall_rgb = hsv_to_rgb(wall_h, one, one).view(n, 3, 1, 1)
        obj_rgb = hsv_to_rgb(obj_h, one, one).view(n, 3, 1, 1)
        grid = torch.arange(size, dtype=torch.float32) + 0.5
        x, y = grid.view(1, 1, -1), grid.view(1, -1, 1)
        corner = (32.0 + 20.0 * sin) * unit
        horizon = 30.0 * unit + 0.3 * (x - corner).abs()  # the floor meets the walls along a "V"
        floor = (y >= horizon).unsqueeze(1)
        wall_shade = torch.where(x > corner, 0.75, 1.0).unsqueeze(1)
        img = torch.where(floor, floor_rgb, wall_rgb * wall_shade)
        # the object lives in a fixed window around the base centre (rows 28..57, cols 16..48 at 64)
        r0, r1 = int(28 * unit), min(size, math.ceil(57 * unit))
        c0, c1 = int(16 * unit), min(size, math.ceil(48 * unit))
        xw, yw = x[..., c0:c1], y[:, r0:r1]
        # object coordinates: unit = 9 * scale pixels, origin at the base centre, py upwards
        obj_unit = 9.0 * unit * scale
        px = (xw - 32.0 * unit) / obj_unit
        py = (56.0 * unit - yw) / obj_unit
        inside = _object_masks(f[:, 4], px, py).unsqueeze(1)
        cube_side = (f[:, 4] == 0).view(-1, 1, 1) & (sin * (px - 1.6 * sin) > 0)
        light = 1.0 - 0.35 * torch.clamp(px * sin * 2.0, 0.0, 1.0) - 0.25 * cube_side.float()
        window = img[:, :, r0:r1, c0:c1]
        img[:, :, r0:r1, c0:c1] = torch.where(inside, obj_rgb * light.unsqueeze(1), window)
        return img
