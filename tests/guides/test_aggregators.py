"""average_of_normals (GVAE) and product_of_normals (ML-VAE) against closed forms."""
import math

import pytest
import torch
from torch.testing import assert_close

from pyro_groups.guides import average_of_normals, product_of_normals

AGGREGATORS = [average_of_normals, product_of_normals]


def known():
    """Two groups, d = 1; the second has a padded slot holding garbage."""
    loc = torch.tensor([[[1.0], [3.0], [-2.0]], [[1.0], [3.0], [1e3]]])
    scale = torch.tensor([[[1.0], [2.0], [0.5]], [[1.0], [2.0], [1e-3]]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    return loc, scale, mask


def test_average_known_answer():
    loc, scale, mask = known()
    mean, sd = average_of_normals(loc, scale, mask)
    assert mean.shape == sd.shape == (2, 1, 1)
    # group 0: mean (1 + 3 - 2) / 3, variance (1 + 4 + 0.25) / 3; group 1: (1 + 3) / 2, (1 + 4) / 2
    assert_close(mean.flatten(), torch.tensor([2.0 / 3.0, 2.0]))
    assert_close(sd.flatten(), torch.tensor([math.sqrt(5.25 / 3.0), math.sqrt(2.5)]))


def test_product_known_answer():
    loc, scale, mask = known()
    mean, sd = product_of_normals(loc, scale, mask)
    assert mean.shape == sd.shape == (2, 1, 1)
    # group 0: precisions 1, 1/4, 4 -> 5.25; mean (1 * 1 + 3 / 4 - 2 * 4) / 5.25
    # group 1: precisions 1, 1/4 -> 1.25; mean (1 + 3 / 4) / 1.25 = 1.4
    assert_close(mean.flatten(), torch.tensor([(1.0 + 0.75 - 8.0) / 5.25, 1.4]))
    assert_close(sd.flatten(), torch.tensor([5.25**-0.5, 1.25**-0.5]))


def reference(loc, scale, mask, kind):
    """A loop over groups and valid slots only, with float64 arithmetic."""
    means, sds = [], []
    for mu, s, m in zip(loc.double(), scale.double(), mask):
        mu, s = mu[m], s[m]
        if kind == "average":
            means.append(mu.mean(0))
            sds.append(s.pow(2).mean(0).sqrt())
        else:
            prec = s.pow(-2).sum(0)
            means.append((mu * s.pow(-2)).sum(0) / prec)
            sds.append(prec.rsqrt())
    return torch.stack(means)[:, None].float(), torch.stack(sds)[:, None].float()


@pytest.mark.parametrize("fn", AGGREGATORS, ids=["average", "product"])
def test_random_against_loop_and_garbage_in_padding(fn):
    g = torch.Generator().manual_seed(0)
    loc = torch.randn(6, 7, 3, generator=g)
    scale = torch.rand(6, 7, 3, generator=g) + 0.1
    mask = torch.rand(6, 7, generator=g) < 0.6
    mask[:, 0] = True
    kind = "average" if fn is average_of_normals else "product"
    exp_mean, exp_sd = reference(loc, scale, mask, kind)
    mean, sd = fn(loc, scale, mask)
    assert_close(mean, exp_mean)
    assert_close(sd, exp_sd)
    # garbage in padded slots (huge, tiny, negative locations; huge and tiny scales) changes nothing
    for loc_g, scale_g in [(1e3, 1e3), (-1e4, 1e-3), (0.0, 1e-6)]:
        pad_mask = ~mask[..., None]
        loc2, scale2 = loc.masked_fill(pad_mask, loc_g), scale.masked_fill(pad_mask, scale_g)
        mean2, sd2 = fn(loc2, scale2, mask)
        assert torch.equal(mean2, mean) and torch.equal(sd2, sd)
    # extra padded slots change nothing
    pad = torch.full((6, 4, 3), 1e3)
    mask3 = torch.cat([mask, torch.zeros(6, 4, dtype=torch.bool)], 1)
    mean3, sd3 = fn(torch.cat([loc, pad], 1), torch.cat([scale, pad], 1), mask3)
    assert_close(mean3, mean)
    assert_close(sd3, sd)


@pytest.mark.parametrize("fn", AGGREGATORS, ids=["average", "product"])
def test_single_observation_is_its_own_posterior(fn):
    loc, scale = torch.tensor([[[0.3, -1.0], [5.0, 5.0]]]), torch.tensor([[[0.7, 2.0], [9.0, 9.0]]])
    mean, sd = fn(loc, scale, torch.tensor([[True, False]]))
    assert_close(mean, loc[:, :1])
    assert_close(sd, scale[:, :1])


def test_identical_observations():
    # K identical normals: the average keeps the scale, the product shrinks it by sqrt(K)
    k = 9
    loc, scale = torch.full((1, k, 2), 1.5), torch.full((1, k, 2), 0.6)
    mask = torch.ones(1, k, dtype=torch.bool)
    mean, sd = average_of_normals(loc, scale, mask)
    assert_close(mean, loc[:, :1])
    assert_close(sd, scale[:, :1])
    mean, sd = product_of_normals(loc, scale, mask)
    assert_close(mean, loc[:, :1])
    assert_close(sd, scale[:, :1] / 3.0)


def test_product_is_the_normalised_product_of_densities():
    # log prod_k N(u; m_k, s_k) - log N(u; m, s) must be constant in u
    g = torch.Generator().manual_seed(1)
    loc, scale = torch.randn(1, 4, 1, generator=g), torch.rand(1, 4, 1, generator=g) + 0.2
    mean, sd = product_of_normals(loc, scale, torch.ones(1, 4, dtype=torch.bool))
    u = torch.linspace(-3, 3, 7)[:, None, None]
    prod = torch.distributions.Normal(loc[0], scale[0]).log_prob(u).sum(-2)
    diff = prod - torch.distributions.Normal(mean[0], sd[0]).log_prob(u[:, 0])
    assert_close(diff - diff[0], torch.zeros_like(diff), atol=1e-4, rtol=0)


@pytest.mark.parametrize("fn", AGGREGATORS, ids=["average", "product"])
def test_gradients_never_reach_padded_slots(fn):
    loc, scale, mask = known()
    loc.requires_grad_(True)
    scale.requires_grad_(True)
    mean, sd = fn(loc, scale, mask)
    (mean.sum() + sd.sum()).backward()
    assert (loc.grad[~mask] == 0).all() and (scale.grad[~mask] == 0).all()
    assert (loc.grad[mask] != 0).all() and (scale.grad[mask] != 0).all()
