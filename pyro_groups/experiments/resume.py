"""Resumable grids of runs: each finished run is saved as ``<folder>/<index>.json``, and a later
call with the same grid and the same run settings skips the runs found there.

A run matches when its saved ``index`` is in range, every field of the job's key equals the
saved row's, and its saved ``"settings"`` equal this call's (the configuration fields that change
what one run computes: steps, data sizes, architecture, estimators). A run of another grid, or of
the same grid with other settings (e.g. a different ``--steps``), is trained again.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from pyro_groups.experiments.environment import json_safe

__all__ = ["finished_runs", "run_settings", "save_run"]


def run_settings(cfg: Any, exclude: Sequence[str]) -> dict[str, Any]:
    """The JSON-safe fields of the dataclass ``cfg`` except ``exclude`` (the grid's axes and the
    fields that do not change a run's numbers, such as ``workers`` or ``figures``)."""
    from dataclasses import asdict

    return json_safe({k: v for k, v in asdict(cfg).items() if k not in set(exclude)})


def save_run(folder: str | Path, index: int, row: Mapping[str, Any],
             settings: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``row`` with its ``index`` and ``settings`` to ``folder/<index>.json``; return the
    JSON-safe row written."""
    out = json_safe({**row, "index": index, "settings": dict(settings)})
    (Path(folder) / f"{index}.json").write_text(json.dumps(out, allow_nan=False))
    return out


def finished_runs(folder: str | Path, keys: Sequence[Mapping[str, Any]],
                  settings: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """The saved runs of ``folder`` that match ``keys[index]`` and ``settings`` (see the module
    docstring), by index; unreadable files are ignored."""
    done: dict[int, dict[str, Any]] = {}
    wanted = json_safe(dict(settings))
    for path in Path(folder).glob("*.json"):
        try:
            row = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        i = row.get("index", -1)
        if not isinstance(i, int) or not 0 <= i < len(keys) or row.get("settings") != wanted:
            continue
        if all(row.get(k) == v for k, v in json_safe(dict(keys[i])).items()):
            done[i] = row
    return done
