"""Input checks shared by every public entry point: one function per kind of input.

Each check takes the value and the *name* of the argument it came from, returns the value
normalised (a Python ``int`` / ``float``, a ``torch.device``, a numpy array ...) and raises one of
the library's errors, whose message names the argument, says what was expected and shows what
was given::

    num_groups = check_int(num_groups, "num_groups", min=1)
    noise = check_float(noise, "noise", min=0.0)
    x = check_tensor(x, "x", floating=True, min_dim=2)

The errors (defined in :mod:`pyro_groups.errors` and re-exported here; all subclasses of
:class:`PyroGroupsError`, so ``except PyroGroupsError`` catches everything the library raises on
purpose):

* :class:`ArgumentError` (a ``ValueError``): a value out of range, a wrong choice, a non-finite
  number;
* :class:`ArgumentTypeError` (an ``ArgumentError`` *and* a ``TypeError``): a value of the wrong
  kind, e.g. a ``bool`` or ``10.5`` where a count is needed;
* :class:`ArgumentKeyError` (an ``ArgumentError`` *and* a ``KeyError``): an unknown name;
* :class:`GroupDataError` (a ``ValueError``): malformed grouped data (shapes, masks, NaN, empty
  groups); raised by :func:`pyro_groups.data.check_group_inputs` and the data constructors.

Booleans are never accepted as numbers: ``split(True)`` is a mistake, not a count of one.
"""
from __future__ import annotations

import math
import numbers
import operator
import os
from pathlib import Path
from typing import Any, Collection, Optional, Sequence, TypeVar

import numpy as np
import torch

from pyro_groups.errors import (
    ArgumentError,
    ArgumentKeyError,
    ArgumentTypeError,
    GroupDataError,
    PyroGroupsError,
)

__all__ = [
    "ArgumentError",
    "ArgumentKeyError",
    "ArgumentTypeError",
    "GroupDataError",
    "PyroGroupsError",
    "check_choice",
    "check_device",
    "check_finite_array",
    "check_float",
    "check_int",
    "check_output_dir",
    "check_positive_float",
    "check_positive_int",
    "check_probability",
    "check_tensor",
]

