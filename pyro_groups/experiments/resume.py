"""Resumable grids of runs: each finished run is saved as one JSON file named after its job's
key, and a later call with the same run settings skips the jobs found there.

A saved run matches a job when every field of the job's key (e.g. model, hyper-parameter,
seed) equals the saved row's and its saved ``"settings"`` equal this call's (the configuration
fields that change what one run computes: steps, data sizes, architecture, estimators). The grid
may change between calls (more seeds, fewer models): the runs it shares are reused, while a run
with other settings (e.g. a different ``--steps``) is trained again.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from pyro_groups.experiments.environment import json_safe

__all__ = ["finished_runs", "run_file", "run_settings", "save_run"]


def run_settings(cfg: Any, exclude: Sequence[str]) -> dict[str, Any]:
    """The JSON-safe fields of the dataclass ``cfg`` except ``exclude`` (the grid's axes and the
    fields that do not change a run's numbers, such as ``workers`` or ``figures``)."""
    from dataclasses import asdict

    return json_safe({k: v for k, v in asdict(cfg).items() if k not in set(exclude)})


def run_file(folder: str | Path, key: Mapping[str, Any]) -> Path:
    """``folder/<key values joined by "_">.json`` (characters other than letters, digits, ``.``
    and ``-`` replaced by ``_``)."""
    name = "_".join(str(v) for v in key.values())
    return Path(folder) / (re.sub(r"[^A-Za-z0-9.\-]", "_", name) + ".json")


def save_run(folder: str | Path, key: Mapping[str, Any], row: Mapping[str, Any],
             settings: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``row`` (which holds the fields of ``key``) with its ``settings`` to
    :func:`run_file`; return the JSON-safe row written."""
    out = json_safe({**row, **dict(key), "settings": dict(settings)})
    run_file(folder, key).write_text(json.dumps(out, allow_nan=False))
    return out


def finished_runs(folder: str | Path, keys: Sequence[Mapping[str, Any]],
                  settings: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """The saved runs of ``folder`` matching ``keys[i]`` and ``settings`` (see the module
    docstring), by ``i``; unreadable files are ignored."""
    done: dict[int, dict[str, Any]] = {}
    wanted = json_safe(dict(settings))
    for i, key in enumerate(keys):
        path = run_file(folder, key)
        try:
            row = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if row.get("settings") == wanted and all(
            row.get(k) == v for k, v in json_safe(dict(key)).items()
        ):
            done[i] = row
    return done
