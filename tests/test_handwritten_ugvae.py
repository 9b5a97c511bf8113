"""The hand-written UG-VAE step (speed baseline) computes the library's loss on the same draws."""
import pytest
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO

from pyro_groups.guides import UGVAEGuide
from pyro_groups.models import UGVAE, MLPDecoder

from benchmark_scripts import load_benchmark


hand = load_benchmark("handwritten_ugvae")
X, U, V, C, H = 6, 3, 2, 4, (16,)


@pytest.fixture
def setup():
    model = UGVAE(MLPDecoder(U, V, X, H), C, hidden=H)
    guide = UGVAEGuide(X, U, V, C, hidden=H, cluster_hidden=H)
    x = torch.randn(3, 7, X)
    mask = torch.arange(7) < torch.tensor([7, 4, 1])[:, None]
    return model, guide, x.masked_fill(~mask.unsqueeze(-1), 0.0), mask


@pytest.mark.parametrize("num_groups", [None, 50])
def test_same_loss_and_gradients_on_the_same_draws(setup, num_groups):
    model, guide, x, mask = setup
    hw = hand.HandwrittenUGVAE.from_library(model, guide)
    trace = poutine.trace(guide).get_trace(x, mask, num_groups=num_groups)
    trace.remove_node("d")
    z, beta = trace.nodes["v"]["value"].detach(), trace.nodes["u"]["value"].detach()
    lib = TraceEnum_ELBO(max_plate_nesting=2).differentiable_loss(
        model, poutine.replay(guide, trace=trace), x, mask, num_groups=num_groups
    )
    z_loc, z_scale = hw.z_posterior(x)
    b_loc, b_scale = hw.beta_posterior(x, mask, hw.cluster(z).softmax(-1))
    noise = (((z - z_loc) / z_scale).detach(), ((beta - b_loc) / b_scale).detach())
    ours = hw.loss(x, mask, num_groups, noise=noise)
    torch.testing.assert_close(ours, lib)
    lib.backward()
    ours.backward()
    pairs = [(guide.cluster_net, hw.cluster), (guide.group_net, hw.beta_encoder),
             (model.decoder.net, hw.decoder)]
    for a, b in pairs:
        for p, q in zip(a.parameters(), b.parameters()):
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-4 * p.grad.abs().max())
    torch.testing.assert_close(hw.comp_w[1].grad, model.components.net.weight1.grad,
                               rtol=1e-4, atol=1e-5)
    other = hw.loss(x, mask, num_groups, noise=(torch.randn_like(z), torch.randn_like(beta)))
    assert not torch.isclose(other, lib)


def test_step_ratio_runs_and_reports_paired_medians():
    out = hand.ugvae_step_ratio(batch_size=16, groups=2, steps=1, repeats=2, warmup=1,
                                hidden=(8,))
    assert set(out["steps_per_second"]) == {
        "handwritten", "pyro_traceenum", "pyro_traceenum_validated"}
    assert all(r > 0 for r in out["steps_per_second"].values())
    assert set(out["time_ratio_vs_handwritten"]) == {"pyro_traceenum", "pyro_traceenum_validated"}
    assert all(len(r) == 2 for r in out["steps_per_second_repeats"].values())
