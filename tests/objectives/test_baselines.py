"""Known-answer tests for the unsupervised baselines of Locatello et al. (2019).

beta-VAE, AnnealedVAE, beta-TCVAE (MWS estimator), DIP-VAE-I/II and FactorVAE as loss callables
and penalty modules on ``IIDVAE`` + ``IIDGuide``; "fixed draws" means the same Pyro seed before
each evaluation, so the guide's reparameterised noise is identical.
"""
from __future__ import annotations

import math

import pyro
from pyro import poutine
import pytest
import torch
import torch.distributions as td
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
from torch.testing import assert_close

from pyro_groups.data import GroupBatch
from pyro_groups.data.factors import random_groups
from pyro_groups.data.sprites import Sprites
from pyro_groups.guides import make_guide
from pyro_groups.guides.iid_guide import IIDGuide
from pyro_groups.models import GroupVAE, MLPDecoder
from pyro_groups.models.iid_vae import IIDVAE
from pyro_groups.nn_conv import ConvDecoder, conv_body
from pyro_groups.objectives.annealed_vae import AnnealedVAELoss, linear_capacity
from pyro_groups.objectives.beta_tcvae import BetaTCVAELoss, log_qz_mws, total_correlation_mws
from pyro_groups.objectives.beta_vae import BetaVAELoss
from pyro_groups.objectives.dip_vae import (
    DIPVAELoss,
    dip_covariance,
    dip_penalty,
    weighted_covariance,
)
from pyro_groups.objectives.elbo_terms import elbo_terms, observation_scale, posterior_codes
from pyro_groups.adversary.factor_vae import FactorVAEPenalty
from pyro_groups.adversary.penalized import PenalizedLoss
from pyro_groups.training import fit


def make_data(g=4, k=3, x_dim=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(g, k, x_dim, generator=gen) > 0.5).float()
    mask = torch.ones(g, k, dtype=torch.bool)
    mask[1, 2] = mask[2, 1:] = False
    return x.masked_fill(~mask.unsqueeze(-1), 0.0), mask


def mlp_pair(z_dim=3, x_dim=6):
    model = IIDVAE(MLPDecoder(0, z_dim, x_dim, hidden=(8,), likelihood="bernoulli"))
    return model, IIDGuide(x_dim, z_dim, (8,))


def at_seed(fn, seed=3):
    pyro.set_rng_seed(seed)
    return fn()


# ---------------------------------------------------------------- beta-VAE and the ELBO split


@pytest.mark.parametrize("num_groups", [None, 40])
def test_beta_one_equals_pyro_elbos_on_fixed_draws(num_groups):
    model, guide = mlp_pair()
    x, mask = make_data()
    args = (model, guide, x, mask)
    kw = {"num_groups": num_groups}
    mc = at_seed(lambda: BetaVAELoss(1.0, analytic_kl=False)(*args, **kw))
    assert_close(mc, at_seed(lambda: Trace_ELBO().differentiable_loss(*args, **kw)))
    analytic = at_seed(lambda: BetaVAELoss(1.0)(*args, **kw))
    assert_close(analytic, at_seed(lambda: TraceMeanField_ELBO().differentiable_loss(*args, **kw)))
    assert not torch.allclose(mc, analytic)  # the two KL estimates differ at one draw


def test_beta_one_equals_the_elbo_for_a_group_model_too():
    model = GroupVAE(MLPDecoder(2, 3, 6, hidden=(8,), likelihood="bernoulli"))
    guide = make_guide(6, 2, 3, group="product", instance="unconditional", hidden=(8,))
    x, mask = make_data()
    ours = at_seed(lambda: BetaVAELoss(1.0)(model, guide, x, mask, num_groups=9))
    theirs = at_seed(
        lambda: TraceMeanField_ELBO().differentiable_loss(model, guide, x, mask, num_groups=9)
    )
    assert_close(ours, theirs)
    terms = at_seed(lambda: elbo_terms(model, guide, x, mask))
    codes = posterior_codes(terms.guide_trace, mask, ("u", "v"))
    assert codes.z.shape == (int(mask.sum()), 5)
    u = terms.guide_trace.nodes["u"]["value"]
    assert_close(codes.z[:3, :2], u[0].expand(3, 2))  # the group code repeated for each member


