"""GroupGuide and its composition: sites, presets, conditioning on u, padding invariance, SVI."""
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, JitTrace_ELBO, Trace_ELBO, TraceMeanField_ELBO
from torch.testing import assert_close

from linear_gaussian import LinearGaussianDecoder, exact_guide, exact_log_marginal, sample_groups
from pyro_groups.data import GroupDataError, exam_scores
from pyro_groups.guides import (
    PRESETS,
    DeepSetsGroupEncoder,
    GroupGuide,
    PerObservationGroupEncoder,
    UniformMixtureOfNormals,
    make_guide,
    preset_guide,
)
from pyro_groups.models import ExamScoresDecoder, GroupVAE, MLPDecoder

GROUPS = ["average", "product", "mixture", "deepsets"]
INSTANCES = ["conditional", "unconditional"]
DECODERS = {
    "exam": lambda: ExamScoresDecoder(),
    "mlp-normal": lambda: MLPDecoder(2, 3, 4, hidden=(8,)),
    "mlp-bernoulli": lambda: MLPDecoder(2, 3, 4, hidden=(8,), likelihood="bernoulli"),
    "linear": lambda: LinearGaussianDecoder([[1.0], [0.5]], [[0.3], [-1.0]], 0.4),
}
OBJECTIVES = {"trace": Trace_ELBO, "meanfield": TraceMeanField_ELBO}


def setup(name, group="deepsets", instance="conditional", g=3, k=5, seed=0):
    dec = DECODERS[name]()
    model = GroupVAE(dec)
    x_dim = dec.event_shape[0]
    guide = make_guide(x_dim, model.u_dim, model.v_dim, group=group, instance=instance, hidden=(8,))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(g, k, x_dim, generator=gen)
    if name == "mlp-bernoulli":
        x = (x > 0).float()
    mask = torch.arange(k) < torch.tensor([k, 2, 1, k - 1] * g)[:g, None]
    return model, guide, x.masked_fill(~mask[..., None], 0.0), mask


def pad(x, mask, extra=3, garbage=1e3):
    """The same groups padded to ``K + extra`` slots; every padded slot holds ``garbage``."""
    g, k, d = x.shape
    x_pad = torch.cat([x, torch.zeros(g, extra, d)], 1)
    mask_pad = torch.cat([mask, torch.zeros(g, extra, dtype=torch.bool)], 1)
    return x_pad.masked_fill(~mask_pad[..., None], garbage), mask_pad


# ---------------------------------------------------------------------------- structure


@pytest.mark.parametrize("instance", INSTANCES)
@pytest.mark.parametrize("group", GROUPS)
def test_sites_plates_and_shapes(group, instance):
    model, guide, x, mask = setup("mlp-normal", group, instance)
    tr = poutine.trace(guide).get_trace(x, mask)
    tr.compute_log_prob()
    g, k = mask.shape
    assert tr.nodes["u"]["value"].shape == (g, 1, 2)
    assert tr.nodes["v"]["value"].shape == (g, k, 3)
    for site, plates in {"u": {("groups", -2)}, "v": {("groups", -2), ("instances", -1)}}.items():
        assert {(f.name, f.dim) for f in tr.nodes[site]["cond_indep_stack"]} == plates
    q_u = tr.nodes["u"]["fn"]
    if group == "mixture":
        assert isinstance(q_u, UniformMixtureOfNormals)
    else:
        assert isinstance(q_u, dist.Independent) and isinstance(q_u.base_dist, dist.Normal)
    assert q_u.batch_shape == (g, 1) and q_u.event_shape == (2,)
    log_q_v = tr.nodes["v"]["log_prob"]
    assert (log_q_v[~mask] == 0).all() and (log_q_v[mask] != 0).all()
    assert guide.instance_encoder.conditional == (instance == "conditional")
    enc = guide.group_encoder
    if group == "deepsets":
        assert isinstance(enc, DeepSetsGroupEncoder)
    else:
        assert isinstance(enc, PerObservationGroupEncoder) and enc.aggregator == group


