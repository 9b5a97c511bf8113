import gzip
import itertools
import struct

import numpy as np
import pytest
import torch

from pyro_groups.data.factors import group_by_factors
from pyro_groups.data.loaders import (
    DataFileError,
    load_dsprites,
    load_mnist,
    load_shapes3d,
    read_idx,
)

h5py = pytest.importorskip("h5py")

DS_SIZES = (1, 3, 2, 2, 3, 2)  # color, shape, scale, orientation, pos_x, pos_y


def grid(sizes):
    return np.array(list(itertools.product(*[range(s) for s in sizes])), dtype=np.int64)


@pytest.fixture
def dsprites_file(tmp_path):
    rng = np.random.default_rng(0)
    classes = grid(DS_SIZES)
    values = classes * np.array([0, 1, 0.25, 0.5, 0.1, 0.2]) + np.array([1, 1, 0.5, 0, 0, 0])
    imgs = rng.integers(0, 2, size=(len(classes), 8, 8)).astype(np.uint8)
    path = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    np.savez(path, imgs=imgs, latents_values=values, latents_classes=classes)
    return path, imgs, classes


def test_dsprites_round_trip(dsprites_file):
    path, imgs, classes = dsprites_file
    d = load_dsprites(path)
    assert d.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")  # color dropped
    assert d.factor_sizes == DS_SIZES[1:] and d.complete and d.observation_shape == (1, 8, 8)
    x = d.images(classes[:, 1:])
    assert x.shape == (len(classes), 1, 8, 8) and x.dtype == torch.float32
    assert torch.equal(x[:, 0], torch.as_tensor(imgs, dtype=torch.float32))
    assert d.factor_values([[2, 1, 0, 2, 1]])[0].tolist() == pytest.approx([3, 0.75, 0, 0.2, 0.2])
    gd = group_by_factors(d, ["shape"], 3, 4, rng=0)
    assert gd.x.shape == (3, 4, 1, 8, 8)


def test_dsprites_rows_in_any_order_and_incomplete(tmp_path, dsprites_file):
    _, imgs, classes = dsprites_file
    perm = np.random.default_rng(1).permutation(len(classes))[:-5]  # shuffled, 5 rows missing
    path = tmp_path / "part.npz"
    np.savez(path, imgs=imgs[perm], latents_classes=classes[perm])
    d = load_dsprites(path)
    assert not d.complete
    some = classes[perm[:10], 1:]
    assert torch.equal(d.images(some)[:, 0], torch.as_tensor(imgs[perm[:10]], dtype=torch.float32))
    f = d.sample_factors(50, 0)
    d.images(f)  # only stored rows are sampled
    missing = classes[np.setdiff1d(np.arange(len(classes)), perm)[0], 1:]
    with pytest.raises(KeyError, match="not in"):
        d.images([missing])


