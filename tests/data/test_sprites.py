import time

import numpy as np
import pytest
import torch

from pyro_groups.data.sprites import SHAPES, Sprites


@pytest.fixture(scope="module")
def data():
    return Sprites()


def com(img):
    """Centre of mass ``(row, col)`` of a ``[1, H, W]`` image."""
    img = img[0]
    rows = torch.arange(img.shape[0]).view(-1, 1)
    cols = torch.arange(img.shape[1]).view(1, -1)
    m = img.sum()
    return float((rows * img).sum() / m), float((cols * img).sum() / m)


def test_interface(data):
    assert data.num_factors == 5
    assert data.factor_sizes == (3, 6, 40, 32, 32)
    assert data.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert data.observation_shape == (1, 64, 64)
    assert len(data) == 3 * 6 * 40 * 32 * 32
    assert len(SHAPES) == 3


def test_binary_deterministic_and_shape(data):
    f = data.sample_factors(200, 0)
    x = data.images(f)
    assert x.shape == (200, 1, 64, 64) and x.dtype == torch.float32
    assert set(torch.unique(x).tolist()) <= {0.0, 1.0}
    assert (x.sum((1, 2, 3)) > 0).all()
    assert torch.equal(x, Sprites().images(f))
    assert torch.equal(x, data.sample_observations_from_factors(f, np.random.default_rng(5)))
    assert torch.equal(x[3:4], data.images(f[3]))  # one row as a 1-D array


def test_chunking_does_not_change_images(data):
    f = data.sample_factors(50, 1)
    assert torch.equal(data.images(f), Sprites(chunk_size=7).images(f))


def test_shapes_stay_inside_the_canvas(data):
    corners = [
        [s, 5, o, px, py]
        for s in range(3)
        for o in (0, 5, 10, 25)
        for px in (0, 31)
        for py in (0, 31)
    ]
    f = np.concatenate([np.array(corners), data.sample_factors(500, 2)])
    x = data.images(f)[:, 0]
    border = x[:, 0].sum() + x[:, -1].sum() + x[:, :, 0].sum() + x[:, :, -1].sum()
    assert border == 0


def test_x_position_moves_centre_of_mass_right(data):
    base = [0, 5, 0, 0, 16]
    left = data.images([base])[0]
    right = data.images([[0, 5, 0, 31, 16]])[0]
    (r0, c0), (r1, c1) = com(left), com(right)
    assert c1 - c0 == pytest.approx(32.0, abs=0.01)  # pos_x 0 -> 1 spans 32 pixels
    assert r1 == pytest.approx(r0, abs=1e-6)
    step = [com(data.images([[2, 3, 7, px, 10]])[0])[1] for px in range(0, 32, 5)]
    assert np.allclose(np.diff(step), 5 * 32 / 31, atol=0.6)  # one class = 32/31 pixels


def test_y_position_moves_centre_of_mass_down(data):
    top, bottom = data.images([[1, 4, 3, 10, 0], [1, 4, 3, 10, 31]])
    (r0, c0), (r1, c1) = com(top), com(bottom)
    assert r1 - r0 == pytest.approx(32.0, abs=0.6)
    assert c1 == pytest.approx(c0, abs=1e-6)


def test_scale_increases_area_monotonically(data):
    for shape in range(3):
        for orientation in (0, 13):
            f = [[shape, s, orientation, 16, 16] for s in range(6)]
            area = data.images(f).sum((1, 2, 3))
            assert (area[1:] > area[:-1]).all(), (shape, area)
    square = data.images([[0, s, 0, 16, 16] for s in (0, 5)]).sum((1, 2, 3))
    assert square.tolist() == [100.0, 400.0]  # sides 10 and 20 pixels


def test_each_shape_differs(data):
    x = data.images([[s, 5, 0, 16, 16] for s in range(3)])
    areas = x.sum((1, 2, 3))
    assert len(set(areas.tolist())) == 3
    for i in range(3):
        for j in range(i + 1, 3):
            assert not torch.equal(x[i], x[j])


def test_orientation_rotates(data):
    x = data.images([[1, 5, o, 16, 16] for o in (0, 10, 39)])
    assert not torch.equal(x[0], x[1])
    assert torch.equal(x[0], x[2])  # 0 and 2 pi, as in dSprites
    area = x.sum((1, 2, 3))
    assert float(area[1] / area[0]) == pytest.approx(1.0, abs=0.08)
    assert com(x[0]) == pytest.approx(com(x[1]), abs=0.6)


def test_factor_values(data):
    v = data.factor_values([[2, 5, 39, 31, 0]])
    assert v[0].tolist() == pytest.approx([3.0, 1.0, 2 * np.pi, 1.0, 0.0])


def test_bad_factors_raise(data):
    with pytest.raises(ValueError, match="pos_x"):
        data.images([[0, 0, 0, 32, 0]])
    with pytest.raises(ValueError, match="shape"):
        data.images([[0, 0, 0, 0]])
    with pytest.raises(ValueError):
        data.images([[-1, 0, 0, 0, 0]])


def test_other_image_sizes(data):
    f = data.sample_factors(20, 3)
    for size in (16, 32):
        x = Sprites(image_size=size).images(f)
        assert x.shape == (20, 1, size, size)
        assert (x.sum((1, 2, 3)) > 0).all()


def test_rendering_is_fast(data):
    f = data.sample_factors(2000, 4)
    start = time.perf_counter()
    data.images(f)
    assert time.perf_counter() - start < 5.0
