"""The library's exceptions, shared by every layer.

Everything the library raises on purpose derives from :class:`PyroGroupsError`, so
``except PyroGroupsError`` catches all of it; each class also derives from the built-in exception
a caller would expect (``ValueError`` for bad values, ``TypeError`` for wrong kinds, ...). The
checks that raise the argument and data errors live in :mod:`pyro_groups.validation`.
"""
from __future__ import annotations

__all__ = [
    "ArgumentError",
    "ArgumentKeyError",
    "ArgumentTypeError",
    "GroupDataError",
    "PyroGroupsError",
    "TrainingDivergedError",
]


class PyroGroupsError(Exception):
    """Base class of the errors the library raises on purpose."""


class ArgumentError(PyroGroupsError, ValueError):
    """An argument has a value that is not allowed; the message names the argument."""


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument has the wrong type (also a ``ValueError``, so callers may catch either)."""


class ArgumentKeyError(ArgumentError, KeyError):
    """An unknown name (e.g. a factor); also a ``KeyError``, as for a failed lookup."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class GroupDataError(PyroGroupsError, ValueError):
    """Raised for malformed grouped data: shapes, NaNs, empty groups, mask mismatches."""


class TrainingDivergedError(PyroGroupsError, RuntimeError):
    """A loss or a gradient became NaN/inf; the update was not applied, so the parameters (and the
    last checkpoint) hold the last good state."""
