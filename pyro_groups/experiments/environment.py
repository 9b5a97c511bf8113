"""The ``environment`` block of every benchmark's JSON (DESIGN.md, "Outputs")."""
from __future__ import annotations

import pyro
import torch


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
