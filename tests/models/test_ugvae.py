"""UG-VAE: sites, masks, scaling, the eq. 10-11 objective by hand, Trace_ELBO agreement, errors."""
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO
from torch.testing import assert_close

from pyro_groups import fit
from pyro_groups.data import GroupDataError, GroupedData
from pyro_groups.guides import UGVAEGuide
from pyro_groups.models import UGVAE, ClusterComponents, MLPDecoder
from pyro_groups.nn_conv import ConvDecoder
from pyro_groups.validation import ArgumentError

C, U, V, X = 3, 2, 2, 4
ELBO = TraceEnum_ELBO(max_plate_nesting=2)


def make(enumerate_in="guide", likelihood="normal", clusters=C, **model_kwargs):
    model = UGVAE(MLPDecoder(U, V, X, hidden=(8,), likelihood=likelihood), clusters, **model_kwargs)
    guide = UGVAEGuide(X, U, V, clusters, hidden=(8,), enumerate_in=enumerate_in)
    return model, guide


def make_data(g=3, k=5, seed=0, binary=False):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(g, k, X, generator=gen)
    if binary:
        x = (x > 0).float()
    sizes = torch.tensor([k, k - 2, 1] * g)[:g]
    mask = torch.arange(k) < sizes[:, None]
    return x.masked_fill(~mask.unsqueeze(-1), 0.0), mask


def draws(guide, x, mask, **kwargs):
    """A guide trace holding one draw of ``u`` (beta) and ``v`` (z) and no ``d``: replaying it
    fixes the continuous draws and leaves ``d`` to the ELBO."""
    tr = poutine.trace(guide).get_trace(x, mask, **kwargs)
    if "d" in tr.nodes:
        tr.remove_node("d")
    return tr


def eq_10_11(model, guide, x, mask, z, beta, num_groups=None, enumerate_in="guide", logits=None):
    """The negative of eqs. 10-11 for given draws of z [G, K, V] and beta [G, 1, U], in plain
    torch: Gaussian terms at the draws, the sums over d exact. With ``enumerate_in="model"``,
    d is marginalised in p(z | beta) instead (no q(d | z)). ``logits`` replace q(d | z)'s."""
    w = mask.to(x.dtype)
    scale = 1.0 if num_groups is None else num_groups / mask.shape[0]
    log_qz = dist.Normal(*_loc_scale(guide.instance_encoder(x))).log_prob(z).sum(-1)
    logits = guide.cluster_net(z) if logits is None else logits
    log_qd = logits - logits.logsumexp(-1, keepdim=True)
    q_beta = guide.group_posterior(x, mask, z)
    log_qb = q_beta.log_prob(beta).squeeze(-1)
    log_pb = (-0.5 * beta.pow(2) - 0.5 * math.log(2 * math.pi)).sum(-1).squeeze(-1)
    loc, sd = model.components(beta)  # [G, 1, C, V]
    log_pz_c = (
        -0.5 * ((z.unsqueeze(-2) - loc) / sd).pow(2) - sd.log() - 0.5 * math.log(2 * math.pi)
    ).sum(-1)  # [G, K, C]
    log_pd = -math.log(model.num_clusters)
    log_px = model.decoder(beta, z).log_prob(x)  # [G, K]
    if enumerate_in == "guide":
        q = log_qd.exp()
        kl_z = (q * (log_qz.unsqueeze(-1) - log_pz_c)).sum(-1)
        kl_d = (q * (log_qd - log_pd)).sum(-1)
        local = log_px - kl_z - kl_d
    else:
        local = log_px + (log_pz_c + log_pd).logsumexp(-1) - log_qz
    elbo = (local * w).sum(-1) - (log_qb - log_pb)
    return -scale * elbo.sum()


def _loc_scale(fn):
    return fn.base_dist.loc, fn.base_dist.scale


@pytest.mark.parametrize("enumerate_in", ["guide", "model"])
@pytest.mark.parametrize("num_groups", [None, 30])
def test_loss_is_eq_10_11_by_hand_on_the_same_draws(enumerate_in, num_groups):
    model, guide = make(enumerate_in)
    x, mask = make_data()
    tr = draws(guide, x, mask, num_groups=num_groups)
    lib = ELBO.differentiable_loss(
        model, poutine.replay(guide, trace=tr), x, mask, num_groups=num_groups
    )
    z, beta = tr.nodes["v"]["value"], tr.nodes["u"]["value"]
    by_hand = eq_10_11(model, guide, x, mask, z, beta, num_groups, enumerate_in)
    assert_close(lib, by_hand)
    params = [p for m in (model, guide) for p in m.parameters()]
    g_lib = torch.autograd.grad(lib, params, allow_unused=True, retain_graph=True)
    g_hand = torch.autograd.grad(by_hand, params, allow_unused=True)
    for a, b in zip(g_lib, g_hand):
        assert (a is None) == (b is None)
        if a is not None:
            assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_model_enumeration_bounds_guide_enumeration_and_meets_it_at_the_exact_posterior():
    model, guide = make("guide")
    x, mask = make_data()
    tr = draws(guide, x, mask)
    z, beta = tr.nodes["v"]["value"], tr.nodes["u"]["value"]
    with torch.no_grad():
        paper = eq_10_11(model, guide, x, mask, z, beta)
        marginal = eq_10_11(model, guide, x, mask, z, beta, enumerate_in="model")
        assert marginal < paper  # Jensen: log sum_d p(d) p(z | d) >= E_q[log p(d) p(z | d) / q]
        loc, sd = model.components(beta)
        exact_logits = dist.Normal(loc, sd).log_prob(z.unsqueeze(-2)).sum(-1)  # p(d | z, beta)
        at_posterior = eq_10_11(model, guide, x, mask, z, beta, logits=exact_logits)
        marginal = eq_10_11(model, guide, x, mask, z, beta, enumerate_in="model")
    assert_close(at_posterior, marginal)


