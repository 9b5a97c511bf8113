"""The adversarial mutual-information penalties (Németh's one-observation form, CxVAE's set form).

The critic owns its optimizer; the VAE step sees a differentiable penalty with detached critic
parameters; the critic step maximises the bound on detached codes; padding, single-observation
groups, checkpoints and plain SVI loops behave; a known-answer test tells a group-dependent
instance code from an independent one.
"""
from __future__ import annotations

import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO

from pyro_groups.data import GroupBatch
from pyro_groups.data.exam_scores import exam_scores
from pyro_groups.guides import make_guide
from pyro_groups.models import ExamScoresDecoder, GroupVAE
from pyro_groups.models.group_vae import group_plates
from pyro_groups.adversary.critics import PairCritic, SetCritic
from pyro_groups.adversary.mi_penalty import ESTIMATORS, MIPenalty, nemeth_penalty, set_penalty
from pyro_groups.adversary.penalized import PenalizedLoss
from pyro_groups.training import fit

MAKERS = {"nemeth": nemeth_penalty, "set": set_penalty}
SMALL = {"hidden": (16, 16)}


def vae(instance="unconditional"):
    model = GroupVAE(ExamScoresDecoder())
    guide = make_guide(1, 2, 1, group="average", instance=instance, hidden=(16,))
    return model, guide


def ragged(g=12, k=6, seed=0, garbage=None):
    """Exam-scores-like batch with ragged groups; padded slots optionally hold ``garbage``."""
    gen = torch.Generator().manual_seed(seed)
    counts = torch.randint(2, k + 1, (g,), generator=gen)
    mask = torch.arange(k)[None, :] < counts[:, None]
    x = 2 * torch.randn(g, 1, 1, generator=gen) + torch.randn(g, k, 1, generator=gen)
    x = x.masked_fill(~mask[..., None], 0.0 if garbage is None else garbage)
    return GroupBatch(x, mask)


def params(module):
    return {k: p.detach().clone() for k, p in module.named_parameters()}


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_penalty_is_differentiable_in_the_guide_and_gives_the_critic_no_gradient(kind, estimator):
    model, guide = vae()
    pen = MAKERS[kind](1, 1, estimator=estimator, weight=2.0, seed=0, **SMALL)
    batch = ragged()
    value = pen(model, guide, batch, num_groups=100)
    assert value.shape == () and torch.isfinite(value) and value.requires_grad
    value.backward()
    grads = [p.grad for p in guide.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in pen.critic.parameters())


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_value_is_weight_times_num_groups_times_the_bound(kind):
    model, guide = vae()
    pen = MAKERS[kind](1, 1, weight=3.0, seed=0, **SMALL)
    batch = ragged()
    state = pen.generator.get_state()
    pyro.set_rng_seed(5)
    value = pen(model, guide, batch, num_groups=100)
    pen.generator.set_state(state)
    pyro.set_rng_seed(5)
    v = pen.codes(guide, batch, num_groups=100)
    bound = pen.bound(batch.x, batch.mask, v)
    torch.testing.assert_close(value, 3.0 * 100 * bound)
    pen.generator.set_state(state)
    pyro.set_rng_seed(5)
    torch.testing.assert_close(pen(model, guide, batch), 3.0 * batch.num_groups * bound)


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_critic_step_moves_only_the_critic_and_raises_the_bound(kind):
    model, guide = vae()
    pen = MAKERS[kind](1, 1, seed=0, critic_steps=5, critic_lr=3e-3, **SMALL)
    batch = ragged(g=32, k=8)
    with torch.no_grad():
        v = pen.codes(guide, batch)
    state = pen.generator.get_state()
    before = float(pen.bound(batch.x, batch.mask, v))
    fixed = params(model), params(guide)
    critic0 = params(pen.critic)
    ema0 = pen.ema_state.clone()
    for _ in range(30):
        record = pen.critic_step(model, guide, batch, num_groups=500)
    assert set(record) == {f"{kind}_bound"}
    assert same(fixed[0], params(model)) and same(fixed[1], params(guide))
    assert not same(critic0, params(pen.critic))
    assert not torch.equal(ema0, pen.ema_state)  # MINE's moving average lives in a buffer
    assert all(p.grad is None for p in pen.critic.parameters())
    pen.generator.set_state(state)
    after = float(pen.bound(batch.x, batch.mask, v))
    assert after > before + 0.05, (before, after)