@pytest.mark.parametrize("beta", [0.0, 4.0])
def test_beta_scales_only_the_kl(beta):
    model, guide = mlp_pair()
    x, mask = make_data()
    terms = at_seed(lambda: elbo_terms(model, guide, x, mask, num_groups=20))
    one = at_seed(lambda: BetaVAELoss(1.0)(model, guide, x, mask, num_groups=20))
    ours = at_seed(lambda: BetaVAELoss(beta)(model, guide, x, mask, num_groups=20))
    assert terms.kl.item() > 0
    assert_close(ours - one, (beta - 1.0) * terms.kl)
    assert_close(ours, -terms.log_lik + beta * terms.kl)
    # the reconstruction gradient is untouched: only the KL's share scales
    dec = list(model.decoder.net.parameters())
    g_one = torch.autograd.grad(at_seed(lambda: BetaVAELoss(1.0)(model, guide, x, mask)), dec)
    g_beta = torch.autograd.grad(at_seed(lambda: BetaVAELoss(beta)(model, guide, x, mask)), dec)
    for a, b in zip(g_one, g_beta):
        assert_close(a, b)


def test_padded_slots_do_not_enter_the_terms():
    model, guide = mlp_pair()
    x, mask = make_data()
    t = at_seed(lambda: elbo_terms(model, guide, x, mask))
    bad = x.masked_fill(~mask.unsqueeze(-1), 7.0)
    t_bad = at_seed(lambda: elbo_terms(model, guide, bad, mask))
    assert_close(t.log_lik, t_bad.log_lik)
    assert_close(t.kl, t_bad.kl)
    assert observation_scale(mask) == mask.sum()
    assert observation_scale(mask, 40) == mask.sum() * 10


# ---------------------------------------------------------------- AnnealedVAE


def test_capacity_schedule_values():
    assert linear_capacity(0, 25.0, 100) == 0.0
    assert linear_capacity(10, 25.0, 100) == pytest.approx(2.5)
    assert linear_capacity(50, 25.0, 100) == pytest.approx(12.5)
    assert linear_capacity(100, 25.0, 100) == 25.0
    assert linear_capacity(1000, 25.0, 100) == 25.0
    assert linear_capacity(5, 25.0, 0) == 25.0


def test_annealed_loss_known_value_and_step_count():
    model, guide = mlp_pair()
    x, mask = make_data()
    loss = AnnealedVAELoss(gamma=100.0, c_max=8.0, num_steps=4)
    for step in range(6):
        assert int(loss.step) == step and loss.capacity == linear_capacity(step, 8.0, 4)
        t = at_seed(lambda: elbo_terms(model, guide, x, mask, num_groups=20))
        n = observation_scale(mask, 20)
        expected = -t.log_lik + 100.0 * n * (t.kl / n - linear_capacity(step, 8.0, 4)).abs()
        assert_close(at_seed(lambda: loss(model, guide, x, mask, num_groups=20)), expected)
    with torch.no_grad():  # evaluation does not advance the schedule
        loss(model, guide, x, mask)
    assert int(loss.step) == 6
    restored = AnnealedVAELoss(gamma=100.0, c_max=8.0, num_steps=4)
    restored.load_state_dict(loss.state_dict())
    assert int(restored.step) == 6 and restored.capacity == 8.0


def test_fit_checkpoints_the_capacity_schedule(tmp_path):
    data = random_groups(Sprites(8), 12, 1, rng=0)
    path = tmp_path / "run.pt"

    def run(epochs, loss):
        pyro.clear_param_store()
        model = IIDVAE(ConvDecoder(0, 2, image_size=8), name="m")
        guide = IIDGuide(64, 2, (8,), name="g")
        fit(model, guide, data, epochs=epochs, batch_size=4, loss=loss, progress=False,
            checkpoint=path, resume=True)
        return loss

    first = run(1, AnnealedVAELoss(10.0, 5.0, 100))
    assert int(first.step) == 3
    resumed = run(2, AnnealedVAELoss(10.0, 5.0, 100))
    assert int(resumed.step) == 6


# ---------------------------------------------------------------- beta-TCVAE


