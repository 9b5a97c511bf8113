"""Exceptions shared by several layers of the library (imported by training and the adversaries)."""
from __future__ import annotations


class TrainingDivergedError(RuntimeError):
    """A loss or a gradient became NaN/inf; the update was not applied, so the parameters (and the
    last checkpoint) hold the last good state."""