def test_fit_keeps_critic_parameters_out_of_the_vae_optimizer():
    data = exam_scores(48, seed=0)
    model, guide = vae()
    pen = set_penalty(1, 1, seed=0, **SMALL)
    seen: list[torch.nn.Parameter] = []

    def adam(ps):
        seen.extend(ps)
        return torch.optim.Adam(ps, lr=1e-3)

    critic0, guide0 = params(pen.critic), params(guide)
    hist = fit(
        model, guide, data, epochs=1, batch_size=16, optimizer=adam, penalties=[pen], progress=False
    )
    critic_ids = {id(p) for p in pen.critic.parameters()}
    assert seen and not critic_ids & {id(p) for p in seen}
    assert not same(critic0, params(pen.critic)) and not same(guide0, params(guide))
    row = hist.to_list()[-1]
    assert "set_bound" in row and "penalty_0" in row


def test_single_observation_groups_are_skipped_with_one_warning():
    model, guide = vae()
    pen = nemeth_penalty(1, 1, seed=0, **SMALL)
    batch = ragged(g=8, k=5)
    mask = batch.mask.clone()
    mask[0] = False
    mask[0, 0] = True
    mask[3] = False
    mask[3, 2] = True  # single observations, not in the first slot
    batch = GroupBatch(batch.x, mask)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            pen.critic_step(model, guide, batch)
            value = pen(model, guide, batch)
            assert torch.isfinite(value)
    single = [w for w in caught if "single valid observation" in str(w.message)]
    assert len(single) == 1 and "2 group(s)" in str(single[0].message)
    value.backward()
    assert all(torch.isfinite(p.grad).all() for p in guide.parameters() if p.grad is not None)


def test_fewer_than_two_eligible_groups_give_zero_and_one_warning():
    model, guide = vae()
    pen = set_penalty(1, 1, seed=0, **SMALL)
    batch = ragged(g=3, k=4)
    mask = batch.mask.clone()
    mask[1:, 1:] = False  # only group 0 has two observations
    batch = GroupBatch(batch.x, mask)
    critic0 = params(pen.critic)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            assert pen.critic_step(model, guide, batch) == {}
            value = pen(model, guide, batch, num_groups=10)
            assert value.item() == 0.0
    assert len([w for w in caught if "needs two" in str(w.message)]) == 1
    assert same(critic0, params(pen.critic))


@pytest.mark.parametrize("estimator", ["mine", "infonce"])
@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_garbage_in_padded_slots_changes_nothing(kind, estimator):
    clean, dirty = ragged(), ragged(garbage=float("nan"))
    n_pad = int((~dirty.mask).sum())
    dirty.x[~dirty.mask] = torch.tensor([1e6, float("nan"), -1e6]).repeat(n_pad)[:n_pad, None]
    out = []
    for batch in (clean, dirty):
        pyro.clear_param_store()
        pyro.set_rng_seed(0)
        model, guide = vae(instance="conditional")
        pen = MAKERS[kind](1, 1, seed=0, estimator=estimator, **SMALL)
        record = pen.critic_step(model, guide, batch, num_groups=40)
        value = pen(model, guide, batch, num_groups=40)
        value.backward()
        grads = [p.grad.clone() for p in guide.parameters()]
        out.append((record, value.detach(), params(pen.critic), grads))
    (r0, v0, c0, g0), (r1, v1, c1, g1) = out
    assert r0 == r1 and torch.isfinite(v0)
    torch.testing.assert_close(v0, v1, rtol=0, atol=0)
    assert same(c0, c1)
    assert all(torch.equal(a, b) for a, b in zip(g0, g1))


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path):
    data = exam_scores(48, seed=1)

    def build(seed):
        pyro.clear_param_store()
        pyro.set_rng_seed(seed)
        model, guide = vae(instance="conditional")
        return model, guide, set_penalty(1, 1, seed=seed, critic_steps=2, **SMALL)

    kw = dict(batch_size=16, seed=3, progress=False)
    m1, g1, p1 = build(0)
    h1 = fit(m1, g1, data, epochs=3, penalties=[p1], **kw)
    m2, g2, p2 = build(0)
    path = tmp_path / "ckpt.pt"
    fit(m2, g2, data, epochs=2, penalties=[p2], checkpoint=path, **kw)
    m3, g3, p3 = build(7)  # different initialisation: everything must come from the checkpoint
    h3 = fit(m3, g3, data, epochs=3, penalties=[p3], checkpoint=path, resume=True, **kw)
    assert h3.to_list()[-1]["loss"] == h1.to_list()[-1]["loss"]
    assert h3.to_list()[-1]["set_bound"] == h1.to_list()[-1]["set_bound"]
    for a, b in ((m1, m3), (g1, g3), (p1, p3)):
        sa, sb = a.state_dict(), b.state_dict()
        for k in sa:
            if k != "_extra_state":
                assert torch.equal(sa[k], sb[k]), k
    s1, s3 = p1.optimizer.state_dict()["state"], p3.optimizer.state_dict()["state"]
    torch.testing.assert_close(s1, s3, rtol=0, atol=0)
    assert torch.equal(p1.generator.get_state(), p3.generator.get_state())


