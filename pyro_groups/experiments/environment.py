"""The ``environment`` block of every benchmark's JSON (DESIGN.md, "Outputs")."""
from __future__ import annotations

import multiprocessing as mp
from typing import Any, Callable, Sequence

import pyro
import torch
from tqdm.auto import tqdm


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


def run_jobs(
    fn: Callable[[Any], dict[str, Any]],
    jobs: Sequence[Any],
    *,
    workers: int,
    progress: bool,
    desc: str,
) -> list[dict[str, Any]]:
    """Run ``fn`` on every job, in ``workers`` spawned processes when more than one (``fn`` must
    then be a module-level function); results in completion order, with a tqdm bar."""
    runs: list[dict[str, Any]] = []
    with tqdm(total=len(jobs), disable=not progress, desc=desc, unit="run") as bar:
        if workers > 1 and len(jobs) > 1:
            with mp.get_context("spawn").Pool(workers) as pool:
                for r in pool.imap_unordered(fn, jobs):
                    runs.append(r)
                    bar.update()
        else:
            for job in jobs:
                runs.append(fn(job))
                bar.update()
    return runs