def random_posteriors(m=5, d=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    loc = torch.randn(m, d, generator=gen, dtype=torch.float64)
    scale = 0.3 + torch.rand(m, d, generator=gen, dtype=torch.float64)
    z = loc + scale * torch.randn(m, d, generator=gen, dtype=torch.float64)
    return z, loc, scale


def test_mws_against_the_exact_mixture():
    z, loc, scale = random_posteriors()
    m, d = z.shape
    n = 1000.0
    est = log_qz_mws(z, loc, scale, n)
    # log (1/(N M)) sum_j q(z_i | n_j) = log of the batch's uniform mixture - log N
    mix = td.MixtureSameFamily(
        td.Categorical(logits=torch.zeros(m, dtype=torch.float64)),
        td.Independent(td.Normal(loc, scale), 1),
    )
    assert_close(est.joint, mix.log_prob(z) - math.log(n))
    for j in range(d):
        mix_j = td.MixtureSameFamily(
            td.Categorical(logits=torch.zeros(m, dtype=torch.float64)),
            td.Normal(loc[:, j], scale[:, j]),
        )
        assert_close(est.marginals[:, j], mix_j.log_prob(z[:, j]) - math.log(n))
    # by hand for one entry
    dens = [
        math.prod(
            math.exp(td.Normal(loc[k, j], scale[k, j]).log_prob(z[0, j]).item()) for j in range(d)
        )
        for k in range(m)
    ]
    assert est.joint[0].item() == pytest.approx(math.log(sum(dens) / (n * m)), rel=1e-10)


def test_mws_total_correlation_known_answers():
    # one observation: log q(z) and each log q(z_j) are the posterior's own densities minus log N
    z, loc, scale = random_posteriors(m=1)
    est = log_qz_mws(z, loc, scale, 10.0)
    assert_close(est.joint, td.Normal(loc, scale).log_prob(z).sum(-1) - math.log(10.0))
    assert_close(
        total_correlation_mws(z, loc, scale, 10.0),
        torch.tensor(2 * math.log(10.0), dtype=torch.float64),
    )
    # identical posteriors for the whole batch: TC is the constant (D - 1) log N
    z, loc, scale = random_posteriors(m=6, d=4)
    same_loc, same_scale = loc[:1].expand(6, 4), scale[:1].expand(6, 4)
    tc = total_correlation_mws(z, same_loc, same_scale, 50.0)
    assert tc.item() == pytest.approx(3 * math.log(50.0))


def test_beta_tcvae_loss_known_value():
    model, guide = mlp_pair()
    x, mask = make_data()
    t = at_seed(lambda: elbo_terms(model, guide, x, mask, num_groups=8))
    codes = posterior_codes(t.guide_trace, mask)
    n = observation_scale(mask, 8)
    tc = total_correlation_mws(codes.z, codes.loc, codes.scale, float(n))
    loss = at_seed(lambda: BetaTCVAELoss(5.0)(model, guide, x, mask, num_groups=8))
    assert_close(loss, -t.elbo + 4.0 * n * tc)
    one = at_seed(lambda: BetaTCVAELoss(1.0)(model, guide, x, mask, num_groups=8))
    assert_close(
        one,
        at_seed(
            lambda: TraceMeanField_ELBO().differentiable_loss(model, guide, x, mask, num_groups=8)
        ),
    )


# ---------------------------------------------------------------- DIP-VAE


def test_dip_penalty_known_values():
    assert dip_penalty(torch.eye(4), 3.0, 7.0).item() == 0.0
    cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    assert dip_penalty(cov, 3.0, 7.0).item() == pytest.approx(3.0 * 0.5 + 7.0 * 1.0)
    cov = torch.tensor([[1.0, -0.2, 0.1], [-0.2, 0.5, 0.0], [0.1, 0.0, 1.0]])
    assert dip_penalty(cov, 2.0, 10.0).item() == pytest.approx(
        2.0 * 2 * (0.04 + 0.01) + 10.0 * 0.25
    )


def test_dip_covariances_known_values():
    loc = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert_close(dip_covariance(loc), torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    assert dip_penalty(dip_covariance(loc), 1.0, 10.0).item() == pytest.approx(10.0)
    scale = torch.tensor([[1.0, 1.0], [1.0, 2.0]])
    assert_close(dip_covariance(loc, scale), torch.tensor([[2.0, 0.0], [0.0, 2.5]]))
    # an identity covariance (DIP-I: of the means; DIP-II: of q(z)) gives zero penalty
    square = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    assert dip_penalty(dip_covariance(square), 5.0, 5.0).item() == 0.0
    half = torch.tensor([[0.5, 0.5], [0.5, -0.5], [-0.5, 0.5], [-0.5, -0.5]])
    assert dip_penalty(
        dip_covariance(half, torch.full((4, 2), math.sqrt(0.75))), 5.0, 5.0
    ).item() == pytest.approx(0.0, abs=1e-12)


def test_weighted_covariance_matches_numpy_and_ignores_zero_weight_rows():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    ref = torch.cov(x.T, correction=0)
    assert_close(weighted_covariance(x), ref)
    padded = torch.cat([x, torch.full((2, 3), float("nan"), dtype=torch.float64)])
    mask = torch.arange(9) < 7
    assert_close(weighted_covariance(padded, mask), ref)
    scale = torch.rand(9, 3, generator=gen, dtype=torch.float64)
    assert_close(dip_covariance(padded, scale, mask), ref + torch.diag(scale[:7].pow(2).mean(0)))


@pytest.mark.parametrize("kind", ["i", "ii"])
def test_dip_loss_known_value(kind):
    model, guide = mlp_pair()
    x, mask = make_data()
    loss_fn = DIPVAELoss(2.0, kind=kind)
    assert loss_fn.lambda_d == (20.0 if kind == "i" else 2.0)
    t = at_seed(lambda: elbo_terms(model, guide, x, mask, num_groups=8))
    codes = posterior_codes(t.guide_trace, mask)
    cov = torch.cov(codes.loc.T, correction=0)
    if kind == "ii":
        cov = cov + torch.diag(codes.scale.pow(2).mean(0))
    pen = dip_penalty(cov, 2.0, loss_fn.lambda_d)
    expected = -t.elbo + observation_scale(mask, 8) * pen
    assert_close(at_seed(lambda: loss_fn(model, guide, x, mask, num_groups=8)), expected)


# ---------------------------------------------------------------- FactorVAE


def test_factor_vae_discriminator_has_its_own_optimizer():
    model, guide = mlp_pair()
    x, mask = make_data()
    batch = GroupBatch(x, mask)
    pen = FactorVAEPenalty(3, gamma=5.0, hidden=(16,))
    loss = PenalizedLoss(BetaVAELoss(1.0), [pen])
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), loss=loss)
    disc = list(pen.discriminator.parameters())
    before = [p.detach().clone() for p in disc]
    svi.step(x, mask, num_groups=8)
    # the VAE step neither touches nor registers the discriminator's parameters
    assert all(torch.equal(a, b) for a, b in zip(before, disc))
    assert all(p.grad is None for p in disc)
    store = {id(p.unconstrained()) for p in pyro.get_param_store().values()}
    assert store and not store & {id(p) for p in disc}
    svi_params = {id(p) for p in svi.optim.optim_objs}
    assert not svi_params & {id(p) for p in disc}
    # the critic step moves only the discriminator
    vae = [p.detach().clone() for p in [*model.parameters(), *guide.parameters()]]
    record = loss.critic_step(model, guide, batch, num_groups=8)
    assert math.isfinite(float(record["discriminator_loss"]))
    assert not all(torch.equal(a, b) for a, b in zip(before, disc))
    assert all(torch.equal(a, b) for a, b in zip(vae, [*model.parameters(), *guide.parameters()]))
    assert {id(p) for g in pen.optimizer.param_groups for p in g["params"]} == {id(p) for p in disc}
    # its optimizer state travels with the module's state_dict
    clone = FactorVAEPenalty(3, gamma=5.0, hidden=(16,))
    clone.load_state_dict(pen.state_dict())
    assert (
        clone.optimizer.state_dict()["state"].keys() == pen.optimizer.state_dict()["state"].keys()
    )


