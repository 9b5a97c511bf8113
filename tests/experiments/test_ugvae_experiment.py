"""The UG-VAE experiments' pieces: data pools (digits and a local MNIST), structured batches,
features, classifiers, grids, and the report's verdicts on hand-made rows."""
import struct
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from pyro_groups.experiments import ugvae as ex
from pyro_groups.experiments import ugvae_report as report
from pyro_groups.experiments import ugvae_tasks as tasks
from pyro_groups.models import UGVAE
from pyro_groups.nn_conv import ConvDecoder


def write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(">u1").tobytes())


def test_pools_are_disjoint_digits_or_a_local_mnist(tmp_path):
    pools = ex.images_and_labels(ex.Config())
    assert {k: len(v[1]) for k, v in pools.items()} == {"train": 1198, "classifier": 599}
    flat = {k: {tuple(x.flatten().tolist()) for x in v[0]} for k, v in pools.items()}
    assert not flat["train"] & flat["classifier"]
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte",
                  rng.integers(0, 256, (n, 28, 28)).astype(np.uint8))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    mnist = ex.images_and_labels(replace(ex.Config(), mnist=str(tmp_path), mnist_train=30))
    assert mnist["train"][0].shape == (30, 1, 28, 28)
    assert mnist["classifier"][0].shape == (20, 1, 28, 28)


def test_structured_batches_hold_what_their_class_says():
    labels = np.arange(200) % 10
    index, y = tasks.structured_batches(labels, "low_high", 16, 5, np.random.default_rng(0))
    assert index.shape == (15, 16) and y.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    assert (labels[index[y == 0]] < 5).all() and (labels[index[y == 1]] >= 5).all()
    assert all(len(set(row)) == 16 for row in index)  # no image twice in a batch
    index, y = tasks.structured_batches(labels, "even_odd", 16, 5, np.random.default_rng(0))
    assert (labels[index[y == 0]] % 2 == 0).all() and (labels[index[y == 1]] % 2 == 1).all()
    with pytest.raises(ValueError, match="fewer than 150 images"):
        tasks.structured_batches(labels, "low_high", 150, 2, np.random.default_rng(0))


def test_mean_image_features_and_separable_classes():
    images = torch.arange(40.0).view(10, 1, 2, 2)
    feats = tasks.batch_features(None, images, np.array([[0, 1], [2, 3]]))
    # image i holds 4i .. 4i + 3: the mean of images i and i + 1 is image i + 2
    assert_close(torch.as_tensor(feats["mean_image"]), images[[0, 2]].flatten(1) + 2.0)
    x = np.r_[np.random.default_rng(0).normal(0, 0.1, (20, 2)),
              np.random.default_rng(1).normal(5, 0.1, (20, 2))]
    y = np.repeat([0, 1], 20)
    scores = tasks.classify(x, y, x + 0.01, y)
    assert scores == {"linear_svm": (1.0, 1.0), "rbf_svm": (1.0, 1.0)}
    assert tasks.separability(x, y) == 1.0


def test_sampling_grid_moves_z_around_the_cluster_mean():
    model = UGVAE(ConvDecoder(2, 3, image_size=8), 4)
    seen = {}
    model.decoder.mean = lambda u, v: seen.update(u=u, v=v) or torch.zeros(*v.shape[:2], 1, 8, 8)
    grid = tasks.sampling_grid(model, 2, rows=3, cols=5)
    assert grid.shape == (3, 5, 1, 8, 8)
    u, v = seen["u"], seen["v"]
    assert_close(u[:, 0, 0], torch.tensor([-1.0, 0.0, 1.0]))
    mu = model.mixture(u[:, 0])[0][:, 2]
    assert_close(v[:, 2], mu)  # the middle column is mu_d(beta)
    assert_close(v[:, -1] - v[:, 0], torch.full((3, 3), 6.0))  # +-3 on every dimension
    tasks.sampling_grid(model, None, rows=3, cols=5)
    assert_close(seen["v"][:, 2], torch.zeros(3, 3))  # no mixture: around the prior mean


def test_grid_effects_measure_rows_and_columns_apart():
    rows = torch.arange(3.0).view(3, 1, 1, 1, 1).expand(3, 4, 1, 2, 2)  # row r is all r
    assert tasks.grid_effects(rows) == {"beta_effect": 2.0, "z_effect": 0.0}
    assert tasks.grid_effects(rows.transpose(0, 1)) == {"beta_effect": 0.0, "z_effect": 2.0}


def _row(task, model, size, mean, features="posterior_mean", std=0.01):
    acc = {"mean": mean, "std": std, "n": 3}
    return {"task": task, "classifier": "rbf_svm", "model": model, "batch_size": size,
            "features": "mean_image" if model == "mean_image" else features,
            "train_accuracy": acc, "test_accuracy": acc, "paper": None}


def test_a_claim_holds_only_where_ugvae_beats_the_mean_image():
    rows = [_row("low_high", "ugvae", 8, 0.9), _row("low_high", "mean_image", 8, 0.7),
            _row("low_high", "ugvae", 128, 0.99), _row("low_high", "mean_image", 128, 1.0),
            _row("low_high", "mlvae", 8, 0.6), _row("low_high", "ugvae_k1", 8, 0.92, std=0.2)]
    found = {(f["claim"].split(":")[0][:20], f.get("batch_size")): f
             for f in report.findings(rows, [], [])}
    small = found[("UG-VAE's beta tells ", 8)]
    assert small["reproduced"] and small["beyond_noise"] and not small["saturated"]
    big = found[("UG-VAE's beta tells ", 128)]
    assert not big["reproduced"] and big["saturated"]
    mixture = found[("global factors need ", 8)]  # K=1 is higher, but within its noise
    assert not mixture["reproduced"] and mixture["beyond_noise"] is False
    assert mixture["beats_mean_image"] is True
    assert "saturated" in report.describe(big)
    table = report.format_rst(rows)
    assert "mean image" in table and "0.90 ± 0.01" in table


def test_json_safe():
    out = report.json_safe({"a": np.arange(3), "b": (np.float32(1.5), float("nan")),
                            "c": np.int64(2)})
    assert out == {"a": [0, 1, 2], "b": [1.5, None], "c": 2}
