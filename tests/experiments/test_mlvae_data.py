"""The ML-VAE experiments' data: digits, sprites and MNIST files, split into training groups and a
held-out pool."""
import struct

import numpy as np
import pytest
import torch

from pyro_groups.experiments.mlvae_data import load_data, stratified_split


def test_digits_split_groups_and_pool():
    d = load_data("digits", seed=0, test_fraction=0.5, group_size=8, test_group_size=4)
    n_train = int(d.train.mask.sum())
    assert n_train + len(d.pool_y) == 1797 and d.num_classes == 10
    assert d.image_shape == (1, 8, 8)
    counts = np.bincount(d.train_labels) + np.bincount(d.pool_y)
    assert np.abs(np.bincount(d.pool_y) - counts / 2).max() <= 0.5  # half of every class
    assert d.train.mask.shape[1] == 8 and d.test.mask.shape[1] == 4
    labels = d.train.u_true[:, 0]
    assert len(d.train_labels) == n_train
    assert np.array_equal(d.train_labels, labels.repeat_interleave(d.train.mask.sum(-1)).numpy())
    # every pool image is in exactly one test group of its class
    assert int(d.test.mask.sum()) == len(d.pool_y)
    pool = {tuple(x.flatten().tolist()) for x in d.pool_x}
    train = {tuple(x.flatten().tolist()) for x in d.train.x[d.train.mask]}
    assert len(pool & train) <= 5  # the digits hold a few duplicate images, no shared rows
    again = load_data("digits", seed=0, test_fraction=0.5)
    assert torch.equal(again.pool_x, d.pool_x)


def test_stratified_split():
    labels = np.repeat(np.arange(3), [10, 20, 30])
    kept, out = stratified_split(labels, 0.3, np.random.default_rng(0))
    assert np.bincount(labels[out]).tolist() == [3, 6, 9]
    assert sorted(np.concatenate([kept, out]).tolist()) == list(range(60))
    with pytest.raises(ValueError, match="fraction"):
        stratified_split(labels, 1.0, np.random.default_rng(0))


def test_sprites_grouped_by_shape_and_scale():
    d = load_data("sprites", shared=("shape", "scale"), image_size=16, group_size=4,
                  sprites_train=200, sprites_pool=400)
    assert d.num_classes == 18 and d.image_shape == (1, 16, 16)
    assert d.train.u_true.shape == (50, 1) and int(d.train.u_true.max()) < 18
    assert set(np.unique(d.pool_y)) == set(range(18))


def _idx(array):
    head = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                      *array.shape)
    return head + array.astype(">u1").tobytes()


def test_mnist_from_local_files(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 40)):
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(
            _idx(rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)))
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(np.arange(n) % 10))
    d = load_data("mnist", mnist=str(tmp_path), mnist_train=30, mnist_pool=None, group_size=3)
    assert d.image_shape == (1, 28, 28) and len(d.pool_y) == 40
    assert int(d.train.mask.sum()) == 30
    with pytest.raises(ValueError, match="folder"):
        load_data("mnist")
    with pytest.raises(ValueError, match="data must be"):
        load_data("celeba")