def test_dsprites_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="dSprites"):
        load_dsprites(tmp_path / "nothing.npz")
    classes = np.zeros((2, 6), np.int64)
    np.savez(tmp_path / "keys.npz", images=np.zeros((2, 4, 4)), latents_classes=classes)
    with pytest.raises(DataFileError, match="imgs"):
        load_dsprites(tmp_path / "keys.npz")
    np.savez(tmp_path / "shape.npz", imgs=np.zeros((2, 16)), latents_classes=np.array([[0], [1]]))
    with pytest.raises(DataFileError, match=r"\[N, H, W\]"):
        load_dsprites(tmp_path / "shape.npz")
    np.savez(tmp_path / "rows.npz", imgs=np.zeros((3, 4, 4)), latents_classes=np.array([[0], [1]]))
    with pytest.raises(DataFileError, match="latents_classes"):
        load_dsprites(tmp_path / "rows.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(DataFileError, match="npz"):
        load_dsprites(tmp_path / "junk.npz")


SH_SIZES = (2, 2, 3, 2, 4, 2)


@pytest.fixture
def shapes_file(tmp_path):
    rng = np.random.default_rng(0)
    classes = grid(SH_SIZES)
    step = np.array([0.1, 0.1, 0.1, 0.25, 1.0, 30.0])
    labels = classes * step + np.array([0, 0, 0, 0.75, 0, -30.0])
    imgs = rng.integers(0, 256, size=(len(classes), 8, 8, 3)).astype(np.uint8)
    path = tmp_path / "3dshapes.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=imgs)
        f.create_dataset("labels", data=labels)
    return path, imgs, classes


@pytest.mark.parametrize("in_memory", [False, True])
def test_shapes3d_round_trip(shapes_file, in_memory):
    path, imgs, classes = shapes_file
    d = load_shapes3d(path, in_memory=in_memory)
    names = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    assert d.factor_names == names
    assert d.factor_sizes == SH_SIZES and d.observation_shape == (3, 8, 8)
    rows = np.array([5, 0, 17, 5, 90])  # repeated and unsorted rows
    x = d.images(classes[rows])
    expect = torch.as_tensor(imgs[rows]).permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(x, expect) and x.min() >= 0 and x.max() <= 1
    values = d.factor_values([[0, 0, 0, 1, 3, 1]])[0]
    assert values.tolist() == pytest.approx([0, 0, 0, 1.0, 3.0, 0.0])
    gd = group_by_factors(d, ["shape", "scale"], 2, 3, rng=0)
    assert gd.x.shape == (2, 3, 3, 8, 8)
    d.close()


def test_shapes3d_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="3DShapes"):
        load_shapes3d(tmp_path / "3dshapes.h5")
    with h5py.File(tmp_path / "keys.h5", "w") as f:
        f.create_dataset("images", data=np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(DataFileError, match="labels"):
        load_shapes3d(tmp_path / "keys.h5")
    with h5py.File(tmp_path / "shape.h5", "w") as f:
        f.create_dataset("images", data=np.zeros((2, 4, 4), np.uint8))
        f.create_dataset("labels", data=np.zeros((2, 6)))
    with pytest.raises(DataFileError, match="images must be"):
        load_shapes3d(tmp_path / "shape.h5")
    (tmp_path / "junk.h5").write_bytes(b"plain text")
    with pytest.raises(DataFileError, match="HDF5"):
        load_shapes3d(tmp_path / "junk.h5")


def idx_bytes(array, code=0x08):
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(">u1" if code == 0x08 else ">i4").tobytes()


def write_mnist(directory, prefix="train", gz=False, n=30):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
    labels = np.arange(n) % 10
    files = ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels))
    for stem, arr in files:
        raw = idx_bytes(arr)
        if gz:
            (directory / (stem + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (directory / stem).write_bytes(raw)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_round_trip(tmp_path, gz):
    images, labels = write_mnist(tmp_path, gz=gz)
    m = load_mnist(tmp_path)
    assert m.num_images == 30 and m.observation_shape == (1, 28, 28) and m.factor_sizes == (10, 3)
    assert torch.allclose(m.images_at(np.arange(30))[:, 0], torch.as_tensor(images).float() / 255)
    assert np.array_equal(m.labels, labels)
    gd = group_by_factors(m, ["label"], 4, 3, rng=0)
    label = gd.u_true[:, 0].repeat_interleave(3)
    index = m.image_index(np.stack([label, gd.v_true.flatten()], 1))
    assert (m.labels[index] == label.numpy()).all()


def test_mnist_test_split_and_idx_types(tmp_path):
    write_mnist(tmp_path, prefix="t10k", n=10)
    assert load_mnist(tmp_path, split="test").num_images == 10
    arr = np.arange(12, dtype=np.int64).reshape(3, 4)
    (tmp_path / "ints").write_bytes(idx_bytes(arr, code=0x0C))
    assert np.array_equal(read_idx(tmp_path / "ints"), arr)


def test_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images"):
        load_mnist(tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_mnist(tmp_path, split="valid")
    write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(DataFileError, match="not an idx"):
        load_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(29) % 10))
    with pytest.raises(DataFileError, match="labels"):
        load_mnist(tmp_path)
    raw = idx_bytes(np.zeros((30, 28, 28), np.uint8))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(raw[:-7])
    with pytest.raises(DataFileError, match="promises"):
        load_mnist(tmp_path)
