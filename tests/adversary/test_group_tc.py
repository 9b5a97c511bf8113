"""Known-answer tests for group-tcVAE's penalty (``pyro_groups.adversary.group_tc``).

- The pair KL against ``torch.distributions.kl_divergence`` and the hand formula.
- TC at the three factorisation levels: a guide whose codes ``[u, v]`` are Gaussian with a known
  covariance ``Sigma``; after training the penalty's discriminator through its ``critic_step``,
  its TC estimate matches ``1/2 (sum_b log det Sigma_b - log det Sigma)`` (``-1/2 log det corr``
  for ``"full"``).
- The discriminator is never in ``fit``'s optimizer; penalties resume exactly from checkpoints.
"""
from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.distributions as td
from torch.testing import assert_close

from pyro_groups.data import GroupBatch
from pyro_groups.data.pairs import sample_pairs
from pyro_groups.guides.paired import pair_guide
from pyro_groups.models import MLPDecoder
from pyro_groups.models.group_vae import group_plates
from pyro_groups.models.paired import pair_model
from pyro_groups.objectives.elbo_terms import observation_scale, posterior_codes
from pyro_groups.adversary.group_tc import GroupTCVAEPenalty, PairKLPenalty, normal_kl, pair_kl
from pyro_groups.adversary.tc import tc_blocks
from pyro_groups.training import fit, load_checkpoint

# ---------------------------------------------------------------- the pair KL


def hand_kl(m1, s1, m2, s2):
    """KL(N(m1, s1^2) || N(m2, s2^2)) per dimension, summed, written out."""
    return sum(
        math.log(b / a) + (a * a + (x - y) ** 2) / (2 * b * b) - 0.5
        for x, a, y, b in zip(m1, s1, m2, s2)
    )


def test_normal_kl_known_values():
    m1, s1, m2, s2 = [0.3, -1.0, 2.0], [0.5, 1.2, 0.1], [1.0, 0.0, 2.5], [2.0, 0.4, 0.3]
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    got = normal_kl(t(m1), t(s1), t(m2), t(s2)).item()
    assert got == pytest.approx(hand_kl(m1, s1, m2, s2), rel=1e-12)
    p, q = (td.Independent(td.Normal(t(m), t(s)), 1) for m, s in ((m1, s1), (m2, s2)))
    ref = td.kl_divergence(p, q)
    assert got == pytest.approx(ref.item(), rel=1e-12)
    assert normal_kl(t(m1), t(s1), t(m1), t(s1)).item() == 0.0


def test_pair_kl_against_torch_for_pairs_and_larger_groups():
    gen = torch.Generator().manual_seed(0)
    loc = torch.randn(4, 3, 2, generator=gen, dtype=torch.float64)
    scale = torch.rand(4, 3, 2, generator=gen, dtype=torch.float64) + 0.2
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [0, 1, 1]], dtype=torch.bool)
    loc = loc.masked_fill(~mask[..., None], 1e6)  # padded slots must not count
    q = lambda g, k: td.Independent(td.Normal(loc[g, k], scale[g, k]), 1)  # noqa: E731
    kl = lambda g, a, b: td.kl_divergence(q(g, a), q(g, b)).item()  # noqa: E731
    sym = pair_kl(loc, scale, mask)
    fwd = pair_kl(loc, scale, mask, symmetric=False)
    assert sym[0].item() == pytest.approx(kl(0, 0, 1) + kl(0, 1, 0))
    assert fwd[0].item() == pytest.approx(kl(0, 0, 1))
    assert sym[3].item() == pytest.approx(kl(3, 1, 2) + kl(3, 2, 1))
    ordered = [(a, b) for a in range(3) for b in range(3) if a != b]
    assert sym[1].item() == pytest.approx(sum(kl(1, a, b) for a, b in ordered) / 2)
    assert fwd[1].item() == pytest.approx(sum(kl(1, a, b) for a, b in ordered if a < b) / 2)
    assert sym[2].item() == 0.0 and fwd[2].item() == 0.0  # a group of one
    # a shared group code [G, 1, d] gives identical members: no KL
    assert pair_kl(loc[:, :1], scale[:, :1], mask).abs().max().item() == 0.0


