"""Swap grid, 2-D interpolation grid and generation (ML-VAE Figs. 4 and 5) on every kind of guide.

Known answers come from a decoder that returns its codes, ``mean(u, v) = [u, v]``: every cell of a
grid then shows which content and which style it was decoded from.
"""
import pyro.distributions as dist
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from pyro_groups.data import GroupBatch, GroupedData
from pyro_groups.evaluation import (
    content_posterior,
    generate,
    interpolation_grid,
    strategy_reconstruction,
    swap_grid,
)
from pyro_groups.evaluation.grids import member_codes
from pyro_groups.guides import IIDGuide, NonAmortisedGuide, preset_guide
from pyro_groups.guides.paired import pair_guide
from pyro_groups.models import GroupVAE, IIDVAE, MLPDecoder

U, V, X = 2, 3, 5
GUIDES = ["mlvae", "mlvae-mixture", "gvae", "cxvae", "paired", "non-amortised", "iid"]


class CodeDecoder(nn.Module):
    """``p(x | u, v) = N([u, v], 1)``: the decoder's mean is the codes themselves."""

    def __init__(self, u_dim: int, v_dim: int) -> None:
        super().__init__()
        self.u_dim, self.v_dim = u_dim, v_dim
        self.event_shape = torch.Size([u_dim + v_dim])

    def mean(self, u, v):
        return torch.cat([u.expand(*v.shape[:-1], u.shape[-1]), v], -1)

    def forward(self, u, v):
        loc = self.mean(u, v)
        return dist.Normal(loc, torch.ones_like(loc)).to_event(1)


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 4, X, generator=gen)
    mask = torch.arange(4) < torch.tensor([4, 3, 4, 2, 4, 1, 4, 3])[:, None]
    return GroupedData(x, mask)


def build(kind, data, code_decoder=True):
    if kind == "iid":
        dec = CodeDecoder(0, U + V) if code_decoder else MLPDecoder(0, U + V, X, hidden=(4,))
        return IIDVAE(dec), IIDGuide(X, U + V, (4,))
    dec = CodeDecoder(U, V) if code_decoder else MLPDecoder(U, V, X, hidden=(4,))
    if kind == "paired":
        guide = pair_guide("group_tcvae", X, U, V, hidden=(4,))
    elif kind == "non-amortised":
        guide = NonAmortisedGuide(data, U, V)
    else:
        guide = preset_guide(kind, X, U, V, hidden=(4,))
    return GroupVAE(dec), guide


@pytest.mark.parametrize("sample", [False, True])
@pytest.mark.parametrize("kind", GUIDES)
def test_swap_grid_diagonal_is_the_reconstructions(data, kind, sample):
    model, guide = build(kind, data, code_decoder=False)
    batch = data[torch.arange(8)]
    grid = swap_grid(model, guide, batch, sample=sample)
    assert grid.swapped.shape == (8, 8, X)
    assert_close(grid.swapped.diagonal(dim1=0, dim2=1).movedim(-1, 0), grid.style_reconstructions)
    assert_close(grid.style_reconstructions, grid.content_reconstructions)
    assert_close(grid.style_images, batch.x[:, 0])
    if not sample:
        rec = strategy_reconstruction(model, guide, batch)
        assert_close(grid.style_reconstructions, rec[:, 0])


@pytest.mark.parametrize("accumulate", [True, False])
@pytest.mark.parametrize("kind", [k for k in GUIDES if k != "non-amortised"])
def test_swap_grid_rows_take_style_and_columns_content(data, kind, accumulate):
    model, guide = build(kind, data)
    style, content = data[torch.tensor([0, 2, 4])], data[torch.tensor([6, 1])]
    grid = swap_grid(model, guide, style, content, member=1 if accumulate else 0,
                     accumulate=accumulate)
    u = U if kind != "iid" else 0
    assert grid.swapped.shape == (3, 2, U + V)
    for r in range(3):
        for c in range(2):
            assert_close(grid.swapped[r, c, :u], grid.content_reconstructions[c, :u])
            assert_close(grid.swapped[r, c, u:], grid.style_reconstructions[r, u:])


def test_strategy_one_takes_the_content_of_the_image_alone(data):
    model, guide = build("mlvae", data)
    batch = data[torch.tensor([0, 2])]
    u_alone, _ = member_codes(guide, batch, member=1, accumulate=False)
    single = GroupBatch(x=batch.x[:, 1:2], mask=torch.ones(2, 1, dtype=torch.bool))
    assert_close(u_alone, guide.group_posterior(single.x, single.mask).mean[:, 0])
    u_group, _ = member_codes(guide, batch, member=1)
    assert_close(u_group, guide.group_posterior(batch.x, batch.mask).mean[:, 0])
    with pytest.raises(ValueError, match="no observation in slot"):
        member_codes(guide, data[torch.arange(8)], member=3)
    with pytest.raises(ValueError, match="member must be"):
        member_codes(guide, batch, member=7)


@pytest.mark.parametrize("kind", [k for k in GUIDES if k != "iid"])
def test_interpolation_grid_known_answer(data, kind):
    model, guide = build(kind, data)
    a, b = data[torch.tensor([0, 1])], data[torch.tensor([2, 4])]
    steps = 4
    grid = interpolation_grid(model, guide, a, b, steps)
    assert grid.shape == (2, steps, steps, U + V)
    u_a, v_a = member_codes(guide, a)
    u_b, v_b = member_codes(guide, b)
    t = torch.linspace(0, 1, steps)
    for i in range(steps):
        for j in range(steps):
            assert_close(grid[:, i, j, :U], (1 - t[j]) * u_a + t[j] * u_b)  # columns: content
            assert_close(grid[:, i, j, U:], (1 - t[i]) * v_a + t[i] * v_b)  # rows: style
    swapped = swap_grid(model, guide, a, b).swapped
    assert_close(grid[:, 0, 0], swap_grid(model, guide, a).style_reconstructions)
    assert_close(grid[:, -1, -1], swap_grid(model, guide, b).style_reconstructions)
    assert_close(grid[:, 0, -1], swapped.diagonal(dim1=0, dim2=1).movedim(-1, 0))
    with pytest.raises(ValueError, match="steps"):
        interpolation_grid(model, guide, a, b, 1)
    with pytest.raises(ValueError, match="groups"):
        interpolation_grid(model, guide, a, data[torch.arange(3)])


@pytest.mark.parametrize("kind", GUIDES)
def test_generate_uses_the_accumulated_content_and_prior_styles(data, kind):
    model, guide = build(kind, data)
    batch = data[torch.tensor([0, 3, 5])]
    out = generate(model, guide, batch, 6, generator=torch.Generator().manual_seed(4))
    u = U if kind != "iid" else 0
    assert out.shape == (3, 6, U + V)
    mean = content_posterior(guide, batch.x, batch.mask).mean[:, 0]
    assert_close(out[..., :u], mean.unsqueeze(1).expand(3, 6, u))
    expected = torch.randn(3, 6, out.shape[-1] - u, generator=torch.Generator().manual_seed(4))
    assert_close(out[..., u:], expected)
    with pytest.raises(ValueError, match="num_samples"):
        generate(model, guide, batch, 0)
