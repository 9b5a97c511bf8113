"""Known-answer tests for the mutual-information bounds of ``pyro_groups.adversary.estimators``.

Correlated Gaussians ``y = rho x + sqrt(1 - rho^2) e`` in ``d`` dimensions have
``I(x; y) = -d/2 log(1 - rho^2)`` and the optimal critic ``log p(x, y) / (p(x) p(y))`` in closed
form, so each bound is checked both at that critic (no training) and after training a
``PairCritic``.
"""
from __future__ import annotations

import math

import pytest
import torch

from pyro_groups.adversary.critics import PairCritic
from pyro_groups.adversary.estimators import (
    dv_bound,
    infonce_bound,
    mine_bound,
    mine_ema_init,
    nwj_bound,
    weighted_logmeanexp,
    weighted_mean,
)

D, RHO = 2, 0.8
TRUE_MI = -D / 2 * math.log(1 - RHO**2)


def gaussian_pairs(n: int, g: torch.Generator, rho: float = RHO, dtype=torch.float32):
    x = torch.randn(n, D, generator=g, dtype=dtype)
    y = rho * x + math.sqrt(1 - rho**2) * torch.randn(n, D, generator=g, dtype=dtype)
    return x, y


def optimal_critic(x: torch.Tensor, y: torch.Tensor, rho: float = RHO) -> torch.Tensor:
    quad = (rho**2 * x**2 - 2 * rho * x * y + rho**2 * y**2) / (2 * (1 - rho**2))
    return (-0.5 * math.log(1 - rho**2) - quad).sum(-1)


@pytest.fixture(scope="module")
def analytic_scores():
    g = torch.Generator().manual_seed(0)
    x, y = gaussian_pairs(50_000, g, dtype=torch.float64)
    y_shuffled = y[torch.randperm(len(y), generator=g)]
    return x, y, optimal_critic(x, y), optimal_critic(x, y_shuffled)


def test_dv_at_optimal_critic(analytic_scores):
    _, _, joint, marginal = analytic_scores
    assert dv_bound(joint, marginal).item() == pytest.approx(TRUE_MI, abs=0.05)
    assert dv_bound(joint + 5.0, marginal + 5.0).item() == pytest.approx(
        dv_bound(joint, marginal).item(), abs=1e-9
    )


def test_nwj_at_optimal_critic(analytic_scores):
    _, _, joint, marginal = analytic_scores
    assert nwj_bound(joint + 1.0, marginal + 1.0).item() == pytest.approx(TRUE_MI, abs=0.05)
    assert nwj_bound(joint, marginal).item() == pytest.approx(TRUE_MI - math.exp(-1), abs=0.05)


def test_infonce_at_optimal_critic(analytic_scores):
    x, y, _, _ = analytic_scores
    B = 512
    estimates = [
        infonce_bound(optimal_critic(x[i : i + B, None], y[None, i : i + B]))
        for i in range(0, 20 * B, B)
    ]
    assert torch.stack(estimates).mean().item() == pytest.approx(TRUE_MI, abs=0.05)


def test_infonce_is_capped_at_log_batch_size():
    B = 64
    scores = 50.0 * torch.eye(B, dtype=torch.float64)
    assert infonce_bound(scores).item() == pytest.approx(math.log(B), abs=1e-9)
    valid = torch.arange(B) < 40
    assert infonce_bound(scores, valid).item() == pytest.approx(math.log(40), abs=1e-9)
    pair = torch.ones(B, B, dtype=torch.bool).tril()
    expected = torch.log(torch.arange(1, B + 1, dtype=torch.float64)).mean().item()
    assert infonce_bound(scores, pair).item() == pytest.approx(expected, abs=1e-9)


def test_mine_matches_dv_in_value_and_tracks_the_moving_average():
    g = torch.Generator().manual_seed(1)
    decay = 0.9
    state = mine_ema_init(dtype=torch.float64)
    history = []
    for _ in range(3):
        joint = torch.randn(32, generator=g, dtype=torch.float64)
        marginal = torch.randn(32, generator=g, dtype=torch.float64)
        result = mine_bound(joint, marginal, state, decay)
        assert result.surrogate.item() == pytest.approx(dv_bound(joint, marginal).item(), abs=1e-12)
        assert result.bound.item() == pytest.approx(dv_bound(joint, marginal).item(), abs=1e-12)
        history.append(marginal.exp().mean().item())
        state = result.ema_state
    weights = [decay**2, decay, 1.0]
    expected = sum(w * h for w, h in zip(weights, history)) / sum(weights)
    assert (state[0].exp() / state[1]).item() == pytest.approx(expected, rel=1e-10)


def test_mine_gradient_is_bias_corrected():
    g = torch.Generator().manual_seed(2)
    joint = torch.randn(16, generator=g, dtype=torch.float64, requires_grad=True)
    marginal = torch.randn(16, generator=g, dtype=torch.float64, requires_grad=True)
    log_ema = 0.7
    state = torch.tensor([log_ema, 1.0], dtype=torch.float64)
    decay = 0.5
    result = mine_bound(joint, marginal, state, decay)
    result.surrogate.backward()
    ema = (decay * math.exp(log_ema) + (1 - decay) * marginal.detach().exp().mean()).item()
    torch.testing.assert_close(joint.grad, torch.full_like(joint, 1 / 16))
    torch.testing.assert_close(marginal.grad, -marginal.detach().exp() / 16 / ema)
    marginal.grad = None
    mine_bound(joint, marginal, mine_ema_init(dtype=torch.float64), 0.0).surrogate.backward()
    dv_grad = torch.autograd.grad(dv_bound(joint, marginal), marginal)[0]
    torch.testing.assert_close(marginal.grad, dv_grad)


