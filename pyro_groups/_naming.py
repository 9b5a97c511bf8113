"""Unique default names for Pyro modules that may coexist in one process.

Two ``PyroModule`` s with the same name share entries of Pyro's global parameter store, and
training one then silently trains neither. Every model and guide gets a fresh name by default.
"""
from __future__ import annotations

import itertools
from typing import Optional

_counter = itertools.count()


def unique_name(prefix: str, name: Optional[str] = None) -> str:
    """``name`` if given, else ``f"{prefix}{n}"`` with a process-wide counter."""
    return name if name is not None else f"{prefix}{next(_counter)}"
