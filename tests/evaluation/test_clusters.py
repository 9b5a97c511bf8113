"""Cluster assignments of UG-VAE (q(d | z) and infer_discrete), and the evaluation functions
(encode, decode, posterior predictive checks) on the enumerated model unchanged."""
import pytest
import torch
from pyro import poutine
from pyro.infer import Predictive
from torch.testing import assert_close

from pyro_groups.data import GroupBatch
from pyro_groups.evaluation import (
    cluster_assignments,
    cluster_probabilities,
    decode,
    encode,
    posterior_predictive,
    ppc_summary,
    reconstruct,
    to_inference_data,
)
from pyro_groups.guides import UGVAEGuide
from pyro_groups.models import UGVAE, MLPDecoder

X, U, V, C = 4, 2, 2, 3


@pytest.fixture
def batch():
    x = torch.randn(4, 5, X)
    mask = torch.arange(5) < torch.tensor([5, 3, 1, 5])[:, None]
    return GroupBatch(x.masked_fill(~mask.unsqueeze(-1), 0.0), mask)


@pytest.fixture(params=["guide", "model"])
def pair(request):
    model = UGVAE(MLPDecoder(U, V, X, hidden=(8,)), C)
    return model, UGVAEGuide(X, U, V, C, hidden=(8,), enumerate_in=request.param)


def test_guide_assignments_are_the_argmax_of_q_d_given_the_mean_z(pair, batch):
    model, guide = pair
    probs = cluster_probabilities(guide, batch)
    assert probs.shape == (4, 5, C)
    assert_close(probs.sum(-1), batch.mask.float())
    mean_z = guide.instance_posterior(batch.x).mean
    expected = guide.cluster_posterior(mean_z).probs.argmax(-1).masked_fill(~batch.mask, -1)
    assert torch.equal(cluster_assignments(model, guide, batch), expected)


def test_model_assignments_are_the_map_of_p_d_given_z_and_beta(pair, batch):
    model, guide = pair
    with torch.no_grad():
        z = guide.instance_posterior(batch.x).mean
        beta = guide.group_posterior(batch.x, batch.mask, z).mean
        loc, scale = model.mixture(beta)  # [G, 1, C, V]
        log_p = torch.distributions.Normal(loc, scale).log_prob(z.unsqueeze(-2)).sum(-1)
    expected = log_p.argmax(-1).masked_fill(~batch.mask, -1)
    d = cluster_assignments(model, guide, batch, method="model")
    assert torch.equal(d, expected)
    drawn = cluster_assignments(model, guide, batch, method="model", temperature=1, sample=True)
    assert drawn.shape == (4, 5) and ((drawn >= 0) == batch.mask).all() and drawn.max() < C
    with pytest.raises(ValueError, match="method must be"):
        cluster_assignments(model, guide, batch, method="both")


def test_well_separated_clusters_are_recovered():
    """Components at 0, 10 and 20 with tiny scales: data drawn from the model cluster exactly
    when the guide's z is the true z (an identity encoder) and the model's posterior is used."""
    model = UGVAE(MLPDecoder(U, V, X, hidden=(8,)), C)
    with torch.no_grad():
        net = model.components.net
        net.weight0.zero_(), net.weight1.zero_(), net.bias0.zero_()
        net.bias1.copy_(torch.cat([10.0 * torch.arange(C)[:, None].expand(C, V),
                                   torch.full((C, V), -5.0)], -1))
    mask = torch.ones(6, 8, dtype=torch.bool)
    tr = poutine.trace(model).get_trace(None, mask)
    true_d, true_z = tr.nodes["d"]["value"], tr.nodes["v"]["value"]

    class Oracle(UGVAEGuide):
        def instance_posterior(self, x, u=None):
            return torch.distributions.Independent(
                torch.distributions.Normal(true_z, torch.full_like(true_z, 1e-3)), 1)

    guide = Oracle(X, U, V, C, hidden=(8,))
    d = cluster_assignments(model, guide, GroupBatch(tr.nodes["x"]["value"], mask), method="model")
    assert torch.equal(d, true_d)


def test_codes_decode_reconstruct_and_posterior_predictive_work_unchanged(pair, batch):
    model, guide = pair
    u, v = encode(guide, batch)
    assert u.shape == (4, U) and v.shape == (4, 5, V)
    assert decode(model, u, v).shape == batch.x.shape
    assert reconstruct(model, guide, batch).shape == batch.x.shape
    draws = posterior_predictive(model, guide, batch, num_samples=6)
    assert draws["u"].shape == (6, 4, U) and draws["x"].shape == (6, 4, 5, X)
    idata = to_inference_data(batch, draws)
    assert idata.posterior_predictive["x"].shape == (1, 6, int(batch.mask.sum()), X)
    summary = ppc_summary(batch, draws)
    assert 0.0 <= summary["central95_mean"] <= 1.0


def test_pyro_predictive_on_the_enumerated_model(pair, batch):
    model, guide = pair
    predictive = Predictive(poutine.uncondition(model), guide=guide, num_samples=3,
                            return_sites=("u", "d", "v", "x"))
    out = predictive(batch.x, batch.mask)
    assert out["x"].shape == (3, *batch.x.shape) and out["u"].shape == (3, 4, 1, U)
    assert out["d"].shape == (3, 4, 5) and 0 <= int(out["d"].min()) and int(out["d"].max()) < C
