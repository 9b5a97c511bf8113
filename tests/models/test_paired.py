"""PairedVAE and the pair guides: sites, known log joint, masks, presets, SVI and fit."""
from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from torch.testing import assert_close

from pyro_groups.data import GroupBatch
from pyro_groups.data.pairs import sample_pairs
from pyro_groups.evaluation import encode
from pyro_groups.guides import GroupGuide, average_of_normals, product_of_normals
from pyro_groups.guides.paired import PairedGuide, PerMemberGroupEncoder, pair_guide
from pyro_groups.models import GroupVAE, MLPDecoder
from pyro_groups.models.paired import PairedVAE, pair_model
from pyro_groups.adversary.group_tc import GroupTCVAEPenalty
from pyro_groups.adversary.penalized import PenalizedLoss
from pyro_groups.training import fit


def vector_pairs(num_groups=32, per_group=4, num_pairs=64, seed=0):
    """Pairs of 4-d observations: two dimensions set by the group, two by the instance."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_groups).repeat_interleave(per_group)
    s = torch.randn(num_groups, 2, generator=g)[labels]
    w = torch.randn(len(labels), 2, generator=g)
    x = torch.cat([s, w], -1) + 0.1 * torch.randn(len(labels), 4, generator=g)
    return sample_pairs(x, num_pairs, labels=labels, rng=seed)


def small(kind="group_tcvae"):
    model = pair_model(kind, MLPDecoder(2, 2, 4, hidden=(16,)))
    return model, pair_guide(kind, 4, 2, 2, hidden=(16,))


def ragged_batch():
    b = vector_pairs()[torch.arange(6)]
    mask = b.mask.clone()
    mask[2, 1] = mask[4, 0] = False
    return b.x.masked_fill(~mask[..., None], 0.0), mask


def test_sites_plates_and_shapes():
    model, guide = small()
    x, mask = ragged_batch()
    gt = poutine.trace(guide).get_trace(x, mask, num_groups=64)
    mt = poutine.trace(poutine.replay(model, trace=gt)).get_trace(x, mask, num_groups=64)
    for tr in (gt, mt):
        for site, d in (("u", 2), ("v", 2)):
            node = tr.nodes[site]
            assert node["value"].shape == (6, 2, d)
            assert node["fn"].batch_shape == (6, 2) and node["fn"].event_shape == (d,)
            plates = {(f.name, f.dim) for f in node["cond_indep_stack"]}
            assert plates == {("groups", -2), ("instances", -1)}
            assert torch.equal(node["mask"], mask)
    assert torch.equal(mt.nodes["x"]["value"], x)
    assert isinstance(guide, PairedGuide) and isinstance(model, PairedVAE)
    assert model._pyro_name.startswith("paired_model")


def test_log_joint_known_value():
    """log p(x, u, v) = sum over valid members of N(u;0,I) N(v;0,I) p(x|u,v), scaled by N / G."""
    model, _ = small()
    x, mask = ragged_batch()
    gen = torch.Generator().manual_seed(1)
    u, v = torch.randn(6, 2, 2, generator=gen), torch.randn(6, 2, 2, generator=gen)
    cond = poutine.condition(model, data={"u": u, "v": v})
    tr = poutine.trace(cond).get_trace(x, mask, num_groups=60)
    tr.compute_log_prob()
    got = sum(tr.nodes[s]["log_prob_sum"] for s in ("u", "v", "x"))
    std = dist.Normal(0.0, 1.0)
    per_obs = std.log_prob(u).sum(-1) + std.log_prob(v).sum(-1) + model.decoder(u, v).log_prob(x)
    expected = 60 / 6 * per_obs[mask].sum()
    assert_close(got, expected)


def test_padded_slots_contribute_nothing_to_the_elbo():
    model, guide = small()
    x, mask = ragged_batch()
    junk = x.masked_fill(~mask[..., None], 1e4)
    elbo = Trace_ELBO()
    pyro.set_rng_seed(5)
    a = elbo.loss(model, guide, x, mask, num_groups=64)
    pyro.set_rng_seed(5)
    b = elbo.loss(model, guide, junk, mask, num_groups=64)
    assert a == pytest.approx(b, rel=1e-6)
    assert math.isfinite(a)


def test_pair_guide_kinds_and_their_group_posteriors():
    x, mask = ragged_batch()
    tc_guide = pair_guide("group_tcvae", 4, 2, 2, hidden=(8,))
    assert isinstance(tc_guide.group_encoder, PerMemberGroupEncoder)
    loc, scale = tc_guide.group_encoder.observation_posteriors(x)
    q = tc_guide.group_posterior(x, mask)
    assert q.batch_shape == (6, 2)
    assert_close(q.base_dist.loc, loc)
    for kind, combine in (("gvae", average_of_normals), ("mlvae", product_of_normals)):
        guide = pair_guide(kind, 4, 2, 2, hidden=(8,))
        assert type(guide) is GroupGuide
        assert guide.group_encoder.aggregator == {"gvae": "average", "mlvae": "product"}[kind]
        assert isinstance(pair_model(kind, MLPDecoder(2, 2, 4)), GroupVAE)
        q = guide.group_posterior(x, mask)
        want = combine(*guide.group_encoder.observation_posteriors(x), mask)
        assert q.batch_shape == (6, 1)
        assert_close(q.base_dist.loc, want[0])
        assert_close(q.base_dist.scale, want[1])
    cond = pair_guide("group_tcvae", 4, 2, 2, hidden=(8,), instance="conditional")
    tr = poutine.trace(cond).get_trace(x, mask)
    assert tr.nodes["v"]["value"].shape == (6, 2, 2)
    with pytest.raises(ValueError):
        pair_guide("vae", 4, 2, 2)
    with pytest.raises(ValueError):
        pair_model("vae", MLPDecoder(2, 2, 4))


def test_encode_single_observations_gives_the_usual_shapes():
    _, guide = small()
    x = vector_pairs().x[:, 0]                      # [P, 4] single observations
    batch = GroupBatch(x[:, None], torch.ones(x.shape[0], 1, dtype=torch.bool))
    u, v = encode(guide, batch)
    assert u.shape == (64, 2) and v.shape == (64, 1, 2)
    loc, _ = guide.group_encoder.observation_posteriors(batch.x)
    assert_close(u, loc[:, 0])


def evaluate(loss, model, guide, batch, n):
    with torch.no_grad():
        total = 0.0
        for s in range(4):
            pyro.set_rng_seed(s)
            total += float(loss(model, guide, batch.x, batch.mask, num_groups=n))
    return total / 4


def test_group_tcvae_trains_in_a_plain_svi_loop():
    data = vector_pairs()
    model, guide = small()
    pen = GroupTCVAEPenalty(2, 2, beta=2.0, gamma=1.0, hidden=(16,), lr=1e-3)
    loss = PenalizedLoss(Trace_ELBO(), [pen])
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), loss=loss)
    n, full = len(data), data[:]
    start = evaluate(loss, model, guide, full, n)
    disc = [p.detach().clone() for p in pen.discriminator.parameters()]
    for _ in range(4):
        for batch in data.batches(16):
            svi.step(batch.x, batch.mask, num_groups=n)  # the VAE's step, then the critic's
            record = loss.step_critics()
    assert math.isfinite(float(record["discriminator_loss"]))
    assert evaluate(loss, model, guide, full, n) < start
    assert not all(torch.equal(a, b) for a, b in zip(disc, pen.discriminator.parameters()))
    store = {id(p.unconstrained()) for p in pyro.get_param_store().values()}
    assert store.isdisjoint({id(p) for p in pen.discriminator.parameters()})


@pytest.mark.parametrize("kind", ["gvae", "mlvae"])
def test_pair_baselines_train_with_plain_trace_elbo(kind):
    data = vector_pairs()
    model, guide = small(kind)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    elbo = Trace_ELBO().differentiable_loss
    start = evaluate(elbo, model, guide, data[:], len(data))
    for _ in range(4):
        for batch in data.batches(16):
            svi.step(batch.x, batch.mask, num_groups=len(data))
    assert evaluate(elbo, model, guide, data[:], len(data)) < start


def test_group_tcvae_trains_with_fit():
    data = vector_pairs()
    model, guide = small()
    pen = GroupTCVAEPenalty(2, 2, beta=2.0, gamma=1.0, level="full", hidden=(16,), lr=1e-3)
    hist = fit(model, guide, data, epochs=3, batch_size=16, lr=1e-2, penalties=[pen],
               progress=False)
    rows = hist.to_list()
    assert len(rows) == 3
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["discriminator_loss"]) for r in rows)
    assert all(math.isfinite(r["penalty_0"]) for r in rows)
    assert rows[-1]["loss"] < rows[0]["loss"]
