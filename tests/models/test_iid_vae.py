"""IIDVAE and IIDGuide: sites, plates, masks, subsample scaling, decoders, evaluation helpers."""
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from torch.testing import assert_close

from pyro_groups.data import GroupBatch
from pyro_groups.data.factors import group_by_factors, random_groups
from pyro_groups.data.sprites import Sprites
from pyro_groups.evaluation.codes import encode, reconstruct
from pyro_groups.guides.iid_guide import IIDGuide
from pyro_groups.models import MLPDecoder
from pyro_groups.models.iid_vae import IIDVAE
from pyro_groups.nn_conv import ConvDecoder, conv_body


def make_data(g=3, k=4, x_dim=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(g, k, x_dim, generator=gen) > 0.5).float()
    mask = torch.arange(k) < torch.tensor([k, 2, 1][:g] + [k] * max(0, g - 3))[:, None]
    return x.masked_fill(~mask.unsqueeze(-1), 0.0), mask


def mlp_pair(z_dim=3, x_dim=5):
    return (
        IIDVAE(MLPDecoder(0, z_dim, x_dim, hidden=(8,), likelihood="bernoulli")),
        IIDGuide(x_dim, z_dim, (8,)),
    )


def test_sites_plates_and_shapes():
    model, guide = mlp_pair()
    x, mask = make_data()
    tr = poutine.trace(model).get_trace(x, mask)
    gtr = poutine.trace(guide).get_trace(x, mask)
    for t in (tr, gtr):
        z = t.nodes["z"]
        assert z["value"].shape == (3, 4, 3)
        assert z["fn"].event_shape == (3,) and z["fn"].batch_shape == (3, 4)
        assert {(f.name, f.dim) for f in z["cond_indep_stack"]} == {
            ("groups", -2),
            ("instances", -1),
        }
    assert tr.nodes["x"]["is_observed"] and tr.nodes["x"]["fn"].batch_shape == (3, 4)
    assert "u" not in tr.nodes and "v" not in tr.nodes


def test_prior_is_standard_normal_and_log_joint_known_answer():
    model, _ = mlp_pair()
    x, mask = make_data()
    tr = poutine.trace(model).get_trace(x, mask)
    tr.compute_log_prob()
    z = tr.nodes["z"]["value"]
    lik = model.likelihood(z).log_prob(x)
    expected = ((dist.Normal(0.0, 1.0).log_prob(z).sum(-1) + lik) * mask).sum()
    assert_close(tr.log_prob_sum(), expected)


@pytest.mark.parametrize("garbage", [1e3, float("nan")])
def test_padded_slots_contribute_exactly_zero(garbage):
    model, guide = mlp_pair()
    x, mask = make_data()
    tr = poutine.trace(model).get_trace(x, mask)
    tr.compute_log_prob()
    for site in ("z", "x"):
        assert (tr.nodes[site]["log_prob"][~mask] == 0).all()
        assert (tr.nodes[site]["log_prob"][mask] != 0).all()
    bad = x.masked_fill(~mask.unsqueeze(-1), garbage)
    pyro.set_rng_seed(1)
    good_loss = Trace_ELBO().differentiable_loss(model, guide, x, mask)
    pyro.set_rng_seed(1)
    bad_loss = Trace_ELBO().differentiable_loss(model, guide, bad, mask)
    assert torch.isfinite(bad_loss)
    assert_close(bad_loss, good_loss)


def test_subsample_scaling():
    model, _ = mlp_pair()
    x, mask = make_data()
    full = poutine.trace(model).get_trace(x, mask)
    scaled = poutine.trace(poutine.replay(model, trace=full)).get_trace(x, mask, num_groups=30)
    assert scaled.nodes["z"]["scale"] == 10.0 and scaled.nodes["x"]["scale"] == 10.0
    assert_close(scaled.log_prob_sum(), 10.0 * full.log_prob_sum())


def test_sampling_x_when_not_given():
    model, _ = mlp_pair()
    mask = torch.ones(4, 2, dtype=torch.bool)
    x = model(None, mask)
    assert x.shape == (4, 2, 5) and set(x.unique().tolist()) <= {0.0, 1.0}


def test_decoder_needs_an_empty_group_code():
    with pytest.raises(ValueError, match="u_dim=0"):
        IIDVAE(MLPDecoder(2, 3, 5))
    assert IIDVAE(MLPDecoder(0, 4, 5)).z_dim == 4
    assert IIDVAE(MLPDecoder(0, 4, 5), z_dim=4).z_dim == 4


def test_any_group_batch_works_and_trains_with_svi():
    data = Sprites(16)
    batches = [
        random_groups(data, 6, 1, rng=0)[:],  # groups of one: the usual i.i.d. batch
        random_groups(data, 3, (1, 4), rng=1)[:],  # ragged random groups
        group_by_factors(data, ["shape"], 2, 3, rng=2)[:],  # real groups, grouping ignored
    ]
    model = IIDVAE(ConvDecoder(0, 4, image_size=16))
    guide = IIDGuide(32, 4, (), body=conv_body(1, 16, out_dim=32))
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    for b in batches:
        assert torch.isfinite(torch.tensor(svi.step(b.x, b.mask, num_groups=10)))
    b = batches[1]
    first = [svi.evaluate_loss(b.x, b.mask) for _ in range(4)]
    for _ in range(30):
        svi.step(b.x, b.mask)
    last = [svi.evaluate_loss(b.x, b.mask) for _ in range(4)]
    assert sum(last) < sum(first)


def test_evaluation_helpers_work_with_the_iid_guide():
    model, guide = mlp_pair()
    x, mask = make_data()
    batch = GroupBatch(x, mask)
    u, z = encode(guide, batch)
    assert u.shape == (3, 0) and z.shape == (3, 4, 3)
    assert (z[~mask] == 0).all()
    assert_close(z[mask], guide.posterior(x).mean[mask])
    rec = reconstruct(model, guide, batch, sample=False)
    assert rec.shape == x.shape and ((rec >= 0) & (rec <= 1)).all()
    assert_close(model.decode(z), rec)


def test_unique_names_and_separate_parameters():
    (m1, g1), (m2, g2) = mlp_pair(), mlp_pair()
    assert m1._pyro_name != m2._pyro_name and g1._pyro_name != g2._pyro_name
    assert IIDVAE(MLPDecoder(0, 2, 3), name="mine")._pyro_name == "mine"
    x, mask = make_data()
    svi = SVI(m1, g1, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    before = [p.detach().clone() for p in [*m2.parameters(), *g2.parameters()]]
    svi.step(x, mask)
    after = [*m2.parameters(), *g2.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, after))