def test_presets():
    assert PRESETS == {
        "gvae": ("average", "unconditional"),
        "mlvae": ("product", "unconditional"),
        "mlvae-mixture": ("mixture", "unconditional"),
        "cxvae": ("deepsets", "conditional"),
    }
    for name, (group, instance) in PRESETS.items():
        guide = preset_guide(name, 1, 2, 1, hidden=(4,))
        assert isinstance(guide, GroupGuide)
        assert guide.instance_encoder.conditional == (instance == "conditional")
        assert getattr(guide.group_encoder, "aggregator", "deepsets") == group
    with pytest.raises(ValueError, match="unknown preset"):
        preset_guide("vae", 1, 2, 1)
    with pytest.raises(ValueError, match="unknown group .median."):
        make_guide(1, 2, 1, group="median")
    with pytest.raises(ValueError, match="instance"):
        make_guide(1, 2, 1, instance="both")


def test_guides_get_unique_names():
    a, b = make_guide(1, 2, 1), make_guide(1, 2, 1)
    assert a._pyro_name != b._pyro_name
    assert make_guide(1, 2, 1, name="q")._pyro_name == "q"


def test_conditional_instance_encoder_uses_u():
    _, guide, x, mask = setup("mlp-normal", "deepsets", "conditional")
    u1, u2 = torch.zeros(3, 1, 2), torch.ones(3, 1, 2)
    a, b = guide.instance_posterior(x, u1), guide.instance_posterior(x, u2)
    assert a.batch_shape == (3, 5) and not torch.allclose(a.mean, b.mean)
    # the same observation in two groups with different codes gets two different posteriors
    same = x[:1].expand(2, 5, 4)
    q = guide.instance_posterior(same, torch.tensor([[[0.0, 0.0]], [[2.0, -1.0]]]))
    assert not torch.allclose(q.mean[0], q.mean[1])
    with pytest.raises(ValueError, match="needs the group code"):
        guide.instance_posterior(x)
    _, unc, _, _ = setup("mlp-normal", "deepsets", "unconditional")
    assert_close(unc.instance_posterior(x, u1).mean, unc.instance_posterior(x, u2).mean)
    assert_close(unc.instance_posterior(x).mean, unc.instance_posterior(x, u1).mean)


@pytest.mark.parametrize("group", GROUPS)
def test_group_encoder_is_permutation_invariant(group):
    _, guide, x, mask = setup("mlp-normal", group, "conditional", g=4, k=6)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    a, b = guide.group_posterior(x, mask), guide.group_posterior(x[:, perm], mask[:, perm])
    assert_close(a.mean, b.mean)
    u = torch.randn(4, 1, 2)
    assert_close(a.log_prob(u), b.log_prob(u))


# ---------------------------------------------------------------------------- padding invariance


def padded_trace(guide, tr, x_pad, mask_pad, garbage):
    """A guide trace on the padded batch holding ``tr``'s values (garbage in padded ``v``)."""
    tp = poutine.trace(guide).get_trace(x_pad, mask_pad)
    v = tr.nodes["v"]["value"]
    extra = x_pad.shape[1] - v.shape[1]
    v_pad = torch.cat([v, torch.full((v.shape[0], extra, v.shape[2]), garbage)], 1)
    tp.nodes["u"]["value"] = tr.nodes["u"]["value"]
    tp.nodes["v"]["value"] = v_pad.masked_fill(~mask_pad[..., None], garbage)
    return tp


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("instance", INSTANCES)
@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("name", DECODERS)
def test_padding_changes_nothing(name, group, instance, objective):
    """The same groups padded to a larger K, with garbage in every padded slot of x and v, give the
    same ELBO (at the same latent values), the same gradients and the same codes."""
    model, guide, x, mask = setup(name, group, instance)
    garbage = 1.0 if name == "mlp-bernoulli" else 1e3
    x_pad, mask_pad = pad(x, mask, garbage=garbage)
    tr = poutine.trace(guide).get_trace(x, mask)
    tp = padded_trace(guide, tr, x_pad, mask_pad, 1e3)
    elbo = OBJECTIVES[objective]()
    loss = elbo.differentiable_loss(model, poutine.replay(guide, trace=tr), x, mask)
    loss_pad = elbo.differentiable_loss(model, poutine.replay(guide, trace=tp), x_pad, mask_pad)
    assert torch.isfinite(loss)
    assert_close(loss_pad, loss)
    params = [p for p in (*guide.parameters(), *model.parameters())]
    g1 = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    g2 = torch.autograd.grad(loss_pad, params, allow_unused=True)
    for a, b in zip(g1, g2):
        if a is None or b is None:
            assert a is None and b is None
        else:
            assert_close(b, a, rtol=1e-4, atol=1e-4)  # float sums in another order
    # the codes
    q, q_pad = guide.group_posterior(x, mask), guide.group_posterior(x_pad, mask_pad)
    assert_close(q_pad.mean, q.mean)
    u = tr.nodes["u"]["value"]
    assert_close(q_pad.log_prob(u), q.log_prob(u))
    r, r_pad = guide.instance_posterior(x, u), guide.instance_posterior(x_pad, u)
    assert_close(r_pad.mean[:, : x.shape[1]][mask], r.mean[mask])
    assert_close(r_pad.stddev[:, : x.shape[1]][mask], r.stddev[mask])


