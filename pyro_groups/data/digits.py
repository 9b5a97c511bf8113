"""Labelled image sets as factor data sets, and scikit-learn's 8x8 digits (shipped, no download).

A labelled set has two factors: ``label`` (the class) and ``example`` (the position of an image
among the images of its class; ``factor_sizes[1]`` is the largest class's count and rows beyond
a smaller class's count wrap around, so every factor row names an image; ``sample_factors`` draws
only in-range rows). ``example`` is not a generative factor: give metrics ``factors[:, :1]``.
Grouping by label is ``group_by_factors(data, ["label"], ...)`` (resampling) or
:meth:`LabelledImages.partition` (each image exactly once).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from pyro_groups.data.dataset import GroupedData
from pyro_groups.data.factors import FactorDataset, RngLike, as_rng
from pyro_groups.validation import ArgumentError, check_int, check_positive_float


class LabelledImages(FactorDataset):
    """Images with a class label, seen through the factor interface (``label``, ``example``).

    :param images: ``[N, H, W]`` or ``[N, C, H, W]``, uint8 or float.
    :param labels: ``[N]`` integer classes ``0 .. num_classes - 1``.
    :param max_value: the pixel value mapped to 1 (255 for uint8 images by default, else 1).
    :param num_classes: number of classes (``labels.max() + 1`` by default); each must occur.
    :raises ValueError: on mismatched lengths, bad shapes or an empty class.
    """

    factor_names = ("label", "example")

    def __init__(
        self,
        images,
        labels,
        *,
        max_value: Optional[float] = None,
        num_classes: Optional[int] = None,
        name: str = "images",
    ) -> None:
        imgs = torch.as_tensor(np.asarray(images))
        labels = np.asarray(labels)
        if imgs.dim() == 3:
            imgs = imgs.unsqueeze(1)
        if imgs.dim() != 4:
            raise ArgumentError(
                f"images must be [N, H, W] or [N, C, H, W], got {tuple(imgs.shape)}"
            )
        if labels.ndim != 1 or labels.shape[0] != imgs.shape[0]:
            raise ArgumentError(f"labels must be [N] with N = {imgs.shape[0]}, got {labels.shape}")
        if labels.size == 0 or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
            raise ArgumentError(
                f"labels must be non-empty non-negative integers, got dtype {labels.dtype}"
            )
        if imgs.is_floating_point() and not bool(torch.isfinite(imgs).all()):
            raise ArgumentError("images hold NaN/inf pixel values")
        if num_classes is not None:
            num_classes = check_int(num_classes, "num_classes", min=1)
        self.num_classes = int(num_classes if num_classes is not None else labels.max() + 1)
        counts = np.bincount(labels, minlength=self.num_classes)
        if len(counts) > self.num_classes or (counts == 0).any():
            raise ArgumentError(
                f"every class 0..{self.num_classes - 1} needs an image; counts {counts.tolist()}"
            )
        self.name = name
        self._images = imgs
        if max_value is None:
            max_value = 255.0 if imgs.dtype == torch.uint8 else 1.0
        self.max_value = check_positive_float(max_value, "max_value")
        self.labels = labels.astype(np.int64)
        self.order = np.argsort(self.labels, kind="stable")  # image indices sorted by label
        self.counts = counts.astype(np.int64)
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.factor_sizes = (self.num_classes, int(counts.max()))
        self.observation_shape = tuple(imgs.shape[1:])

    def __repr__(self) -> str:
        return f"LabelledImages({self.name!r}, n={self.num_images}, shape={self.observation_shape})"

    @property
    def num_images(self) -> int:
        return self._images.shape[0]

    def sample_factors(self, n: int, rng: RngLike = None) -> np.ndarray:
        """Uniform labels, and an ``example`` uniform among the images of each row's label."""
        g = as_rng(rng)
        label = g.integers(0, self.num_classes, size=n)
        example = np.floor(g.random(n) * self.counts[label]).astype(np.int64)
        return np.stack([label, example], 1).astype(np.int64)

    def image_index(self, factors) -> np.ndarray:
        """Indices into the stored images of factor rows ``[n, 2]``."""
        f = self.check_factors(factors)
        label = f[:, 0]
        return self.order[self.starts[label] + f[:, 1] % self.counts[label]]

    def images(self, factors) -> torch.Tensor:
        """Images ``[n, C, H, W]`` (float32 in ``[0, 1]``) of factor rows ``[n, 2]``."""
        return self.images_at(self.image_index(factors))

    def images_at(self, index) -> torch.Tensor:
        """Images ``[n, C, H, W]`` (float32 in ``[0, 1]``) at stored indices."""
        x = self._images[torch.as_tensor(index, dtype=torch.long)]
        return x.to(torch.float32) / self.max_value

    def partition(
        self, group_size: int = 8, *, rng: RngLike = None, shuffle: bool = True
    ) -> GroupedData:
        """Every image exactly once, in groups of one label of at most ``group_size`` (the last
        group of each label may be smaller).

        :returns: :class:`GroupedData` with ``u_true`` = label ``[G, 1]`` and ``v_true`` = the
            image's ``example`` class ``[G, K, 1]``.
        """
        group_size = check_int(group_size, "group_size", min=1)
        g = as_rng(rng)
        groups, labels, examples = [], [], []
        for label in range(self.num_classes):
            ex = np.arange(self.counts[label])
            if shuffle:
                ex = g.permutation(ex)
            for start in range(0, ex.size, group_size):
                chunk = ex[start : start + group_size]
                groups.append(self.order[self.starts[label] + chunk])
                labels.append(label)
                examples.append(torch.as_tensor(chunk).unsqueeze(-1))
        if shuffle:
            perm = g.permutation(len(groups))
            groups = [groups[i] for i in perm]
            labels = [labels[i] for i in perm]
            examples = [examples[i] for i in perm]
        return GroupedData.from_groups(
            [self.images_at(ix) for ix in groups],
            u_true=torch.as_tensor(labels).unsqueeze(-1),
            v_true=examples,
        )


def digits() -> LabelledImages:
    """scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels scaled to ``[0, 1]``), from
    the copy inside the installed package (``sklearn.datasets.load_digits``; no download)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float32)
    return LabelledImages(images, bunch.target, max_value=16.0, name="digits")