def test_factor_vae_penalty_known_value_and_fit_keeps_the_critic_apart():
    model, guide = mlp_pair()
    x, mask = make_data()
    pen = FactorVAEPenalty(3, gamma=5.0, hidden=(16,))
    t = at_seed(lambda: poutine_codes(guide, x, mask))
    logits = pen.discriminator(t)
    value = at_seed(lambda: pen(model, guide, GroupBatch(x, mask), num_groups=8))
    assert_close(value, 5.0 * observation_scale(mask, 8) * logits.mean())
    total = at_seed(
        lambda: PenalizedLoss(BetaVAELoss(1.0), [pen])(model, guide, x, mask, num_groups=8)
    )
    pyro.set_rng_seed(3)
    base = BetaVAELoss(1.0)(model, guide, x, mask, num_groups=8)
    # one guide pass: the penalty reads the codes of the base loss's own draw
    pyro.set_rng_seed(3)
    trace = poutine.trace(guide).get_trace(x, mask, num_groups=8)
    same_draw = pen(model, guide, GroupBatch(x, mask), num_groups=8, guide_trace=trace)
    assert_close(total, base + same_draw)
    seen: list = []

    def optimizer(params):
        seen.extend(params)
        return torch.optim.Adam(params, lr=1e-2)

    data = random_groups(Sprites(8), 8, 1, rng=0)
    m = IIDVAE(ConvDecoder(0, 2, image_size=8))
    g = IIDGuide(64, 2, (8,))
    pen2 = FactorVAEPenalty(2, gamma=5.0, hidden=(16,))
    before = [p.detach().clone() for p in pen2.discriminator.parameters()]
    hist = fit(
        m, g, data, epochs=2, batch_size=4, optimizer=optimizer, penalties=[pen2], progress=False
    )
    assert {id(p) for p in seen}.isdisjoint({id(p) for p in pen2.discriminator.parameters()})
    assert not all(torch.equal(a, b) for a, b in zip(before, pen2.discriminator.parameters()))
    assert all(math.isfinite(r["discriminator_loss"]) for r in hist.to_list())