def test_plain_svi_loop_with_a_penalized_trace_elbo():
    data = exam_scores(64, seed=2)
    model, guide = vae(instance="conditional")
    pen = set_penalty(1, 1, seed=0, weight=0.5, **SMALL)
    loss = PenalizedLoss(Trace_ELBO(), [pen])  # Trace_ELBO().differentiable_loss + the penalty
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), loss=loss)
    critic0 = params(pen.critic)
    order = torch.Generator().manual_seed(0)
    losses, bounds = [], []
    for batch in data.batches(16, generator=order):
        # one guide pass: -ELBO + penalty; the critic's step on the same codes follows
        losses.append(svi.step(batch.x, batch.mask, num_groups=len(data)))
        bounds.append(float(loss.step_critics()["set_bound"]))
    assert all(torch.isfinite(torch.tensor(losses + bounds)))
    in_svi = {id(p) for p in svi.optim.optim_objs}
    assert in_svi and not in_svi & {id(p) for p in pen.critic.parameters()}
    assert not any(name.startswith("critic") for name in pyro.get_param_store().keys())
    assert not same(critic0, params(pen.critic))


# ---------------------------------------------------------------- known answer


def known_guide(dependent: bool):
    """Instance codes v_ik = (mean of group i's x) + noise, or pure noise independent of x."""

    def guide(x, mask, *, num_groups=None):
        groups, instances = group_plates(mask, num_groups)
        m = mask[..., None].to(x.dtype)
        mean = (x * m).sum(1, keepdim=True) / m.sum(1, keepdim=True)
        loc = mean.expand_as(x) if dependent else torch.zeros_like(x)
        with groups, instances, poutine.mask(mask=mask):
            return pyro.sample("v", dist.Normal(loc, 0.5).to_event(1))

    return guide


def group_data(gen, g=128, k=8):
    counts = torch.randint(3, k + 1, (g,), generator=gen)
    mask = torch.arange(k)[None, :] < counts[:, None]
    x = 2.0 * torch.randn(g, 1, 1, generator=gen) + torch.randn(g, k, 1, generator=gen)
    return GroupBatch(x.masked_fill(~mask[..., None], 0.0), mask)


@pytest.mark.parametrize("dependent", [True, False])
def test_known_answer_set_critic_detects_group_information(dependent):
    # Dependent: v_k = x_bar + N(0, .25); x_{-k} estimates the group mean (sd 2), so
    # I(x_{-k}; v_k) is about 1 nat. Independent: v ~ N(0, .25) whatever the data, I = 0.
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    guide = known_guide(dependent)
    pen = set_penalty(1, 1, seed=0, hidden=(32, 32), critic_lr=3e-3)
    for _ in range(100):
        pen.critic_step(None, guide, group_data(gen, g=64))
    with torch.no_grad():
        est = []
        for _ in range(10):
            batch = group_data(gen)
            est.append(float(pen.bound(batch.x, batch.mask, pen.codes(guide, batch))))
    est = sum(est) / len(est)
    if dependent:
        assert est > 0.6, est
    else:
        assert abs(est) < 0.1, est


def test_constructors_build_the_right_critics():
    assert isinstance(nemeth_penalty(3, 2, seed=0).critic, PairCritic)
    s = set_penalty(3, 2, seed=0, normalise="K-1")
    assert isinstance(s.critic, SetCritic) and s.critic.normalise == "K-1"
    a, b = set_penalty(3, 2, seed=4), set_penalty(3, 2, seed=4)
    torch.testing.assert_close(params(a.critic), params(b.critic))
    assert isinstance(s, MIPenalty) and s.name == "set"
    with pytest.raises(ValueError, match="estimator"):
        set_penalty(3, 2, estimator="nope")
