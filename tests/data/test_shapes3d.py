import numpy as np
import pytest
import torch

from pyro_groups.data.shapes3d import SHAPES, Shapes3D, hsv_to_rgb


@pytest.fixture(scope="module")
def data():
    return Shapes3D()


BASE = [2, 5, 7, 4, 0, 7]  # floor, wall, object hue, scale, shape, orientation


def row(**changes):
    r = list(BASE)
    for name, value in changes.items():
        r[Shapes3D.factor_names.index(name)] = value
    return r


def test_interface(data):
    assert data.factor_sizes == (10, 10, 10, 8, 4, 15)
    names = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    assert data.factor_names == names
    assert data.num_factors == 6 and len(SHAPES) == 4
    assert data.observation_shape == (3, 64, 64)


def test_range_shape_and_determinism(data):
    f = data.sample_factors(100, 0)
    x = data.images(f)
    assert x.shape == (100, 3, 64, 64) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert torch.equal(x, Shapes3D(chunk_size=13).images(f))


def test_hsv_to_rgb():
    h = torch.tensor([0.0, 1 / 3, 2 / 3])
    rgb = hsv_to_rgb(h, torch.ones(3), torch.ones(3))
    assert torch.allclose(rgb, torch.eye(3), atol=1e-6)
    grey = hsv_to_rgb(h, torch.zeros(3), torch.full((3,), 0.5))
    assert torch.allclose(grey, torch.full((3, 3), 0.5))


def changed(data, a, b):
    x = data.images([a, b])
    return (x[0] != x[1]).any(0)  # [H, W] pixels that differ


def test_floor_hue_changes_only_the_floor(data):
    diff = changed(data, row(), row(floor_hue=8))
    assert diff[-1].all() and not diff[0].any()
    assert not diff[:20].any()


def test_wall_hue_changes_only_the_walls(data):
    diff = changed(data, row(), row(wall_hue=0))
    assert diff[0].all() and not diff[-1].any()


def test_object_hue_changes_only_the_object(data):
    diff = changed(data, row(), row(object_hue=1))
    assert diff.any()
    assert not diff[0].any() and not diff[-1].any()
    assert not diff[:, :10].any() and not diff[:, -10:].any()


def object_area(data, **changes):
    """Pixels that change with the object's hue: the object's area."""
    other = {k: v for k, v in changes.items() if k != "object_hue"}
    return int(changed(data, row(**changes), row(object_hue=0, **other)).sum())


def test_scale_grows_the_object(data):
    for shape in range(4):
        areas = [object_area(data, scale=s, shape=shape) for s in range(8)]
        assert all(b > a for a, b in zip(areas, areas[1:])), (shape, areas)


def test_each_shape_differs(data):
    x = data.images([row(shape=s) for s in range(4)])
    masks = [(x[s] != x[(s + 1) % 4]).any() for s in range(4)]
    assert all(masks)
    areas = [object_area(data, shape=s) for s in range(4)]
    assert len(set(areas)) == 4


def test_orientation_moves_the_corner(data):
    def corner(o):
        top = data.images([row(orientation=o)])[0, :, 0]  # first row: walls only
        dark = (top.sum(0) < top.sum(0).max() - 1e-3).nonzero()
        return int(dark.min())

    corners = [corner(o) for o in range(15)]
    assert all(b >= a for a, b in zip(corners, corners[1:]))
    assert corners[-1] - corners[0] >= 15


def test_bad_factors_raise(data):
    with pytest.raises(ValueError, match="shape"):
        data.images([row(shape=4)])


def test_small_canvas():
    x = Shapes3D(image_size=16).images(np.array([BASE, row(shape=2)]))
    assert x.shape == (2, 3, 16, 16)
