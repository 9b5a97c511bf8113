"""One content draw per group (default) or per observation (ML-VAE's Algorithm 1)."""
import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
from torch.testing import assert_close

from linear_gaussian import LinearGaussianDecoder, exact_guide, exact_log_marginal, sample_groups
from pyro_groups.guides import content_samples, make_guide
from pyro_groups.models import GroupVAE, MLPDecoder

GROUPS = ["average", "product", "mixture", "deepsets"]


def setup(group="product", instance="unconditional", mode="observation"):
    model = GroupVAE(MLPDecoder(2, 3, 4, hidden=(8,)), content_samples=mode)
    guide = make_guide(4, 2, 3, group=group, instance=instance, hidden=(8,), content_samples=mode)
    x = torch.randn(4, 5, 4)
    mask = torch.arange(5) < torch.tensor([5, 2, 1, 4])[:, None]
    return model, guide, x.masked_fill(~mask[..., None], 0.0), mask


def test_default_is_one_draw_per_group():
    model, guide, x, mask = setup(mode="group")
    assert GroupVAE(MLPDecoder(2, 3, 4)).content_samples == "group"
    assert make_guide(4, 2, 3).content_samples == "group"
    tr = poutine.trace(guide).get_trace(x, mask)
    assert tr.nodes["u"]["value"].shape == (4, 1, 2)
    assert {f.name for f in tr.nodes["u"]["cond_indep_stack"]} == {"groups"}


@pytest.mark.parametrize("instance", ["conditional", "unconditional"])
@pytest.mark.parametrize("group", GROUPS)
def test_per_observation_sites_masks_and_weights(group, instance):
    model, guide, x, mask = setup(group, instance)
    guide_tr = poutine.trace(guide).get_trace(x, mask)
    model_tr = poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace(x, mask)
    for tr in (guide_tr, model_tr):
        site = tr.nodes["u"]
        assert site["value"].shape == (4, 5, 2)
        assert {f.name for f in site["cond_indep_stack"]} == {"groups", "instances"}
        assert torch.equal(site["mask"], mask)
        assert_close(site["scale"], 1.0 / mask.sum(-1, keepdim=True).float())
    # observation k of a group is decoded from its own draw u_k
    x_loc = model_tr.nodes["x"]["fn"].base_dist.loc
    u, v = guide_tr.nodes["u"]["value"], guide_tr.nodes["v"]["value"]
    assert_close(x_loc, model.decoder.mean(u, v))
    draws = u[0]
    assert not torch.allclose(draws[0], draws[1])


def test_mismatched_model_and_guide_are_an_error():
    model, guide, x, mask = setup(mode="group")
    guide.content_samples = "observation"
    with pytest.raises(ValueError, match="same content_samples"):
        Trace_ELBO().loss(model, guide, x, mask)
    model.content_samples, guide.content_samples = "observation", "group"
    with pytest.raises(ValueError, match="same content_samples"):
        Trace_ELBO().loss(model, guide, x, mask)
    with pytest.raises(ValueError, match="content_samples must be"):
        make_guide(4, 2, 3, content_samples="sample")
    with pytest.raises(ValueError, match="content_samples must be"):
        GroupVAE(MLPDecoder(2, 3, 4), content_samples="both")


def test_context_manager_switches_both_and_restores():
    model, guide, x, mask = setup(mode="group")
    with content_samples(model, guide, "observation"):
        assert model.content_samples == guide.content_samples == "observation"
        Trace_ELBO().loss(model, guide, x, mask)
    assert model.content_samples == guide.content_samples == "group"
    with pytest.raises(ValueError), content_samples(model, guide, "each"):
        pass


@torch.no_grad()
def elbo_draws(model, guide, x, mask, n):
    """``n`` independent one-draw ELBO estimates ``[n]``, vectorised over a particle plate."""

    def particles(fn):
        def wrapped(*args, **kwargs):
            with pyro.plate("particles", n, dim=-3):
                return fn(*args, **kwargs)

        return wrapped

    guide_tr = poutine.trace(particles(guide)).get_trace(x, mask)
    model_tr = poutine.trace(poutine.replay(particles(model), trace=guide_tr)).get_trace(x, mask)
    total = torch.zeros(n, dtype=torch.float64)
    for tr, sign in ((model_tr, 1.0), (guide_tr, -1.0)):
        tr.compute_log_prob()
        for site in tr.nodes.values():
            if site["type"] == "sample":
                lp = site["log_prob"]
                total += sign * lp.expand(n, *lp.shape[1:]).reshape(n, -1).sum(-1).double()
    return total


def test_both_estimators_are_unbiased_for_the_same_elbo():
    """At the exact posterior of a linear-Gaussian group model the per-group estimator equals
    log p(x) at every draw; the per-observation one equals it on average (same ELBO)."""
    dec = LinearGaussianDecoder([[1.0], [0.5]], [[0.3], [-1.0]], 0.4)
    k = 4
    data = sample_groups(dec, 3, k, seed=1)
    log_px = float(exact_log_marginal(dec, data.x, data.mask).sum())
    model = GroupVAE(dec)
    guide = exact_guide(dec, k)
    group = elbo_draws(model, guide, data.x, data.mask, 50)
    assert_close(group, torch.full_like(group, log_px), atol=1e-3, rtol=0)
    assert -Trace_ELBO().loss(model, guide, data.x, data.mask) == pytest.approx(log_px, abs=1e-3)
    with content_samples(model, guide, "observation"):
        draws = elbo_draws(model, guide, data.x, data.mask, 8000)
    se = float(draws.std()) / len(draws) ** 0.5
    assert float(draws.std()) > 0.01  # a different estimator: it does not sit on log p(x)
    assert float(draws.mean()) == pytest.approx(log_px, abs=4 * se)


@pytest.mark.parametrize("group", GROUPS)
def test_trains_in_a_plain_svi_loop(group):
    model, guide, x, mask = setup(group, "conditional")
    elbo = Trace_ELBO() if group == "mixture" else TraceMeanField_ELBO()
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), elbo)
    losses = [svi.step(x, mask, num_groups=8) for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(losses)))