@pytest.mark.filterwarnings("ignore:(?s).*TraceEnum_ELBO instead:UserWarning")
def test_exact_sum_agrees_with_the_monte_carlo_average_of_trace_elbo():
    """Same z, beta draws; Trace_ELBO samples d ~ q(d | z) each time (a score-function
    estimate): its average must match the exact sum within Monte-Carlo error."""
    model, guide = make("guide", strict_enumeration=False)
    x, mask = make_data(g=2, k=6)
    tr = draws(guide, x, mask)
    replayed = poutine.replay(guide, trace=tr)
    exact = ELBO.loss(model, replayed, x, mask)
    mc = torch.tensor([Trace_ELBO().loss(model, replayed, x, mask) for _ in range(400)])
    se = mc.std() / math.sqrt(len(mc))
    assert se > 0.01  # d really is sampled
    assert abs(mc.mean() - exact) < 4 * se


@pytest.mark.parametrize("enumerate_in", ["guide", "model"])
def test_padded_slots_change_nothing(enumerate_in):
    model, guide = make(enumerate_in)
    x, mask = make_data()
    tr = draws(guide, x, mask)
    more_x = torch.cat([x, torch.full((3, 2, X), 1e3)], 1)
    more_mask = torch.cat([mask, torch.zeros(3, 2, dtype=torch.bool)], 1)
    tr_more = draws(guide, more_x, more_mask)
    z = tr_more.nodes["v"]["value"].clone()
    z[:, :5] = tr.nodes["v"]["value"]
    tr_more.nodes["v"]["value"] = z
    tr_more.nodes["u"]["value"] = tr.nodes["u"]["value"]
    a = ELBO.loss(model, poutine.replay(guide, trace=tr), x, mask)
    b = ELBO.loss(model, poutine.replay(guide, trace=tr_more), more_x, more_mask)
    assert math.isclose(a, b, rel_tol=1e-6)


@pytest.mark.parametrize(
    "decoder, x",
    [
        (lambda: MLPDecoder(U, V, X, hidden=(8,), likelihood="bernoulli"), make_data(binary=True)),
        (lambda: ConvDecoder(U, V, image_size=8), (torch.rand(3, 5, 1, 8, 8), make_data()[1])),
    ],
    ids=["mlp-bernoulli", "conv"],
)
def test_sites_plates_shapes_and_forward_sampling(decoder, x):
    x, mask = x
    model = UGVAE(decoder(), C)
    tr = poutine.trace(model).get_trace(x, mask)
    g, k = mask.shape
    assert tr.nodes["u"]["value"].shape == (g, 1, U)
    assert tr.nodes["d"]["value"].shape == (g, k)
    assert tr.nodes["v"]["value"].shape == (g, k, V)
    assert tr.nodes["d"]["infer"] == {"enumerate": "parallel"}
    plates = {s: {f.name for f in tr.nodes[s]["cond_indep_stack"]} for s in ("u", "d", "v", "x")}
    assert plates == {"u": {"groups"}, "d": {"groups", "instances"},
                      "v": {"groups", "instances"}, "x": {"groups", "instances"}}
    sampled = model(None, mask)
    assert sampled.shape == x.shape and torch.isfinite(sampled).all()


def test_z_follows_the_component_of_its_cluster():
    model, _ = make()
    with torch.no_grad():
        for layer in ("weight0", "weight1"):
            getattr(model.components.net, layer).zero_()
        bias = torch.zeros(C, 2 * V)
        bias[:, :V] = 10.0 * torch.arange(C).unsqueeze(-1)  # mu_c = 10 c
        bias[:, V:] = -10.0  # tiny scale
        model.components.net.bias1.copy_(bias)
        model.components.net.bias0.zero_()
    mask = torch.ones(50, 4, dtype=torch.bool)
    tr = poutine.trace(model).get_trace(None, mask)
    d, z = tr.nodes["d"]["value"], tr.nodes["v"]["value"]
    assert_close(z, 10.0 * d.unsqueeze(-1).float().expand_as(z), atol=1e-3, rtol=0)
    assert len(d.unique()) == C