@pytest.mark.parametrize("group", GROUPS)
def test_padding_changes_nothing_jit(group):
    model, guide, x, mask = setup("exam", group, "conditional")
    x_pad, mask_pad = pad(x, mask)
    tr = poutine.trace(guide).get_trace(x, mask)
    tp = padded_trace(guide, tr, x_pad, mask_pad, 1e3)
    loss = JitTrace_ELBO(ignore_jit_warnings=True).loss(
        model, poutine.replay(guide, trace=tr), x, mask
    )
    loss_pad = JitTrace_ELBO(ignore_jit_warnings=True).loss(
        model, poutine.replay(guide, trace=tp), x_pad, mask_pad
    )
    assert_close(loss_pad, loss, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("group", GROUPS)
def test_nan_in_padded_slots_changes_nothing(group):
    model, guide, x, mask = setup("mlp-normal", group, "conditional")
    bad = x.masked_fill(~mask[..., None], float("nan"))
    pyro.set_rng_seed(1)
    loss = Trace_ELBO().differentiable_loss(model, guide, x, mask)
    pyro.set_rng_seed(1)
    loss_bad = Trace_ELBO().differentiable_loss(model, guide, bad, mask)
    assert_close(loss_bad, loss)
    loss_bad.backward()
    assert all(torch.isfinite(p.grad).all() for p in guide.parameters() if p.grad is not None)


# ---------------------------------------------------------------------------- ELBO scaling


@pytest.mark.parametrize("objective", ["trace", "meanfield", "jit"])
@pytest.mark.parametrize("group", ["average", "mixture", "deepsets"])
def test_minibatch_elbo_is_scaled_to_the_data_set(group, objective):
    """With num_groups=N the ELBO of G groups is N / G times their ELBO (same random draws)."""
    model, guide, x, mask = setup("mlp-normal", group, "conditional", g=4)
    make = {"trace": Trace_ELBO, "meanfield": TraceMeanField_ELBO,
            "jit": lambda: JitTrace_ELBO(ignore_jit_warnings=True)}[objective]
    pyro.set_rng_seed(3)
    scaled = make().loss(model, guide, x, mask, num_groups=100)
    pyro.set_rng_seed(3)
    plain = make().loss(model, guide, x, mask)
    assert abs(plain) > 1
    assert_close(torch.tensor(scaled), torch.tensor(25.0 * plain), rtol=1e-5, atol=1e-3)


def test_minibatch_log_joint_is_scaled_exactly():
    model, guide, x, mask = setup("mlp-normal", "deepsets", "conditional", g=4)
    tr = poutine.trace(guide).get_trace(x, mask)
    for fn, t in ((model, tr), (guide, tr)):
        replayed = poutine.trace(poutine.replay(fn, trace=t))
        full = replayed.get_trace(x, mask).log_prob_sum()
        part = replayed.get_trace(x, mask, num_groups=10).log_prob_sum()
        assert_close(part, 2.5 * full)


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda x, m: (x.index_fill(1, torch.tensor([0]), float("nan")), m), "non-finite"),
        (lambda x, m: (x, m.index_fill(0, torch.tensor([2]), False)), "empty group"),
        (lambda x, m: (x[:, :-1], m), "matching mask"),
        (lambda x, m: (x, m[:, :-1]), "matching mask"),
        (lambda x, m: (x, m.long()), "bool"),
        (lambda x, m: (x, m[:0]), "empty batch"),
    ],
)
def test_bad_input_to_guide_raises_group_data_error(make, match):
    _, guide, x, mask = setup("mlp-normal")
    with pytest.raises(GroupDataError, match=match):
        guide(*make(x, mask))


