"""The data of the ML-VAE experiments: grouped training images and a held-out pool of labelled
images, from scikit-learn's digits (default), procedural sprites or local MNIST files.

- ``digits``: the 1,797 8x8 digits split per class into training images and a held-out pool
  (``test_fraction``); training groups hold images of one digit (content = the digit label).
- ``sprites``: :class:`~pyro_groups.data.Sprites` at ``image_size``; training groups from
  :func:`~pyro_groups.data.group_by_factors` share the ``shared`` factors (shape, or shape and
  scale) and draw the rest; the pool is drawn uniformly; a class is a combination of the shared
  factors' values.
- ``mnist``: :func:`~pyro_groups.data.load_mnist` from a local folder; ``mnist_train`` images of
  the training file (random, per class in proportion) grouped by label, and ``mnist_pool`` images
  of the test file as the pool (the paper: all 50,000 / 10,000).

The pool is also cut into test groups of one class (``test_group_size``) for the figures, the
reconstruction likelihoods and the non-amortised baseline's test-time inference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from pyro_groups.data.dataset import GroupedData
from pyro_groups.data.digits import LabelledImages, digits
from pyro_groups.data.factors import group_by_factors
from pyro_groups.data.loaders import load_mnist
from pyro_groups.data.sprites import Sprites
from pyro_groups.validation import ArgumentError

__all__ = ["DATA_SETS", "MLVAEData", "load_data", "stratified_split"]

DATA_SETS = ("digits", "sprites", "mnist")


@dataclass
class MLVAEData:
    """Training groups, the held-out pool and its test groups.

    :ivar train: groups of one class, ``u_true`` = the class ``[G, 1]``.
    :ivar train_labels: the class of every training image, in the order of ``train.x[train.mask]``.
    :ivar pool_x: held-out images ``[n, C, H, W]``.
    :ivar pool_y: their classes ``[n]``.
    :ivar test: the pool cut into groups of one class.
    :ivar num_classes: number of classes.
    """

    name: str
    train: GroupedData
    train_labels: np.ndarray
    pool_x: torch.Tensor
    pool_y: np.ndarray
    test: GroupedData
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.pool_x.shape[1:])


def stratified_split(
    labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(kept, held_out)``: per class, a random ``fraction`` is held out."""
    if not 0.0 < fraction < 1.0:
        raise ArgumentError(f"the held-out fraction must be in (0, 1), got {fraction}")
    kept, out = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_out = int(round(fraction * len(idx)))
        out.append(idx[:n_out])
        kept.append(idx[n_out:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(out))


def _by_label(x: torch.Tensor, y: np.ndarray, size: int, rng, num_classes: int) -> GroupedData:
    return LabelledImages(x, y, num_classes=num_classes).partition(size, rng=rng)


def _subsample(labels: np.ndarray, n: Optional[int], rng) -> np.ndarray:
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    return stratified_split(labels, n / len(labels), rng)[1]


def load_data(
    name: str = "digits",
    *,
    seed: int = 0,
    test_fraction: float = 0.5,
    group_size: int = 8,
    test_group_size: int = 8,
    mnist: Optional[str] = None,
    mnist_train: Optional[int] = 10_000,
    mnist_pool: Optional[int] = 2_000,
    shared: Sequence[str] = ("shape",),
    image_size: int = 32,
    sprites_train: int = 4_000,
    sprites_pool: int = 2_000,
) -> MLVAEData:
    """The data of one run (the same for every seed of a run; ``seed`` is the data seed)."""
    if name not in DATA_SETS:
        raise ArgumentError(f"data must be one of {DATA_SETS}, got {name!r}")
    rng = np.random.default_rng(seed)
    if name == "sprites":
        sprites = Sprites(image_size)
        cols = [sprites.factor_index(f) for f in shared]
        sizes = [sprites.factor_sizes[c] for c in cols]
        train = group_by_factors(sprites, cols, -(-sprites_train // group_size), group_size,
                                 rng=rng)
        classes = np.ravel_multi_index(train.u_true.numpy().T, sizes)
        train = GroupedData(train.x, train.mask, torch.as_tensor(classes)[:, None], train.v_true)
        train_labels = np.repeat(classes, train.mask.sum(-1).numpy())
        factors = sprites.sample_factors(sprites_pool, rng)
        pool_x = sprites.images(factors)
        pool_y = np.ravel_multi_index(factors[:, cols].T, sizes)
        num_classes = int(np.prod(sizes))
    else:
        if name == "digits":
            data = digits()
            x_all, y_all = data.images_at(np.arange(data.num_images)), data.labels
            kept, held = stratified_split(y_all, test_fraction, rng)
            x_tr, y_tr, pool_x, pool_y = x_all[kept], y_all[kept], x_all[held], y_all[held]
        else:
            if mnist is None:
                raise ArgumentError("data='mnist' needs the folder of the MNIST idx files (mnist=)")
            tr, te = load_mnist(mnist, "train"), load_mnist(mnist, "test")
            i_tr = _subsample(tr.labels, mnist_train, rng)
            i_te = _subsample(te.labels, mnist_pool, rng)
            x_tr, y_tr = tr.images_at(i_tr), tr.labels[i_tr]
            pool_x, pool_y = te.images_at(i_te), te.labels[i_te]
        num_classes = int(max(y_tr.max(), pool_y.max())) + 1
        train = _by_label(x_tr, y_tr, group_size, rng, num_classes)
        train_labels = np.repeat(train.u_true[:, 0].numpy(), train.mask.sum(-1).numpy())
    test = _by_label(pool_x, pool_y, test_group_size, rng, num_classes)
    return MLVAEData(name, train, train_labels, pool_x, np.asarray(pool_y, dtype=np.int64), test,
                     num_classes)