def test_trains_in_a_plain_svi_loop_and_in_fit():
    pyro.set_rng_seed(1)
    model, guide = make()
    x, mask = make_data(g=6, k=5)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.02}), TraceEnum_ELBO(max_plate_nesting=2))
    losses = [svi.step(x, mask, num_groups=6) for _ in range(150)]
    assert sum(losses[-20:]) < sum(losses[:20])
    model, guide = make("model")
    hist = fit(model, guide, GroupedData(x, mask), epochs=3, batch_size=3,
               loss=TraceEnum_ELBO(max_plate_nesting=2), progress=False)
    assert all(math.isfinite(r["loss"]) for r in hist.to_list())


def test_max_plate_nesting_may_be_guessed():
    model, guide = make()
    x, mask = make_data()
    assert math.isfinite(TraceEnum_ELBO().loss(model, guide, x, mask))


@pytest.mark.filterwarnings("ignore:(?s).*TraceEnum_ELBO instead:UserWarning")
@pytest.mark.filterwarnings("ignore:Found vars in model but not guide:UserWarning")
@pytest.mark.parametrize("enumerate_in", ["guide", "model"])
def test_an_elbo_that_cannot_enumerate_is_a_clear_error(enumerate_in):
    model, guide = make(enumerate_in)
    x, mask = make_data()
    with pytest.raises(ValueError, match="sampled, not enumerated.*TraceEnum_ELBO"):
        Trace_ELBO().loss(model, guide, x, mask)
    with pyro.validation_enabled(False), pytest.raises(ValueError, match="TraceEnum_ELBO"):
        SVI(model, guide, pyro.optim.Adam({}), Trace_ELBO()).step(x, mask)
    lenient, _ = make(enumerate_in, strict_enumeration=False)
    assert math.isfinite(Trace_ELBO().loss(lenient, guide, x, mask))


@pytest.mark.parametrize("clusters", [0, -1, 1.5, True])
def test_fewer_than_one_cluster_is_an_error(clusters):
    with pytest.raises(ArgumentError, match="num_clusters must be an integer"):
        UGVAE(MLPDecoder(U, V, X), clusters)
    with pytest.raises(ArgumentError, match="num_clusters must be an integer"):
        UGVAEGuide(X, U, V, clusters)


def test_one_cluster_works():
    model, guide = make(clusters=1)
    x, mask = make_data()
    assert math.isfinite(ELBO.loss(model, guide, x, mask))


def test_empty_group_is_an_error():
    model, guide = make()
    x, mask = make_data()
    mask[1] = False
    for fn in (model, guide):
        with pytest.raises(GroupDataError, match="empty group"):
            fn(x, mask)
    with pytest.raises(GroupDataError, match="empty batch"):
        model(x[:, :0], mask[:, :0])


def test_bernoulli_decoder_on_grey_values_is_named():
    model, guide = make(likelihood="bernoulli")
    x, mask = make_data()
    with pytest.raises(GroupDataError, match="outside the support .* Bernoulli"):
        ELBO.loss(model, guide, x, mask)


def test_mismatched_dimensions_are_errors():
    with pytest.raises(ValueError, match="u_dim=3 does not match the decoder's u_dim=2"):
        UGVAE(MLPDecoder(U, V, X), C, u_dim=3)
    with pytest.raises(ValueError, match="v_dim=1 does not match the decoder's v_dim=2"):
        UGVAE(MLPDecoder(U, V, X), C, v_dim=1)
    with pytest.raises(ValueError, match="components take u_dim=2"):
        ClusterComponents(U, V, C)(torch.zeros(3, 1, 5))
    model, _ = make()
    x, mask = make_data()
    for guide, match in [
        (UGVAEGuide(X, U, V, C + 2, hidden=(8,)), "enumerated over 5 values .* num_clusters=3"),
        (UGVAEGuide(X, U, V + 1, C, hidden=(8,)), r"v \(z\) has size 3"),
        (UGVAEGuide(X, U + 1, V, C, hidden=(8,)), r"u \(beta\) has size 3"),
    ]:
        with pytest.raises(ValueError, match=match):
            ELBO.loss(model, guide, x, mask)


def test_components_are_independent_networks():
    comp = ClusterComponents(U, V, C, hidden=(5,))
    u = torch.randn(4, 1, U)
    loc, scale = comp(u)
    assert loc.shape == scale.shape == (4, 1, C, V) and (scale > 0).all()
    loc.sum().backward(inputs=[comp.net.weight1])
    grad = comp.net.weight1.grad  # [C, 5, 2V]: only the loc half of every copy is used
    assert (grad[..., V:] == 0).all() and (grad[..., :V] != 0).any(-1).any(-1).all()