# ---------------------------------------------------------------------------- exact posterior


def test_exact_guide_elbo_equals_log_marginal_for_every_particle():
    """With the exact posterior, log p(x, z) - log q(z | x) = log p(x) for every sample: checks the
    model's log joint, the guide's conditional structure and the particle dimension together."""
    dec = LinearGaussianDecoder([[1.0], [0.5]], [[0.3], [-1.0]], 0.4)
    data = sample_groups(dec, 20, 3, seed=1)
    logp = exact_log_marginal(dec, data.x, data.mask).sum()
    model, guide = GroupVAE(dec), exact_guide(dec, 3)
    vectorized = Trace_ELBO(num_particles=4, vectorize_particles=True, max_plate_nesting=2)
    for elbo in (Trace_ELBO(), vectorized):
        elbo_value = -elbo.loss(model, guide, data.x, data.mask)
        assert_close(torch.tensor(elbo_value), logp, rtol=1e-5, atol=1e-3)
    # padded to a larger K with garbage: still exact
    x_pad, mask_pad = pad(data.x, data.mask, extra=2)
    elbo_value = -Trace_ELBO().loss(model, guide, x_pad, mask_pad)
    assert_close(torch.tensor(elbo_value), logp, rtol=1e-5, atol=1e-3)


# ---------------------------------------------------------------------------- plain SVI


def svi_losses(model, guide, x, mask, steps, lr=0.01, num_groups=None):
    svi = SVI(model, guide, pyro.optim.Adam({"lr": lr}), Trace_ELBO())
    return [svi.step(x, mask, num_groups=num_groups) for _ in range(steps)]


@pytest.fixture(scope="module")
def exam():
    return exam_scores(64, seed=1)


@pytest.mark.parametrize(
    "group, instance",
    [(g, i) for g in GROUPS for i in INSTANCES] + [PRESETS[p] for p in ("gvae", "cxvae")],
    ids=[f"{g}-{i}" for g in GROUPS for i in INSTANCES] + ["preset-gvae", "preset-cxvae"],
)
def test_every_combination_trains_in_a_plain_svi_loop(exam, group, instance):
    model = GroupVAE(ExamScoresDecoder())
    if (group, instance) in (PRESETS["gvae"], PRESETS["cxvae"]):
        guide = preset_guide("gvae" if group == "average" else "cxvae", 1, 2, 1, hidden=(16,))
    else:
        guide = make_guide(1, 2, 1, group=group, instance=instance, hidden=(16,))
    b = exam[torch.arange(32)]
    losses = svi_losses(model, guide, b.x, b.mask, 60, lr=0.02, num_groups=64)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.5 * first, (first, last)


@pytest.mark.parametrize(
    "likelihood, preset",
    [
        ("normal", "cxvae"),
        ("bernoulli", "cxvae"),
        ("normal", "mlvae-mixture"),
        ("bernoulli", "mlvae"),
    ],
)
def test_mlp_decoder_trains(likelihood, preset):
    gen = torch.Generator().manual_seed(0)
    centers = torch.randn(16, 1, 6, generator=gen)
    x = centers + 0.3 * torch.randn(16, 5, 6, generator=gen)
    if likelihood == "bernoulli":
        x = (x > 0).float()
    mask = torch.ones(16, 5, dtype=torch.bool)
    model = GroupVAE(MLPDecoder(2, 2, 6, hidden=(16,), likelihood=likelihood))
    guide = preset_guide(preset, 6, 2, 2, hidden=(16,))
    losses = svi_losses(model, guide, x, mask, 80, lr=0.03)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < first - 0.1 * abs(first), (first, last)
