"""Known-answer tests for the total-correlation discriminator of ``pyro_groups.adversary.tc``.

For Gaussian codes ``z ~ N(0, Sigma)`` and blocks ``B_1..B_m`` of dimensions,
``TC = 1/2 (sum_b log det Sigma_{B_b} - log det Sigma)``; with singleton blocks this is
``-1/2 log det corr(Sigma)``.
"""
from __future__ import annotations

import math

import pytest
import torch

from pyro_groups.adversary.tc import (
    TCDiscriminator,
    discriminator_loss,
    permute_dims,
    tc_blocks,
    tc_estimate,
)

CORR = torch.tensor(
    [[1.0, 0.5, 0.4, 0.0], [0.5, 1.0, 0.3, 0.2], [0.4, 0.3, 1.0, 0.5], [0.0, 0.2, 0.5, 1.0]],
    dtype=torch.float64,
)
SCALE = torch.tensor([1.0, 2.0, 0.5, 1.0], dtype=torch.float64)
SIGMA = SCALE[:, None] * CORR * SCALE[None, :]
CHOL = torch.linalg.cholesky(SIGMA).float()


def gaussian_tc(blocks) -> float:
    parts = sum(torch.logdet(SIGMA[b][:, b]) for b in blocks)
    return 0.5 * (parts - torch.logdet(SIGMA)).item()


def sample_codes(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.randn(n, 4, generator=g) @ CHOL.T


def test_tc_blocks_levels():
    assert tc_blocks(2, 3, "inter") == [[0, 1], [2, 3, 4]]
    assert tc_blocks(2, 3, "inter_intra") == [[0, 1], [2], [3], [4]]
    assert tc_blocks(2, 3, "inter_intra", within="u") == [[0], [1], [2, 3, 4]]
    assert tc_blocks(2, 3, "full") == [[0], [1], [2], [3], [4]]
    with pytest.raises(ValueError):
        tc_blocks(2, 3, "pairs")


def test_gaussian_tc_formula_for_singletons_is_log_det_corr():
    full = gaussian_tc(tc_blocks(2, 2, "full"))
    assert full == pytest.approx(-0.5 * torch.logdet(CORR).item(), abs=1e-12)


def test_permute_dims_keeps_blocks_and_breaks_cross_block_correlation():
    g = torch.Generator().manual_seed(0)
    n = 20_000
    a = torch.randn(n, 1, generator=g)
    z = torch.cat([a, a + 0.3 * torch.randn(n, 1, generator=g), 0.9 * a, -a], dim=1)
    blocks = [[0, 1], [2], [3]]
    zp = permute_dims(z, blocks, torch.Generator().manual_seed(1))
    for block in blocks:
        orig, perm = z[:, block], zp[:, block]
        torch.testing.assert_close(
            perm[perm[:, 0].argsort()], orig[orig[:, 0].argsort()], rtol=0, atol=0
        )
    before, after = torch.corrcoef(z.T), torch.corrcoef(zp.T)
    torch.testing.assert_close(after[0, 1], before[0, 1])
    assert before[0, 2] > 0.99 and before[2, 3] < -0.99
    off_block = [(0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert max(after[i, j].abs().item() for i, j in off_block) < 4 / math.sqrt(n)
    again = permute_dims(z, blocks, torch.Generator().manual_seed(1))
    torch.testing.assert_close(again, zp, rtol=0, atol=0)


def test_permute_dims_with_mask_only_mixes_valid_rows():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 5, 3, generator=g)
    mask = torch.rand(6, 5, generator=g) < 0.5
    z = z.masked_fill(~mask[..., None], 1e6)
    zp = permute_dims(z, [[0], [1, 2]], torch.Generator().manual_seed(2), mask=mask)
    torch.testing.assert_close(zp[~mask], z[~mask], rtol=0, atol=0)
    assert (zp[mask].abs() < 1e6).all()
    torch.testing.assert_close(zp[mask][:, 0].sort().values, z[mask][:, 0].sort().values)
    with pytest.raises(ValueError):
        permute_dims(z, [[0], [1]])


def test_discriminator_loss_and_estimate_known_values_and_masks():
    zeros = torch.zeros(7)
    assert discriminator_loss(zeros, zeros).item() == pytest.approx(math.log(2))
    logits = torch.tensor([1.0, -2.0, 3.0, 1e6])
    mask = torch.tensor([True, True, True, False])
    assert tc_estimate(logits, mask).item() == pytest.approx(2.0 / 3.0)
    loss = discriminator_loss(logits, -logits, mask, mask)
    expected = torch.nn.functional.softplus(-logits[:3]).mean()
    assert loss.item() == pytest.approx(expected.item())


def train_tc(blocks, seed: int = 0, steps: int = 400, batch: int = 512) -> float:
    """Train a TCDiscriminator (Adam, learning rate 3e-3 decaying linearly to 0); estimate TC.

    As in FactorVAE, the permuted codes come from a second, independent batch.
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    disc = TCDiscriminator(4, hidden=(64, 64))
    opt = torch.optim.Adam(disc.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 - step / steps)
    for _ in range(steps):
        z_true = sample_codes(batch, g)
        z_perm = permute_dims(sample_codes(batch, g), blocks, g)
        loss = discriminator_loss(disc(z_true), disc(z_perm))
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    with torch.no_grad():
        return tc_estimate(disc(sample_codes(16_384, torch.Generator().manual_seed(99)))).item()


@pytest.mark.parametrize("level", ["inter", "inter_intra", "full"])
def test_trained_discriminator_recovers_gaussian_tc(level):
    blocks = tc_blocks(2, 2, level)
    assert train_tc(blocks) == pytest.approx(gaussian_tc(blocks), abs=0.1)


def test_trained_discriminator_on_independent_codes_is_near_zero():
    blocks = tc_blocks(2, 2, "inter")
    g = torch.Generator().manual_seed(0)
    disc = TCDiscriminator(4, hidden=(32,))
    opt = torch.optim.Adam(disc.parameters(), lr=1e-3)
    scale = SCALE.float()
    for _ in range(300):
        z = torch.randn(2, 512, 4, generator=g) * scale
        loss = discriminator_loss(disc(z[0]), disc(permute_dims(z[1], blocks, g)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        z = torch.randn(16_384, 4, generator=torch.Generator().manual_seed(99)) * scale
        assert abs(tc_estimate(disc(z)).item()) < 0.03
