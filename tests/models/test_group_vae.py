"""GroupVAE and its decoders: sites, plates, masks, subsample scaling, sampling, input checks."""
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from torch.nn.functional import softplus
from torch.testing import assert_close

from linear_gaussian import LinearGaussianDecoder
from pyro_groups.data import GroupDataError, exam_scores_mean
from pyro_groups.models import ExamScoresDecoder, GroupVAE, MLPDecoder
from pyro_groups.validation import ArgumentError

DECODERS = {
    "exam": lambda: ExamScoresDecoder(),
    "mlp-normal": lambda: MLPDecoder(2, 3, 4, hidden=(8,)),
    "mlp-bernoulli": lambda: MLPDecoder(2, 3, 4, hidden=(8,), likelihood="bernoulli"),
    "linear": lambda: LinearGaussianDecoder([[1.0], [0.5]], [[0.3], [-1.0]], 0.4),
}


def make_data(decoder, g=3, k=5, seed=0):
    """Observations valid for ``decoder`` and a ragged mask with sizes k, k - 2, 1, ..."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(g, k, *decoder.event_shape, generator=gen)
    if getattr(decoder, "likelihood", None) == "bernoulli":
        x = (x > 0).float()
    sizes = torch.tensor([k, k - 2, 1] * g)[:g]
    mask = torch.arange(k) < sizes[:, None]
    return x.masked_fill(~mask.view(g, k, *[1] * len(decoder.event_shape)), 0.0), mask


def trace_model(model, x, mask, **kwargs):
    tr = poutine.trace(model).get_trace(x, mask, **kwargs)
    tr.compute_log_prob()
    return tr


@pytest.mark.parametrize("name", DECODERS)
def test_sites_plates_and_shapes(name):
    dec = DECODERS[name]()
    model = GroupVAE(dec)
    x, mask = make_data(dec)
    tr = trace_model(model, x, mask)
    g, k = mask.shape
    assert tr.nodes["u"]["value"].shape == (g, 1, model.u_dim)
    assert tr.nodes["v"]["value"].shape == (g, k, model.v_dim)
    assert tr.nodes["x"]["value"].shape == x.shape and tr.nodes["x"]["is_observed"]
    assert torch.equal(tr.nodes["x"]["value"], x)
    for site, plates in {"u": {("groups", -2)}, "v": {("groups", -2), ("instances", -1)}}.items():
        assert {(f.name, f.dim) for f in tr.nodes[site]["cond_indep_stack"]} == plates
    assert tr.nodes["u"]["fn"].event_shape == (model.u_dim,)
    assert tr.nodes["x"]["fn"].batch_shape == (g, k)
    assert tr.nodes["x"]["fn"].event_shape == dec.event_shape


@pytest.mark.parametrize("name", DECODERS)
def test_sampling_x_when_not_given(name):
    dec = DECODERS[name]()
    model = GroupVAE(dec)
    _, mask = make_data(dec)
    x = model(None, mask)
    assert x.shape == (*mask.shape, *dec.event_shape)
    assert torch.isfinite(x).all()
    if name == "mlp-bernoulli":
        assert set(x.unique().tolist()) <= {0.0, 1.0}
    x_given, _ = make_data(dec)
    assert model(x_given, mask) is not None
    assert_close(model(x_given, mask), x_given)


def test_sampled_x_has_the_marginal_variance():
    # linear decoder: Var x = A A^T + B B^T + s^2 I; two observations of one group share A u
    dec = LinearGaussianDecoder([[1.0]], [[2.0]], 0.5)
    x = GroupVAE(dec)(None, torch.ones(20000, 2, dtype=torch.bool))[..., 0]
    assert abs(x.var().item() - (1 + 4 + 0.25)) < 0.15
    assert abs((x[:, 0] * x[:, 1]).mean().item() - 1.0) < 0.1  # Cov(x_1, x_2) = A A^T


@pytest.mark.parametrize("name", ["exam", "linear"])
def test_log_joint_known_answer(name):
    dec = DECODERS[name]()
    model = GroupVAE(dec)
    x, mask = make_data(dec)
    tr = trace_model(model, x, mask)
    u, v = tr.nodes["u"]["value"], tr.nodes["v"]["value"]
    std = dist.Normal(0.0, 1.0)
    s = dec.noise
    loglik = dist.Normal(dec.mean(u, v), s).log_prob(x).sum(-1)  # [G, K]
    expected = std.log_prob(u).sum() + ((std.log_prob(v).sum(-1) + loglik) * mask).sum()
    assert_close(tr.log_prob_sum(), expected)
    # by hand for one valid slot
    if name == "exam":
        mu, sig = u[0, 0, 0], u[0, 0, 1]
        loc = 2 * mu + (sig**2 + 1) * v[0, 0, 0]
        by_hand = -0.5 * math.log(2 * math.pi * s**2) - (x[0, 0, 0] - loc) ** 2 / (2 * s**2)
        assert_close(tr.nodes["x"]["log_prob"][0, 0], by_hand)


@pytest.mark.parametrize("name", DECODERS)
@pytest.mark.parametrize("garbage", [1e3, float("nan")])
def test_padded_slots_contribute_exactly_zero(name, garbage):
    dec = DECODERS[name]()
    model = GroupVAE(dec)
    x, mask = make_data(dec)
    tr = trace_model(model, x, mask)
    for site in ("v", "x"):
        assert (tr.nodes[site]["log_prob"][~mask] == 0).all()
        assert (tr.nodes[site]["log_prob"][mask] != 0).all()
    # garbage in padded observations (NaN, out of a Bernoulli's support) changes nothing,
    # neither the log joint nor its gradient
    bad = x.masked_fill(~mask.view(*mask.shape, *[1] * len(dec.event_shape)), garbage)
    tr_bad = trace_model(poutine.replay(model, trace=tr), bad, mask)
    assert_close(tr_bad.log_prob_sum(), tr.log_prob_sum())
    params = list(dec.parameters())
    if params:
        g1 = torch.autograd.grad(tr.log_prob_sum(), params, allow_unused=True)
        g2 = torch.autograd.grad(tr_bad.log_prob_sum(), params, allow_unused=True)
        for a, b in zip(g1, g2):
            assert (a is None) == (b is None)
            if a is not None:
                assert torch.isfinite(b).all()
                assert_close(a, b)


@pytest.mark.parametrize("name", ["exam", "mlp-normal"])
def test_subsample_scaling(name):
    dec = DECODERS[name]()
    model = GroupVAE(dec)
    x, mask = make_data(dec, g=4)
    full = trace_model(model, x, mask)
    scaled = trace_model(poutine.replay(model, trace=full), x, mask, num_groups=100)
    for site in ("u", "v", "x"):
        assert scaled.nodes[site]["scale"] == 25.0
        assert_close(scaled.nodes[site]["log_prob_sum"], 25.0 * full.nodes[site]["log_prob_sum"])
    assert_close(scaled.log_prob_sum(), 25.0 * full.log_prob_sum())
    same = trace_model(poutine.replay(model, trace=full), x, mask, num_groups=4)
    assert_close(same.log_prob_sum(), full.log_prob_sum())
    with pytest.raises(ValueError, match="num_groups=3 is smaller"):
        model(x, mask, num_groups=3)


BAD_INPUTS = {
    "nan": (lambda x, m: (x.index_fill(0, torch.tensor([0]), float("nan")), m), "non-finite"),
    "empty-group": (lambda x, m: (x, m.index_fill(0, torch.tensor([1]), False)), "empty group"),
    "wrong-shape": (lambda x, m: (x[:, :-1], m), "matching mask"),
    "mask-mismatch": (lambda x, m: (x, m[:-1]), "matching mask"),
    "no-event-dim": (lambda x, m: (x[0, :, 0], m), "matching mask"),
    "non-bool-mask": (lambda x, m: (x, m.float()), "bool"),
    "mask-1d": (lambda x, m: (x, m[0]), r"\[G, K\]"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_raises_group_data_error(case):
    dec = ExamScoresDecoder()
    make, match = BAD_INPUTS[case]
    x, mask = make(*make_data(dec))
    with pytest.raises(GroupDataError, match=match):
        GroupVAE(dec)(x, mask)


def test_value_checks_follow_pyro_validation():
    dec = ExamScoresDecoder()
    x, mask = make_data(dec)
    x[0, 0] = float("nan")
    with pyro.validation_enabled(False):
        GroupVAE(dec)(x, mask)  # no data-reading checks (no GPU sync) when validation is off
        with pytest.raises(GroupDataError):
            GroupVAE(dec)(x[:, :2], mask)  # shapes are always checked


def test_code_sizes_default_to_the_decoder_and_can_be_overridden():
    model = GroupVAE(MLPDecoder(3, 2, 4))
    assert (model.u_dim, model.v_dim) == (3, 2)

    class Bare(torch.nn.Module):
        def forward(self, u, v):
            loc = (u.sum(-1, keepdim=True) + v.sum(-1, keepdim=True)).expand(*v.shape[:-1], 1)
            return dist.Normal(loc, 1.0).to_event(1)

    model = GroupVAE(Bare(), u_dim=5, v_dim=4)
    tr = trace_model(model, torch.zeros(2, 3, 1), torch.ones(2, 3, dtype=torch.bool))
    assert tr.nodes["u"]["value"].shape == (2, 1, 5) and tr.nodes["v"]["value"].shape == (2, 3, 4)
    with pytest.raises(ArgumentError, match="has no u_dim attribute"):
        GroupVAE(Bare())


def test_models_get_unique_names_and_separate_parameters():
    a, b = GroupVAE(MLPDecoder(2, 1, 3)), GroupVAE(MLPDecoder(2, 1, 3))
    assert a._pyro_name != b._pyro_name
    assert GroupVAE(ExamScoresDecoder(), name="mine")._pyro_name == "mine"
    x, mask = make_data(a.decoder)
    before = [p.detach().clone() for p in b.parameters()]
    loss = -trace_model(a, x, mask).log_prob_sum()
    loss.backward()
    torch.optim.SGD(a.parameters(), lr=0.1).step()
    assert all(p.grad is None for p in b.parameters())
    for p, q in zip(b.parameters(), before):
        assert torch.equal(p, q)


# ---------------------------------------------------------------------------- decoders


def test_mlp_decoder_normal_and_bernoulli():
    u, v = torch.randn(3, 1, 2), torch.randn(3, 5, 1)
    normal = MLPDecoder(2, 1, 4, hidden=(8,))
    d = normal(u, v)
    assert d.batch_shape == (3, 5) and d.event_shape == (4,)
    assert_close(d.base_dist.scale, torch.full((3, 5, 4), float(softplus(torch.zeros(())) + 1e-4)))
    assert_close(d.mean, normal.mean(u, v))
    bern = MLPDecoder(2, 1, 4, hidden=(8,), likelihood="bernoulli")
    d = bern(u, v)
    assert isinstance(d.base_dist, dist.Bernoulli)
    assert_close(d.base_dist.probs, bern.mean(u, v))
    assert ((bern.mean(u, v) > 0) & (bern.mean(u, v) < 1)).all()
    # extra leading (particle) dimensions broadcast
    assert bern(torch.randn(7, 3, 1, 2), torch.randn(7, 3, 5, 1)).batch_shape == (7, 3, 5)
    # gradients reach every parameter
    normal(u, v).log_prob(torch.randn(3, 5, 4)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in normal.parameters())
    with pytest.raises(ValueError, match="likelihood"):
        MLPDecoder(2, 1, 4, likelihood="poisson")


def test_exam_scores_decoder():
    dec = ExamScoresDecoder(noise=0.3)
    assert (dec.u_dim, dec.v_dim, dec.event_shape) == (2, 1, (1,))
    assert list(dec.parameters()) == []
    u, v = torch.randn(4, 1, 2), torch.randn(4, 6, 1)
    d = dec(u, v)
    assert_close(d.mean, exam_scores_mean(u, v).expand(4, 6, 1))
    assert_close(d.base_dist.scale, torch.full((4, 6, 1), 0.3))
    assert d.batch_shape == (4, 6)
