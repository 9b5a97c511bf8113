"""Loaders for the real data files when they are present locally (nothing is downloaded).

* :func:`load_dsprites` -- ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (keys ``imgs``,
  ``latents_classes``, ``latents_values``); the whole image array is read into memory (~3 GB
  as uint8 for the full file).
* :func:`load_shapes3d` -- ``3dshapes.h5`` (datasets ``images`` ``[N, 64, 64, 3]`` uint8 and
  ``labels`` ``[N, 6]``); images are read lazily from the file unless ``in_memory=True``.
* :func:`load_mnist` -- MNIST's idx files (``train-images-idx3-ubyte[.gz]``, ...).

dSprites and 3DShapes become :class:`FileFactorData` (the factor interface, with the images looked
up by their factor classes); MNIST becomes :class:`~pyro_groups.data.digits.LabelledImages`.
"""
from __future__ import annotations

import gzip
import os
import struct
import zipfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from pyro_groups.data.digits import LabelledImages
from pyro_groups.data.factors import FactorDataset, RngLike, as_rng
from pyro_groups.validation import PyroGroupsError, check_choice

DSPRITES_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
DSPRITES_NAMES = ("color", "shape", "scale", "orientation", "pos_x", "pos_y")
SHAPES3D_FILE = "3dshapes.h5"
SHAPES3D_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
_IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataFileError(PyroGroupsError, ValueError):
    """A data file has the wrong format, keys or shapes."""


def _generic_names(n: int) -> tuple[str, ...]:
    return tuple(f"factor_{j}" for j in range(n))