def poutine_codes(guide, x, mask):
    from pyro import poutine

    return posterior_codes(poutine.trace(guide).get_trace(x, mask), mask).z


# ---------------------------------------------------------------- every baseline trains


BASELINES = {
    "beta_vae": lambda: (BetaVAELoss(4.0), []),
    "annealed_vae": lambda: (AnnealedVAELoss(gamma=10.0, c_max=5.0, num_steps=1000), []),
    "beta_tcvae": lambda: (BetaTCVAELoss(6.0), []),
    "dip_vae_i": lambda: (DIPVAELoss(5.0, kind="i"), []),
    "dip_vae_ii": lambda: (DIPVAELoss(5.0, kind="ii"), []),
    "factor_vae": lambda: (None, [FactorVAEPenalty(4, gamma=10.0, hidden=(32, 32), lr=1e-3)]),
}


@pytest.fixture(scope="module")
def sprites_batch():
    return random_groups(Sprites(16), 24, 1, rng=0)


@pytest.mark.parametrize("name", BASELINES)
def test_each_baseline_trains_with_svi_and_fit(name, sprites_batch):
    base, penalties = BASELINES[name]()
    loss = PenalizedLoss(base, penalties) if penalties else base
    model = IIDVAE(ConvDecoder(0, 4, image_size=16))
    guide = IIDGuide(32, 4, (), body=conv_body(1, 16, out_dim=32))
    b = sprites_batch[:]
    n = len(sprites_batch)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 3e-3}), loss=loss)

    def evaluate():
        with torch.no_grad():
            return sum(
                at_seed(lambda: float(loss(model, guide, b.x, b.mask, num_groups=n)), s)
                for s in range(3)
            )

    start = evaluate()
    losses = []
    for _ in range(25):
        losses.append(svi.step(b.x, b.mask, num_groups=n))  # a penalty's critic steps in it too
    assert all(math.isfinite(v) for v in losses)
    assert evaluate() < start
    hist = fit(model, guide, sprites_batch, epochs=2, batch_size=12, loss=base or "meanfield",
               penalties=penalties, progress=False)
    assert all(math.isfinite(r["loss"]) for r in hist.to_list())