T = TypeVar("T")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_bool(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return True
    return isinstance(value, torch.Tensor) and value.dtype == torch.bool


def _range_text(lo: Any, hi: Any, lo_open: bool = False, hi_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo}"
    return f"{'<' if hi_open else '<='} {hi}"


def check_int(
    value: Any, name: str, *, min: Optional[int] = None, max: Optional[int] = None
) -> int:
    """``value`` as a Python ``int`` in ``[min, max]``.

    Accepts ``int``, numpy integers and 0-d integer tensors; rejects ``bool``, floats (also
    ``10.0``), strings and ``None``.

    :raises ArgumentTypeError: if ``value`` is not an integer.
    :raises ArgumentError: if it is out of range.
    """
    if _is_bool(value):
        raise ArgumentTypeError(f"{name} must be an integer, got the bool {value!r}")
    try:
        out = operator.index(value)
    except TypeError:
        raise ArgumentTypeError(
            f"{name} must be an integer, got {_show(value)} ({type(value).__name__})"
        ) from None
    if (min is not None and out < min) or (max is not None and out > max):
        raise ArgumentError(f"{name} must be an integer {_range_text(min, max)}, got {out}")
    return int(out)


def check_positive_int(value: Any, name: str) -> int:
    """``value`` as an ``int >= 1`` (a count or a size); see :func:`check_int`."""
    return check_int(value, name, min=1)


def check_float(
    value: Any,
    name: str,
    *,
    min: Optional[float] = None,
    max: Optional[float] = None,
    min_open: bool = False,
    max_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """``value`` as a finite Python ``float`` in the given range (``min_open``: ``> min``).

    Accepts real numbers (``int``, ``float``, numpy scalars, 0-d tensors); rejects ``bool``,
    ``None``, strings and NaN, and infinities unless ``allow_inf``.

    :raises ArgumentTypeError: if ``value`` is not a real number.
    :raises ArgumentError: if it is NaN, infinite or out of range.
    """
    if _is_bool(value):
        raise ArgumentTypeError(f"{name} must be a number, got the bool {value!r}")
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if not isinstance(value, numbers.Real):
        raise ArgumentTypeError(
            f"{name} must be a real number, got {_show(value)} ({type(value).__name__})"
        )
    out = float(value)
    if math.isnan(out) or (math.isinf(out) and not allow_inf):
        raise ArgumentError(f"{name} must be a finite number, got {out}")
    below = min is not None and (out <= min if min_open else out < min)
    above = max is not None and (out >= max if max_open else out > max)
    if below or above:
        raise ArgumentError(
            f"{name} must be {_range_text(min, max, min_open, max_open)}, got {out}"
        )
    return out


def check_positive_float(value: Any, name: str) -> float:
    """``value`` as a finite ``float > 0`` (a scale, a learning rate, a noise level)."""
    return check_float(value, name, min=0.0, min_open=True)


def check_probability(value: Any, name: str, *, open: bool = False) -> float:
    """``value`` as a ``float`` in ``[0, 1]`` (``open=True``: in ``(0, 1)``, e.g. a split)."""
    return check_float(value, name, min=0.0, max=1.0, min_open=open, max_open=open)


def check_choice(value: T, name: str, choices: Collection[T]) -> T:
    """``value`` if it is one of ``choices``; the error lists them.

    :raises ArgumentError: naming ``name``, the value and the allowed choices.
    """
    try:
        ok = value in choices
    except TypeError:  # unhashable value against a set or dict
        ok = False
    if not ok:
        listed: list[Any] = list(choices)
        shown = ", ".join(repr(c) for c in (sorted(listed) if _sortable(listed) else listed))
        raise ArgumentError(f"unknown {name} {_show(value)}: {name} must be one of {shown}")
    return value


def _sortable(choices: Collection[Any]) -> bool:
    try:
        sorted(choices)
    except TypeError:
        return False
    return True


def check_finite_array(
    value: Any,
    name: str,
    *,
    ndim: Optional[int | Sequence[int]] = None,
    numeric: bool = True,
    allow_empty: bool = False,
) -> np.ndarray:
    """``value`` (array-like or tensor on any device) as a numpy array with finite entries.

    :param ndim: the allowed number(s) of dimensions.
    :param numeric: require a numeric (bool, integer or floating) dtype.
    :param allow_empty: accept an array with no entries.
    :raises ArgumentTypeError: for a non-numeric array when ``numeric``.
    :raises ArgumentError: for a wrong number of dimensions, no entries, or NaN / inf entries
        (the message counts them and gives the first position).
    """
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:  # e.g. ragged nested lists
        raise ArgumentTypeError(f"{name} must be an array, got {_show(value)}: {e}") from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ArgumentError(f"{name} must be {want}, got shape {arr.shape}")
    if numeric and arr.dtype.kind not in "biuf":
        raise ArgumentTypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    if arr.size == 0 and not allow_empty:
        raise ArgumentError(f"{name} is empty (shape {arr.shape})")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ArgumentError(
                f"{name} has {int(bad.sum())} non-finite (NaN/inf) value(s), the first at "
                f"index {first}"
            )
    return arr


def check_tensor(
    value: Any,
    name: str,
    *,
    dim: Optional[int] = None,
    min_dim: Optional[int] = None,
    shape: Optional[Sequence[Optional[int]]] = None,
    dtype: Optional[torch.dtype] = None,
    floating: bool = False,
    device: Optional[torch.device | str] = None,
    error: type[PyroGroupsError] = ArgumentError,
) -> torch.Tensor:
    """Check that ``value`` is a tensor of the given kind, and return it.

    :param dim: exact number of dimensions; ``min_dim`` a lower bound.
    :param shape: expected shape, ``None`` entries match any size (e.g. ``(None, 2)``).
    :param dtype: exact dtype; ``floating`` any floating dtype.
    :param device: the device it must be on.
    :param error: the class raised for wrong values (e.g. :class:`GroupDataError` for data);
        a value that is not a tensor at all raises :class:`ArgumentTypeError`.
    """
    if not isinstance(value, torch.Tensor):
        hint = " (convert it with torch.as_tensor)" if isinstance(value, np.ndarray) else ""
        raise ArgumentTypeError(
            f"{name} must be a torch.Tensor, got {type(value).__name__}{hint}"
        )
    if dim is not None and value.dim() != dim:
        raise error(f"{name} must have {dim} dimension(s), got shape {tuple(value.shape)}")
    if min_dim is not None and value.dim() < min_dim:
        raise error(
            f"{name} must have at least {min_dim} dimension(s), got shape {tuple(value.shape)}"
        )
    if shape is not None:
        ok = value.dim() == len(shape) and all(
            s is None or s == t for s, t in zip(shape, value.shape)
        )
        if not ok:
            want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
            raise error(f"{name} must have shape {want}, got {list(value.shape)}")
    if dtype is not None and value.dtype != dtype:
        raise error(f"{name} must have dtype {dtype}, got {value.dtype}")
    if floating and not value.is_floating_point():
        raise error(f"{name} must be a floating-point tensor, got {value.dtype}")
    if device is not None and value.device != torch.device(device):
        raise error(f"{name} is on {value.device} but must be on {torch.device(device)}")
    return value


def check_device(
    device: Any, name: str = "device", *, allow_meta: bool = False
) -> torch.device:
    """``device`` (a string, a ``torch.device`` or ``None`` for CPU) as a usable ``torch.device``.

    :raises ArgumentError: for a name torch does not know (``"banana"``), a CUDA / MPS device
        this machine does not have, a CUDA index beyond the device count, or ``"meta"`` (which
        holds no data) unless ``allow_meta``.
    """
    if device is None:
        return torch.device("cpu")
    if not isinstance(device, (str, torch.device)):
        raise ArgumentTypeError(
            f"{name} must be a string or a torch.device, got {type(device).__name__}"
        )
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise ArgumentError(
            f"{name}={device!r} is not a device torch knows (e.g. 'cpu', 'cuda', 'cuda:1'): "
            f"{str(e).splitlines()[0]}"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ArgumentError(f"{name}={device!r} but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ArgumentError(
                f"{name}={device!r} but this machine has {torch.cuda.device_count()} CUDA "
                "device(s)"
            )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ArgumentError(f"{name}={device!r} but MPS is not available on this machine")
    if dev.type == "meta" and not allow_meta:
        raise ArgumentError(f"{name}='meta' holds no data; use 'cpu' or 'cuda'")
    return dev


def check_output_dir(path: Any, name: str = "out") -> Path:
    """``path`` as a ``Path`` that is, or can be created as, a folder (nothing is created).

    :raises ArgumentError: if ``path`` or one of its parents exists and is not a folder.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(f"{name} must be a path, got {type(path).__name__}")
    p = Path(path).expanduser()
    for q in (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                what = "is" if q == p else f"is inside {str(q)!r}, which is"
                raise ArgumentError(f"{name}={str(p)!r} {what} an existing file, not a folder")
            break
    return p
