"""The ML-VAE experiments' figures, from the payloads of the seed-0 runs
(:func:`pyro_groups.experiments.mlvae.run_one`): ``swap.png`` (Fig. 4, every group model and the
non-amortised baseline, strategy 2, plus ML-VAE with strategy 1), ``interpolation.png`` and
``generation.png`` (Fig. 5), ``accumulating_evidence.png`` (Fig. 6a) and ``k_shot.png`` (Fig. 6c).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pyro_groups.evaluation.grids import SwapGrid
from pyro_groups.experiments.mlvae_report import LABELS

__all__ = ["write_figures"]


def write_figures(
    runs: list[dict[str, Any]], out: Path, *, num_classes: int, k_shot: list[dict[str, Any]]
) -> list[str]:
    """Write the figures into ``out``; returns their file names."""
    from pyro_groups.plots import k_shot_figure
    from pyro_groups.plots_mlvae import (
        evidence_figure,
        generation_figure,
        interpolation_figure,
        swap_grid_figure,
    )

    figs = {r["model"]: r["figures"] for r in runs if r["seed"] == 0 and "figures" in r}
    names: list[str] = []
    panels = [(LABELS.get(m, m), SwapGrid(*f["swap"])) for m, f in figs.items()]
    if "mlvae" in figs and "swap_alone" in figs["mlvae"]:
        panels.insert(1, ("ML-VAE, each image alone", SwapGrid(*figs["mlvae"]["swap_alone"])))
    if panels:
        swap_grid_figure(panels, out / "swap.png",
                         title="Swapping: style of the row, content of the column")
        names.append("swap.png")
    ml = figs.get("mlvae", {})
    if "interpolation" in ml:
        interpolation_figure(ml["interpolation"], out / "interpolation.png",
                             title="ML-VAE interpolation: rows fix the style, columns the content")
        names.append("interpolation.png")
    if "generation" in ml:
        g = ml["generation"]
        generation_figure(g["groups"], g["generated"], out / "generation.png", mask=g["mask"])
        names.append("generation.png")
    if "evidence" in ml:
        evidence_figure(*ml["evidence"], out / "accumulating_evidence.png")
        names.append("accumulating_evidence.png")
    if k_shot:
        rows = [dict(r, model=LABELS.get(r["model"], r["model"])) for r in k_shot]
        k_shot_figure(rows, out / "k_shot.png", num_classes=num_classes)
        names.append("k_shot.png")
    return names