def _existing(path, what: str, hint: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found at {str(p)!r}; {hint}")
    return p


class FileFactorData(FactorDataset):
    """Images stored with their factor classes; ``images(factors)`` looks each row up.

    :param images: ``[N, H, W]`` or ``[N, H, W, C]`` (``channels_last``) array or h5py dataset.
    :param classes: ``[N, F]`` integer factor classes; columns with one class are dropped.
    :param names: factor names ``[F]``.
    :param values: optional ``[N, F]`` physical values of the factors.
    :param max_value: pixel value mapped to 1.
    """

    def __init__(
        self,
        images,
        classes,
        names: Sequence[str],
        values=None,
        *,
        max_value: float = 1.0,
        channels_last: bool = False,
        name: str = "file",
        handle=None,
    ) -> None:
        classes = np.asarray(classes)
        if classes.ndim != 2 or classes.shape[0] != images.shape[0] or classes.shape[0] == 0:
            raise DataFileError(
                f"classes must be [N, F] with N = {images.shape[0]} > 0, got {classes.shape}"
            )
        if not np.issubdtype(classes.dtype, np.integer):
            raise DataFileError(f"{name}: factor classes must be integers, got {classes.dtype}")
        keep = [j for j in range(classes.shape[1]) if classes[:, j].max() > classes[:, j].min()]
        if not keep:
            raise DataFileError(f"{name}: no factor takes more than one value")
        classes = classes[:, keep].astype(np.int64) - classes[:, keep].min(0)
        self.factor_names = tuple(names[j] for j in keep)
        self.factor_sizes = tuple(int(s) for s in classes.max(0) + 1)
        self.classes, self.name, self._handle = classes, name, handle
        self._images, self.max_value, self.channels_last = images, float(max_value), channels_last
        self.lookup = np.full(int(np.prod(self.factor_sizes)), -1, dtype=np.int64)
        flat = np.ravel_multi_index(classes.T, self.factor_sizes)
        uniq, first, counts = np.unique(flat, return_index=True, return_counts=True)
        if (counts > 1).any():
            dup = int(np.argmax(counts > 1))
            rows = np.flatnonzero(flat == uniq[dup])[:2].tolist()
            raise DataFileError(
                f"{name}: {int((counts - 1).sum())} row(s) repeat a factor combination (e.g. rows "
                f"{rows[0]} and {rows[1]} are both {classes[rows[0]].tolist()}); every "
                "combination must name one image"
            )
        self.lookup[flat] = np.arange(classes.shape[0])
        self.complete = bool((self.lookup >= 0).all())
        if values is not None:
            values = np.asarray(values, dtype=np.float64)[:, keep]
            if not np.isfinite(values).all():
                raise DataFileError(f"{name}: the factor values hold NaN/inf entries")
            first = [np.unique(classes[:, j], return_index=True)[1] for j in range(len(keep))]
            self.values = tuple(values[idx, j] for j, idx in enumerate(first))
        shape = tuple(images.shape[1:])
        self.observation_shape = (shape[2], *shape[:2]) if channels_last else (1, *shape)

    def __repr__(self) -> str:
        factors = dict(zip(self.factor_names, self.factor_sizes))
        return f"FileFactorData({self.name!r}, factors={factors})"

    def close(self) -> None:
        """Close the underlying file (h5py), if any."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def sample_factors(self, n: int, rng: RngLike = None) -> np.ndarray:
        """Uniform factor rows; from the stored rows when the file does not hold the full grid."""
        g = as_rng(rng)
        if self.complete:
            return super().sample_factors(n, g)
        return self.classes[g.integers(0, len(self.classes), n)]

    def row_index(self, factors) -> np.ndarray:
        """The stored rows of factor rows ``[n, F]``; ``KeyError`` for absent combinations."""
        f = self.check_factors(factors)
        if not f.size:
            return np.zeros(0, np.int64)
        rows = self.lookup[np.ravel_multi_index(f.T, self.factor_sizes)]
        if (rows < 0).any():
            absent = f[np.argmax(rows < 0)].tolist()
            raise KeyError(f"factor combination {absent} is not in {self.name}")
        return rows

    def images(self, factors) -> torch.Tensor:
        """Images ``[n, C, H, W]`` (float32 in ``[0, 1]``) of factor rows ``[n, F]``."""
        rows = self.row_index(factors)
        if isinstance(self._images, np.ndarray):
            data = self._images[rows]
        else:  # h5py wants increasing, unique indices
            uniq, inverse = np.unique(rows, return_inverse=True)
            if uniq.size:
                data = self._images[uniq][inverse]
            else:
                data = np.zeros((0, *self._images.shape[1:]), np.uint8)
        x = torch.as_tensor(np.ascontiguousarray(data)).to(torch.float32) / self.max_value
        return x.permute(0, 3, 1, 2).contiguous() if self.channels_last else x.unsqueeze(1)


def load_dsprites(path=DSPRITES_FILE) -> FileFactorData:
    """Load the dSprites ``.npz`` (the constant ``color`` factor is dropped: 5 factors remain)."""
    hint = (
        f"get {DSPRITES_FILE} from https://github.com/deepmind/dsprites-dataset "
        "or use pyro_groups.data.Sprites() (procedural)"
    )
    p = _existing(path, "dSprites file", hint)
    try:
        npz = np.load(p, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise DataFileError(f"{p} is not a readable .npz file: {e}") from e
    with npz:
        missing = {"imgs", "latents_classes"} - set(npz.files)
        if missing:
            raise DataFileError(f"{p} lacks key(s) {sorted(missing)}; it has {sorted(npz.files)}")
        imgs, classes = npz["imgs"], npz["latents_classes"]
        values = npz["latents_values"] if "latents_values" in npz.files else None
    n = imgs.shape[0]
    if imgs.ndim != 3:
        raise DataFileError(f"imgs must be [N, H, W], got {imgs.shape}")
    if classes.ndim != 2 or classes.shape[0] != n or not np.issubdtype(classes.dtype, np.integer):
        raise DataFileError(
            f"latents_classes must be integer [{n}, F], got {classes.shape} {classes.dtype}"
        )
    if values is not None and values.shape != classes.shape:
        raise DataFileError(f"latents_values must have shape {classes.shape}, got {values.shape}")
    names = DSPRITES_NAMES if classes.shape[1] == 6 else _generic_names(classes.shape[1])
    max_value = 1.0 if imgs[:1000].max(initial=0) <= 1 else 255.0
    return FileFactorData(imgs, classes, names, values, max_value=max_value, name=p.name)


def load_shapes3d(path=SHAPES3D_FILE, *, in_memory: bool = False) -> FileFactorData:
    """Load ``3dshapes.h5``; factor classes are the ranks of each label column's distinct values.

    :param in_memory: read all images at once (~5.9 GB for the full file) instead of on demand.
    """
    import h5py

    hint = (
        f"get {SHAPES3D_FILE} from https://github.com/deepmind/3d-shapes "
        "or use pyro_groups.data.Shapes3D() (procedural)"
    )
    p = _existing(path, "3DShapes file", hint)
    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise DataFileError(f"{p} is not a readable HDF5 file: {e}") from e
    try:
        missing = {"images", "labels"} - set(f.keys())
        if missing:
            raise DataFileError(
                f"{p} lacks dataset(s) {sorted(missing)}; it has {sorted(f.keys())}"
            )
        images, labels = f["images"], f["labels"][()]
        n = images.shape[0]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise DataFileError(f"images must be [N, H, W, 3], got {images.shape}")
        if labels.ndim != 2 or labels.shape[0] != n:
            raise DataFileError(f"labels must be [{n}, F], got {labels.shape}")
        if labels.dtype.kind not in "biuf":
            raise DataFileError(f"labels must be numbers, got dtype {labels.dtype}")
        bad = ~np.isfinite(labels)
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise DataFileError(
                f"{p}: labels hold {int(bad.sum())} NaN/inf value(s) (first at row {row}, column "
                f"{col}); a missing label cannot be a factor class"
            )
        ranks = [np.unique(np.round(c, 6), return_inverse=True)[1].reshape(-1) for c in labels.T]
        classes = np.stack(ranks, 1)
        names = SHAPES3D_NAMES if labels.shape[1] == 6 else _generic_names(labels.shape[1])
        max_value = 255.0 if images.dtype == np.uint8 else 1.0
        if in_memory:
            images = images[()]
            f.close()
        handle = None if in_memory else f
        return FileFactorData(
            images, classes, names, labels, max_value=max_value, channels_last=True,
            name=p.name, handle=handle,
        )
    except BaseException:
        f.close()
        raise


def read_idx(path) -> np.ndarray:
    """Read an idx file (MNIST's format), gzipped or not: big-endian header, then the array."""
    p = Path(path)
    with open(p, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_TYPES:
        raise DataFileError(f"{p} is not an idx file (magic bytes {raw[:4].hex()})")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataFileError(f"{p} is truncated (header)")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    body = raw[4 + 4 * ndim :]
    if len(body) != int(np.prod(dims)) * dtype.itemsize:
        raise DataFileError(
            f"{p}: header promises shape {dims} but the file holds {len(body)} bytes of data"
        )
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _find(directory: Path, stem: str) -> Optional[Path]:
    dotted = stem.replace("-idx", ".idx")  # e.g. train-images.idx3-ubyte
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def load_mnist(directory=".", split: str = "train") -> LabelledImages:
    """Load MNIST (or a set in its idx format) from ``directory``: images ``[N, 1, 28, 28]``.

    :param split: ``"train"`` (``train-images-idx3-ubyte``) or ``"test"`` (``t10k-...``).
    """
    check_choice(split, "split", ("train", "test"))
    d = Path(os.fspath(directory)).expanduser()
    prefix = "train" if split == "train" else "t10k"
    kinds = ("images-idx3-ubyte", "labels-idx1-ubyte")
    found = {kind: _find(d, f"{prefix}-{kind}") for kind in kinds}
    for kind, p in found.items():
        if p is None:
            raise FileNotFoundError(f"MNIST file {prefix}-{kind}[.gz] not found in {str(d)!r}")
    images, labels = read_idx(found["images-idx3-ubyte"]), read_idx(found["labels-idx1-ubyte"])
    if images.ndim != 3:
        raise DataFileError(f"MNIST images must be [N, H, W], got {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataFileError(f"MNIST labels must be [{images.shape[0]}], got {labels.shape}")
    return LabelledImages(images, labels.astype(np.int64), max_value=255.0, name=f"mnist-{split}")
