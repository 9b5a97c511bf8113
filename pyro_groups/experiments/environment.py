"""The ``environment`` block of every benchmark's JSON (DESIGN.md, "Outputs"), the machine's cores,
and running independent jobs on all of them."""
from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import pyro
import torch
from tqdm.auto import tqdm

from pyro_groups.validation import check_int


def _cgroup_cpus(root: Path = Path("/sys/fs/cgroup")) -> Optional[int]:
    """The CPU quota of a cgroup-v2 container (``cpu.max``, e.g. ``"200000 100000"`` = 2 cores),
    rounded up; ``None`` without a quota."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def available_cpus() -> int:
    """The cores this process may use: its CPU affinity (``os.sched_getaffinity``, Linux) where
    the OS has one, else ``os.cpu_count()``, capped by a container's CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpus()
    return max(1, min(cpus, quota) if quota is not None else cpus)


def worker_threads(workers: int, cpus: Optional[int] = None) -> int:
    """torch threads for each of ``workers`` processes sharing ``cpus`` cores (all by default):
    ``cpus // workers``, at least one."""
    cpus = available_cpus() if cpus is None else cpus
    return max(1, cpus // max(1, workers))


def smoke_requested(flag: bool = False) -> bool:
    """Whether a benchmark or notebook runs its seconds-long smoke version: ``flag``
    (``--smoke-test``) or ``CI`` / ``PYRO_GROUPS_SMOKE`` set to anything but empty, ``0`` or
    ``false``, unless ``PYRO_GROUPS_FULL`` asks for the full run."""
    def on(key: str) -> bool:
        return os.environ.get(key, "").strip().lower() not in ("", "0", "false")

    return flag or (not on("PYRO_GROUPS_FULL") and (on("CI") or on("PYRO_GROUPS_SMOKE")))


def environment(device: str | torch.device = "cpu") -> dict[str, object]:
    return {
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }


def summarize(values: list[float]) -> dict[str, float | int]:
    """``{"mean", "std", "n"}`` of a list of per-seed numbers (sample std; 0 for one seed)."""
    t = torch.tensor(values, dtype=torch.float64)
    std = float(t.std()) if len(values) > 1 else 0.0
    return {"mean": float(t.mean()), "std": std, "n": len(values)}


@contextlib.contextmanager
def num_threads(threads: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)``, then restore the old count."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def run_jobs(
    fn: Callable[[Any], dict[str, Any]],
    jobs: Sequence[Any],
    *,
    workers: Optional[int] = None,
    threads: Optional[int] = None,
    progress: bool,
    desc: str,
) -> list[dict[str, Any]]:
    """Run ``fn`` on every job, in ``workers`` spawned processes when more than one (``fn`` must
    then be a module-level function); results in completion order, with a tqdm bar.

    :param workers: processes; default one per available core (:func:`available_cpus`), never
        more than there are jobs.
    :param threads: torch threads in each worker process; default the cores shared out among
        the workers (:func:`worker_threads`). With one worker the jobs run in this process, with
        ``threads`` if given, else with this process's own setting (torch's default: all cores).
    """
    if workers is not None:
        workers = check_int(workers, "workers", min=1)
    if threads is not None:
        threads = check_int(threads, "threads", min=1)
    workers = min(workers if workers is not None else available_cpus(), max(1, len(jobs)))
    runs: list[dict[str, Any]] = []
    with tqdm(total=len(jobs), disable=not progress, desc=desc, unit="run") as bar:
        if workers > 1:
            ctx = mp.get_context("spawn")
            per_worker = threads if threads is not None else worker_threads(workers)
            with ctx.Pool(workers, initializer=torch.set_num_threads,
                          initargs=(per_worker,)) as pool:
                for r in pool.imap_unordered(fn, jobs):
                    runs.append(r)
                    bar.update()
        else:
            with num_threads(threads if threads is not None else torch.get_num_threads()):
                for job in jobs:
                    runs.append(fn(job))
                    bar.update()
    return runs


def json_safe(obj: Any) -> Any:
    """A copy for ``json.dumps(..., allow_nan=False)``: NaN / inf become ``None``, numpy scalars
    Python numbers, tuples lists."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
