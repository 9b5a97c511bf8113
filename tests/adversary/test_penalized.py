"""PenalizedLoss: one guide pass per penalised step, exact in expectation against two passes, and
the critic's step from the VAE step's own forward equal to a separate critic step on those codes."""
from __future__ import annotations

import copy

import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO

from pyro_groups.adversary import PenalizedLoss, nemeth_penalty, set_penalty
from pyro_groups.data.exam_scores import exam_scores
from pyro_groups.guides import make_guide
from pyro_groups.models import ExamScoresDecoder, GroupVAE
from pyro_groups.training import fit

MAKERS = {"nemeth": nemeth_penalty, "set": set_penalty}


class CountingGuide(torch.nn.Module):
    def __init__(self, guide):
        super().__init__()
        self.guide, self.calls = guide, 0

    def forward(self, *args, **kwargs):
        self.calls += 1
        return self.guide(*args, **kwargs)


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_fit_runs_the_guide_once_per_penalised_step(kind):
    data = exam_scores(96, seed=0)
    model = GroupVAE(ExamScoresDecoder())
    guide = CountingGuide(make_guide(1, 2, 1, hidden=(8,)))
    pen = MAKERS[kind](1, 1, seed=0, hidden=(8,))
    fit(model, guide, data, epochs=2, batch_size=32, penalties=[pen], progress=False)
    assert guide.calls == 2 * 3  # two epochs of three steps: the ELBO, penalty and critic share


def grads(loss_fn, modules):
    params = [p for m in modules for p in m.parameters()]
    return torch.autograd.grad(loss_fn(), params)


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_one_pass_gradient_equals_two_passes_in_expectation(kind):
    """E[grad(ELBO(z) + pen(z))] = E[grad ELBO(z1)] + E[grad pen(z2)]: same mean, over draws."""
    batch = exam_scores(16, seed=3)[torch.arange(16)]
    model = GroupVAE(ExamScoresDecoder())
    guide = make_guide(1, 2, 1, group="average", instance="conditional", hidden=(8,))
    pen = MAKERS[kind](1, 1, seed=0, hidden=(8,), weight=5.0)
    one_pass = PenalizedLoss(Trace_ELBO(), [pen], train_critics=False)
    elbo = Trace_ELBO()

    def flat(gs):
        return torch.cat([g.reshape(-1) for g in gs])

    a, b = [], []
    for s in range(300):
        torch.manual_seed(s)
        a.append(flat(grads(lambda: one_pass(model, guide, batch.x, batch.mask, num_groups=64),
                            [guide])))
        torch.manual_seed(10_000 + s)

        def two_pass():
            base = elbo.differentiable_loss(model, guide, batch.x, batch.mask, num_groups=64)
            return base + pen(model, guide, batch, num_groups=64)

        b.append(flat(grads(two_pass, [guide])))
    a, b = torch.stack(a), torch.stack(b)
    se = (a.var(0) / len(a) + b.var(0) / len(b)).sqrt()
    z = ((a.mean(0) - b.mean(0)) / se.clamp(min=1e-12)).abs()
    assert float((z < 4).float().mean()) > 0.97, z.max()
    assert float(a.mean(0).norm()) > 0  # the check is not vacuous


@pytest.mark.parametrize("estimator", ["mine", "dv", "nwj"])
@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_the_critic_step_prepared_in_the_vae_forward_is_a_critic_step_on_the_same_codes(
    kind, estimator
):
    batch = exam_scores(24, seed=1)[torch.arange(24)]
    model = GroupVAE(ExamScoresDecoder())
    guide = make_guide(1, 2, 1, hidden=(8,))
    pen = MAKERS[kind](1, 1, seed=0, hidden=(8,), estimator=estimator)
    twin = copy.deepcopy(pen)
    trace = poutine.trace(guide).get_trace(batch.x, batch.mask, num_groups=24)
    value = pen(model, guide, batch, num_groups=24, guide_trace=trace)
    record = pen.critic_step(model, guide, batch, num_groups=24, guide_trace=trace)
    # the twin scores the same codes with the same pairs and takes an ordinary critic step
    x, v = batch.x.flatten(2), trace.nodes["v"]["value"].detach()
    bound, objective = twin._critic_objective(x, batch.mask, v)
    twin.update(-objective)
    torch.testing.assert_close(value.detach() / 24, bound.detach() * pen.weight)
    torch.testing.assert_close(record[f"{pen.name}_bound"], bound.detach())
    for p, q in zip(pen.critic.parameters(), twin.critic.parameters()):
        torch.testing.assert_close(p, q)
        assert p.grad is None
    torch.testing.assert_close(pen.ema_state, twin.ema_state)


def test_the_vae_step_never_moves_or_registers_the_critic():
    data = exam_scores(64, seed=0)
    model = GroupVAE(ExamScoresDecoder())
    guide = make_guide(1, 2, 1, hidden=(8,))
    pen = set_penalty(1, 1, seed=0, hidden=(8,))
    loss = PenalizedLoss(Trace_ELBO(), [pen])
    batch = next(data.batches(32))
    before = [p.detach().clone() for p in pen.critic.parameters()]
    total = loss(model, guide, batch.x, batch.mask, num_groups=64)
    total.backward()
    assert all(torch.equal(a, b) for a, b in zip(before, pen.critic.parameters()))
    record = loss.step_critics()
    assert "set_bound" in record and torch.isfinite(record["set_bound"])
    assert not all(torch.equal(a, b) for a, b in zip(before, pen.critic.parameters()))
    assert all(p.grad is None for p in pen.critic.parameters())
    assert loss.step_critics() == {}  # nothing queued twice


def test_evaluating_without_gradients_queues_no_critic_step():
    batch = exam_scores(8, seed=0)[:]
    model = GroupVAE(ExamScoresDecoder())
    guide = make_guide(1, 2, 1, hidden=(8,))
    loss = PenalizedLoss(Trace_ELBO(), [set_penalty(1, 1, seed=0, hidden=(8,))])
    with torch.no_grad():
        loss(model, guide, batch.x, batch.mask)
    assert loss.step_critics() == {}