def test_penalty_known_value_on_fixed_draws():
    data = pair_data()
    model = pair_model("group_tcvae", MLPDecoder(2, 2, 4, hidden=(8,)))
    guide = pair_guide("group_tcvae", 4, 2, 2, hidden=(8,))
    batch = data[torch.arange(10)]
    pen = GroupTCVAEPenalty(2, 2, beta=3.0, gamma=5.0, level="full", hidden=(8,))
    pyro.set_rng_seed(1)
    value = pen(model, guide, batch, num_groups=40)
    pyro.set_rng_seed(1)
    tr = pyro.poutine.trace(guide).get_trace(batch.x, batch.mask, num_groups=40)
    z = posterior_codes(tr, batch.mask, ("u", "v")).z
    loc, scale = guide.group_encoder.observation_posteriors(batch.x)
    members = lambda g: [(loc[g, k].tolist(), scale[g, k].tolist()) for k in (0, 1)]  # noqa: E731
    kl = sum(hand_kl(*a, *b) + hand_kl(*b, *a) for a, b in map(members, range(10)))
    tc = pen.discriminator(z).mean()
    expected = 3.0 * observation_scale(batch.mask, 40) * tc + 5.0 * 40 / 10 * kl
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    pyro.set_rng_seed(1)
    only_kl = PairKLPenalty(5.0)(model, guide, batch, num_groups=40)
    assert only_kl.item() == pytest.approx(5.0 * 40 / 10 * kl, rel=1e-5)
    value.backward()  # differentiable in the guide, never in the discriminator
    assert all(p.grad is None for p in pen.discriminator.parameters())
    assert guide.group_encoder.net[0].weight.grad is not None


# ---------------------------------------------------------------- TC at the three levels

# codes z = [u (2 dims), v (3 dims)]: correlations inside u, inside v and across
CORR = torch.tensor([
    [1.0, 0.6, 0.3, 0.0, 0.2],
    [0.6, 1.0, 0.0, 0.3, 0.0],
    [0.3, 0.0, 1.0, 0.5, 0.0],
    [0.0, 0.3, 0.5, 1.0, -0.4],
    [0.2, 0.0, 0.0, -0.4, 1.0],
], dtype=torch.float64)
SCALE = torch.tensor([1.0, 0.5, 2.0, 1.0, 0.7], dtype=torch.float64)
SIGMA = SCALE[:, None] * CORR * SCALE[None, :]
NOISE = 0.1  # the guide's own scale: codes = loc + NOISE * eps, loc ~ N(0, SIGMA - NOISE^2 I)
CHOL = torch.linalg.cholesky(SIGMA - NOISE**2 * torch.eye(5, dtype=torch.float64)).float()


def gaussian_tc(blocks) -> float:
    parts = sum(torch.logdet(SIGMA[b][:, b]) for b in blocks)
    return 0.5 * (parts - torch.logdet(SIGMA)).item()


def known_codes_guide(x, mask, *, num_groups=None):
    """A guide whose codes [u, v] are N(0, SIGMA) for every member, independently."""
    groups, instances = group_plates(mask, num_groups)
    loc = torch.randn(*mask.shape, 5) @ CHOL.T
    with groups, instances:
        pyro.sample("u", dist.Normal(loc[..., :2], NOISE).to_event(1))
        pyro.sample("v", dist.Normal(loc[..., 2:], NOISE).to_event(1))


def test_closed_forms():
    assert gaussian_tc(tc_blocks(2, 3, "full")) == pytest.approx(-0.5 * torch.logdet(CORR).item())
    inter = 0.5 * (torch.logdet(SIGMA[:2, :2]) + torch.logdet(SIGMA[2:, 2:]) - torch.logdet(SIGMA))
    assert gaussian_tc(tc_blocks(2, 3, "inter")) == pytest.approx(inter.item())


MEASURED: dict[str, tuple[float, float]] = {}


