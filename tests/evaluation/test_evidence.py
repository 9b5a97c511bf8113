"""Accumulating evidence: content posteriors over groups, strategy 1 against strategy 2, and the
reconstruction likelihood."""
import pyro.distributions as dist
import pytest
import torch
from known_guides import useless_guide
from torch.testing import assert_close

from pyro_groups import ExamScoresDecoder, GroupVAE, exam_scores
from pyro_groups.data import GroupBatch, GroupedData
from pyro_groups.evaluation import (
    accumulating_evidence,
    content_posterior,
    reconstruction_nll,
    single_observations,
    strategy_reconstruction,
)
from pyro_groups.guides import IIDGuide, preset_guide
from pyro_groups.guides.paired import pair_guide
from pyro_groups.models import MLPDecoder

X, U, V = 4, 2, 3


@pytest.fixture(scope="module")
def data():
    x = torch.randn(5, 4, X, generator=torch.Generator().manual_seed(1))
    mask = torch.arange(4) < torch.tensor([4, 1, 3, 2, 4])[:, None]
    return GroupedData(x, mask)


def repeated(x_one: torch.Tensor, k: int) -> GroupBatch:
    """A group of ``k`` copies of one observation."""
    return GroupBatch(x=x_one.expand(1, k, *x_one.shape), mask=torch.ones(1, k, dtype=torch.bool))


@pytest.mark.parametrize("k", [1, 2, 5])
def test_product_of_identical_posteriors_shrinks_the_variance_by_k(data, k):
    one = data.x[0, 0]
    for guide in (preset_guide("mlvae", X, U, V, hidden=(4,)),
                  pair_guide("group_tcvae", X, U, V, hidden=(4,))):
        batches = (repeated(one, 1), repeated(one, k))
        q1, qk = (content_posterior(guide, b.x, b.mask) for b in batches)
        assert qk.batch_shape == (1, 1)
        assert_close(qk.mean, q1.mean)
        assert_close(qk.variance, q1.variance / k)
    gvae = preset_guide("gvae", X, U, V, hidden=(4,))
    q1, qk = (content_posterior(gvae, b.x, b.mask) for b in (repeated(one, 1),
                                                             repeated(one, k)))
    assert_close(qk.variance, q1.variance)  # the average does not accumulate


def test_content_posterior_ignores_padding(data):
    guide = pair_guide("group_tcvae", X, U, V, hidden=(4,))
    batch = data[torch.arange(5)]
    garbage = batch.x.masked_fill(~batch.mask[..., None], 1e3)
    a = content_posterior(guide, batch.x, batch.mask)
    b = content_posterior(guide, garbage, batch.mask)
    assert_close(a.mean, b.mean)
    assert isinstance(content_posterior(IIDGuide(X, 3, (4,)), batch.x, batch.mask),
                      dist.Independent)


def test_single_observations_round_trip(data):
    batch = data[torch.arange(5)]
    single, where = single_observations(batch)
    assert single.x.shape == (int(batch.mask.sum()), 1, X)
    assert_close(single.x[:, 0], batch.x[batch.mask])
    assert torch.equal(batch.mask[where[:, 0], where[:, 1]], torch.ones(len(where),
                                                                        dtype=torch.bool))


@pytest.mark.parametrize("preset", ["mlvae", "mlvae-mixture", "gvae", "cxvae"])
def test_strategies_agree_on_groups_of_one_and_differ_on_larger_groups(data, preset):
    model = GroupVAE(MLPDecoder(U, V, X, hidden=(4,)))
    guide = preset_guide(preset, X, U, V, hidden=(4,))
    batch = data[torch.arange(5)]
    single, _ = single_observations(batch)
    ev1 = accumulating_evidence(model, guide, single)
    assert_close(ev1.alone, ev1.accumulated)
    ev = accumulating_evidence(model, guide, batch)
    assert ev.alone.shape == batch.x.shape
    assert torch.all(ev.alone[~batch.mask] == 0) and torch.all(ev.accumulated[~batch.mask] == 0)
    assert_close(ev.alone[batch.mask], strategy_reconstruction(model, guide, single)[:, 0])
    # group 1 has one observation: both strategies coincide there, not on group 0
    assert_close(ev.alone[1, 0], ev.accumulated[1, 0])
    assert not torch.allclose(ev.alone[0], ev.accumulated[0])


@pytest.mark.parametrize("accumulate", [True, False])
def test_reconstruction_nll_known_answer(accumulate):
    """Codes pinned at zero: every observation is scored under N(0, 0.1^2) (Exam-Scores decoder
    with mu = sigma = v = 0), whatever the strategy."""
    data = exam_scores(6, seed=0)
    batch = data[torch.arange(6)]
    model = GroupVAE(ExamScoresDecoder(noise=0.1))
    nll = reconstruction_nll(model, useless_guide(scale=1e-7), batch, accumulate=accumulate,
                             draws=2)
    expected = -dist.Normal(0.0, 0.1).log_prob(batch.x[..., 0]).masked_fill(~batch.mask, 0.0)
    assert_close(nll, expected, atol=1e-3, rtol=1e-4)
    with pytest.raises(ValueError, match="draws"):
        reconstruction_nll(model, useless_guide(), batch, draws=0)
