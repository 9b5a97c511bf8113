"""The ELBO split and the aggregate-posterior loss base class (``objectives.elbo_terms``)."""
from __future__ import annotations

import pyro
import pytest
import torch
from pyro.infer import TraceMeanField_ELBO
from torch.testing import assert_close

from pyro_groups.guides.iid_guide import IIDGuide
from pyro_groups.models import MLPDecoder
from pyro_groups.models.iid_vae import IIDVAE
from pyro_groups.objectives.elbo_terms import (
    AggregatePosteriorLoss,
    PosteriorCodes,
    elbo_terms,
    observation_scale,
    posterior_codes,
)


class MeanCodeLoss(AggregatePosteriorLoss):
    """-ELBO + N * (squared mean code), recording what the penalty was given."""

    def penalty(self, codes: PosteriorCodes, n_obs: torch.Tensor) -> torch.Tensor:
        self.seen = (codes, n_obs)
        return n_obs * codes.z.mean(0).pow(2).sum()


def at_seed(fn, seed=3):
    pyro.set_rng_seed(seed)
    return fn()


def test_aggregate_posterior_loss_adds_the_penalty_of_the_same_draw():
    model = IIDVAE(MLPDecoder(0, 3, 6, hidden=(8,), likelihood="bernoulli"))
    guide = IIDGuide(6, 3, (8,))
    x = (torch.rand(4, 3, 6, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    mask = torch.ones(4, 3, dtype=torch.bool)
    mask[2, 1:] = False
    x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
    loss_fn = MeanCodeLoss()
    assert loss_fn.sites == ("z",) and loss_fn.analytic_kl
    loss = at_seed(lambda: loss_fn(model, guide, x, mask, num_groups=8))
    t = at_seed(lambda: elbo_terms(model, guide, x, mask, num_groups=8))
    codes = posterior_codes(t.guide_trace, mask)
    n_obs = observation_scale(mask, 8)
    assert loss_fn.seen[0].z.shape == (10, 3)
    assert_close(loss_fn.seen[0].z, codes.z)
    assert_close(loss_fn.seen[1], n_obs)
    assert_close(loss, -t.elbo + n_obs * codes.z.mean(0).pow(2).sum())
    # without a penalty it is the mean-field ELBO
    elbo = at_seed(
        lambda: TraceMeanField_ELBO().differentiable_loss(model, guide, x, mask, num_groups=8)
    )
    assert_close(loss - n_obs * codes.z.mean(0).pow(2).sum(), elbo)


def test_aggregate_posterior_loss_needs_a_penalty():
    with pytest.raises(TypeError):
        AggregatePosteriorLoss()  # type: ignore[abstract]