@pytest.mark.parametrize("level", ["inter", "inter_intra", "full"])
def test_penalty_discriminator_recovers_gaussian_tc(level):
    torch.manual_seed(0)
    steps = 400
    pen = GroupTCVAEPenalty(2, 3, beta=1.0, gamma=0.0, level=level, hidden=(64, 64), lr=3e-3,
                            betas=(0.9, 0.999))
    decay = torch.optim.lr_scheduler.LambdaLR(pen.optimizer, lambda s: 1 - s / steps)
    batch = GroupBatch(torch.zeros(256, 2, 1), torch.ones(256, 2, dtype=torch.bool))  # 512 codes
    for _ in range(steps):
        pen.critic_step(None, known_codes_guide, batch)
        decay.step()
    big = GroupBatch(torch.zeros(8192, 2, 1), torch.ones(8192, 2, dtype=torch.bool))
    with torch.no_grad():
        pyro.set_rng_seed(99)
        estimate = pen.terms(known_codes_guide, big)["tc"].item()
        pyro.set_rng_seed(99)
        value = pen(None, known_codes_guide, big).item()
    truth = gaussian_tc(tc_blocks(2, 3, level))
    MEASURED[level] = (estimate, truth)
    print(f"TC {level}: estimate {estimate:.4f}, closed form {truth:.4f}")
    assert estimate == pytest.approx(truth, abs=0.1)
    assert value == pytest.approx(observation_scale(big.mask).item() * estimate, rel=1e-3)


# ---------------------------------------------------------------- fit: optimizer and checkpoints


def pair_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(20).repeat_interleave(3)
    x = torch.cat([torch.randn(20, 2, generator=g)[labels], torch.randn(60, 2, generator=g)], -1)
    return sample_pairs(x, 40, labels=labels, rng=seed)


def setup(seed=0):
    torch.manual_seed(seed)
    model = pair_model("group_tcvae", MLPDecoder(2, 2, 4, hidden=(8,)))
    guide = pair_guide("group_tcvae", 4, 2, 2, hidden=(8,))
    pen = GroupTCVAEPenalty(2, 2, beta=2.0, gamma=1.0, level="inter_intra", hidden=(16,), lr=1e-3)
    return model, guide, pen


def test_fit_optimizer_never_holds_the_discriminator():
    model, guide, pen = setup()
    seen: list = []

    def optimizer(params):
        seen.extend(params)
        return torch.optim.Adam(params, lr=1e-2)

    before = [p.detach().clone() for p in pen.discriminator.parameters()]
    fit(model, guide, pair_data(), epochs=2, batch_size=8, optimizer=optimizer, penalties=[pen],
        progress=False)
    disc = {id(p) for p in pen.discriminator.parameters()}
    assert seen and {id(p) for p in seen}.isdisjoint(disc)
    assert {id(p) for p in seen} == {id(p) for m in (model, guide) for p in m.parameters()}
    assert {id(p) for g in pen.optimizer.param_groups for p in g["params"]} == disc
    assert not all(torch.equal(a, b) for a, b in zip(before, pen.discriminator.parameters()))


def test_penalty_resumes_exactly_from_a_fit_checkpoint(tmp_path):
    data = pair_data()
    kw = dict(batch_size=8, lr=1e-2, seed=3, progress=False)
    model, guide, pen = setup()
    full = fit(model, guide, data, epochs=4, penalties=[pen], **kw)

    ckpt = tmp_path / "ckpt.pt"
    m1, g1, p1 = setup()
    fit(m1, g1, data, epochs=2, penalties=[p1], checkpoint=ckpt, **kw)
    assert "discriminator.net.0.weight" in "".join(load_checkpoint(ckpt)["penalties"][0])
    m2, g2, p2 = setup(seed=99)  # fresh objects, initialised differently, as a new process
    resumed = fit(m2, g2, data, epochs=4, penalties=[p2], checkpoint=ckpt, resume=True, **kw)

    def strip(h):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in h.to_list()]

    assert strip(resumed) == strip(full)
    for a, b in ((m2, model), (g2, guide), (p2, pen)):
        sa, sb = a.state_dict(), b.state_dict()
        for k in sa:
            if torch.is_tensor(sa[k]):
                assert torch.equal(sa[k], sb[k]), k
    sa, sb = p2.optimizer.state_dict()["state"], pen.optimizer.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        assert_close(sa[i]["exp_avg"], sb[i]["exp_avg"], rtol=0, atol=0)