def _two_sample_bounds(joint, marginal, joint_mask=None, marginal_mask=None):
    state = mine_ema_init(dtype=joint.dtype)
    return {
        "dv": dv_bound(joint, marginal, joint_mask, marginal_mask),
        "nwj": nwj_bound(joint, marginal, joint_mask, marginal_mask),
        "mine": mine_bound(joint, marginal, state, 0.9, joint_mask, marginal_mask).surrogate,
    }


@pytest.mark.parametrize("garbage", [1e6, -1e6, math.inf, math.nan])
def test_masked_entries_change_nothing(garbage):
    g = torch.Generator().manual_seed(3)
    joint = torch.randn(20, generator=g, dtype=torch.float64)
    marginal = torch.randn(20, generator=g, dtype=torch.float64)
    mask = torch.rand(20, generator=g) < 0.6
    padded = [
        torch.where(mask, s, torch.full_like(s, garbage)).requires_grad_()
        for s in (joint, marginal)
    ]
    compact = [s[mask].clone().requires_grad_() for s in (joint, marginal)]
    masked = _two_sample_bounds(*padded, mask, mask)
    plain = _two_sample_bounds(*compact)
    for name in plain:
        assert masked[name].item() == pytest.approx(plain[name].item(), abs=1e-12), name
        grads_padded = torch.autograd.grad(masked[name], padded)
        grads_plain = torch.autograd.grad(plain[name], compact)
        for gp, gc in zip(grads_padded, grads_plain):
            torch.testing.assert_close(gp[mask], gc)
            assert (gp[~mask] == 0).all()
    scores = torch.randn(20, 20, generator=g, dtype=torch.float64)
    garbage_scores = scores.clone()
    garbage_scores[~mask, :] = garbage
    garbage_scores[:, ~mask] = garbage
    expected = infonce_bound(scores[mask][:, mask])
    assert infonce_bound(garbage_scores, mask).item() == pytest.approx(expected.item(), abs=1e-12)


def test_weights_act_as_repetition_and_empty_mask_gives_zero():
    s = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    w = torch.tensor([2.0, 0.0, 1.0], dtype=torch.float64)
    repeated = torch.tensor([0.5, 0.5, 2.0], dtype=torch.float64)
    assert weighted_mean(s, w).item() == pytest.approx(repeated.mean().item())
    assert weighted_logmeanexp(s, w).item() == pytest.approx(
        (repeated.exp().mean().log()).item()
    )
    empty = torch.zeros(3, dtype=torch.bool)
    leaf = s.clone().requires_grad_()
    for value in _two_sample_bounds(leaf, leaf, empty, empty).values():
        assert value.item() == 0.0
        (grad,) = torch.autograd.grad(value, leaf)
        assert torch.isfinite(grad).all() and (grad == 0).all()


def train_pair_critic(kind: str, rho: float, steps: int, seed: int = 0) -> float:
    """Train a small PairCritic on fresh Gaussian batches; return the bound on held-out data.

    Adam with a learning rate decaying linearly from 3e-3 to 0.
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    if kind == "infonce":
        critic, batch = PairCritic(D, D, (32, 32)), 64
    else:
        critic, batch = PairCritic(D, D, (64, 64)), 256
    opt = torch.optim.Adam(critic.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 - step / steps)
    state = mine_ema_init()
    for _ in range(steps):
        x, y = gaussian_pairs(batch, g, rho)
        if kind == "infonce":
            objective = infonce_bound(critic.score_matrix(x, y))
        else:
            joint = critic(x, y)
            marginal = critic(x, y[torch.randperm(batch, generator=g)])
            if kind == "mine":
                result = mine_bound(joint, marginal, state, 0.99)
                objective, state = result.surrogate, result.ema_state
            else:
                objective = {"dv": dv_bound, "nwj": nwj_bound}[kind](joint, marginal)
        opt.zero_grad()
        (-objective).backward()
        opt.step()
        schedule.step()
    with torch.no_grad():
        held_out = torch.Generator().manual_seed(1000 + seed)
        if kind == "infonce":
            x, y = gaussian_pairs(1024, held_out, rho)
            return infonce_bound(critic.score_matrix(x, y)).item()
        x, y = gaussian_pairs(8192, held_out, rho)
        joint = critic(x, y)
        marginal = critic(x, y[torch.randperm(8192, generator=held_out)])
        bound = nwj_bound if kind == "nwj" else dv_bound
        return bound(joint, marginal).item()


@pytest.mark.parametrize("kind", ["dv", "mine", "nwj", "infonce"])
def test_trained_pair_critic_recovers_gaussian_mi(kind):
    steps = 300 if kind == "infonce" else 400
    assert train_pair_critic(kind, RHO, steps) == pytest.approx(TRUE_MI, abs=0.15)


@pytest.mark.parametrize("kind", ["dv", "nwj"])
def test_trained_pair_critic_on_independent_data_is_near_zero(kind):
    assert abs(train_pair_critic(kind, 0.0, 200)) < 0.05
