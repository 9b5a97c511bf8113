"""ML-VAE figures: swap and interpolation grids, generation, accumulating evidence (Figs. 4-6a)
and the k-shot curves (Fig. 6c) are written as PNGs; bad input is named."""
import pytest
import torch

from pyro_groups.evaluation import SwapGrid
from pyro_groups.plots import draw_k_shot, k_shot_figure
from pyro_groups.plots_mlvae import (
    evidence_figure,
    generation_figure,
    interpolation_figure,
    swap_grid_figure,
)
from pyro_groups.validation import ArgumentError

PNG = b"\x89PNG"


def test_image_figures_write_png(tmp_path):
    grid = SwapGrid(torch.rand(3, 1, 8, 8), torch.rand(4, 1, 8, 8), torch.rand(3, 1, 8, 8),
                    torch.rand(4, 1, 8, 8), torch.rand(3, 4, 1, 8, 8))
    assert swap_grid_figure([("a", grid), ("b", grid)], tmp_path / "swap.png").endswith("swap.png")
    interpolation_figure(torch.rand(2, 5, 5, 1, 8, 8), tmp_path / "int.png", names=["x", "y"])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    generation_figure(torch.rand(2, 3, 1, 8, 8), torch.rand(2, 4, 1, 8, 8), tmp_path / "gen.png",
                      mask=mask)
    evidence_figure(*(torch.rand(3, 4, 3, 8, 8) for _ in range(3)), tmp_path / "ev.png")
    for name in ("swap", "int", "gen", "ev"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == PNG


def test_bad_image_figure_input(tmp_path):
    with pytest.raises(ArgumentError, match="nothing to draw"):
        swap_grid_figure([], tmp_path / "bad.png")
    with pytest.raises(ArgumentError, match="grids must be"):
        interpolation_figure(torch.rand(2, 5, 4, 1, 8, 8), tmp_path / "bad.png")
    with pytest.raises(ArgumentError, match="rows of generated"):
        generation_figure(torch.rand(2, 3, 1, 8, 8), torch.rand(1, 4, 1, 8, 8), tmp_path / "b.png")
    with pytest.raises(ArgumentError, match="same shape"):
        evidence_figure(torch.rand(3, 4, 1, 8, 8), torch.rand(3, 4, 1, 8, 8),
                        torch.rand(3, 2, 1, 8, 8), tmp_path / "bad.png")


def test_k_shot_figure(tmp_path):
    rows = [
        {"model": m, "code": c, "k": k, "accuracy": {"mean": 0.1 * k, "std": 0.01, "n": 3},
         "cond_entropy_bits": 3.0 - 0.2 * k}
        for m in ("ML-VAE", "VAE") for c in ("content", "style") for k in (1, 2, 3)
    ]
    path = k_shot_figure(rows, tmp_path / "k.png", num_classes=10)
    assert path.endswith("k.png") and (tmp_path / "k.png").read_bytes()[:4] == PNG
    fig = draw_k_shot(rows)
    assert len(fig.axes) == 2 and len(fig.legends) == 1
    with pytest.raises(ArgumentError, match="nothing to draw"):
        draw_k_shot([])
