"""UniformMixtureOfNormals: log density, mean, sampling, pathwise gradients, masked components."""
import math

import pytest
import torch
from torch.distributions import Normal
from torch.testing import assert_close

from pyro_groups.guides import UniformMixtureOfNormals


def params(seed=0, batch=(3,), k=5, d=2):
    g = torch.Generator().manual_seed(seed)
    loc = 2 * torch.randn(*batch, k, d, generator=g)
    scale = torch.rand(*batch, k, d, generator=g) + 0.3
    mask = torch.rand(*batch, k, generator=g) < 0.6
    mask[..., 0] = True
    mask[..., -1] = False
    return loc, scale, mask


def manual_log_prob(loc, scale, mask, value):
    """log (1 / K_valid) sum_{k valid} prod_d N(value_d; loc_kd, scale_kd), value [S, B, d]."""
    out = torch.empty(value.shape[:-1], dtype=torch.float64)
    for s in range(value.shape[0]):
        for b in range(value.shape[1]):
            m = mask[b]
            comps = [
                Normal(loc[b, k], scale[b, k]).log_prob(value[s, b]).double().sum()
                for k in range(mask.shape[-1])
                if m[k]
            ]
            out[s, b] = torch.logsumexp(torch.stack(comps), 0) - math.log(len(comps))
    return out


def test_shapes_and_support():
    loc, scale, mask = params()
    q = UniformMixtureOfNormals(loc, scale, mask)
    assert q.batch_shape == (3,) and q.event_shape == (2,)
    assert q.rsample().shape == (3, 2)
    assert q.rsample((4, 6)).shape == (4, 6, 3, 2)
    assert q.log_prob(q.rsample((4,))).shape == (4, 3)
    e = q.expand((7, 3))
    assert e.batch_shape == (7, 3) and e.log_prob(torch.zeros(7, 3, 2)).shape == (7, 3)
    assert_close(e.log_prob(torch.zeros(7, 3, 2))[0], q.log_prob(torch.zeros(3, 2)))
    # broadcasting a shared scale
    assert UniformMixtureOfNormals(loc, torch.ones(5, 2), mask).batch_shape == (3,)


def test_log_prob_known_answer():
    # two unit normals at 0 and 2, a third component masked: at u = 1 both are e^{-1/2}/sqrt(2 pi)
    loc = torch.tensor([[0.0], [2.0], [1.0]])
    q = UniformMixtureOfNormals(loc, torch.ones(3, 1), torch.tensor([True, True, False]))
    assert_close(q.log_prob(torch.tensor([1.0])), torch.tensor(-0.5 * math.log(2 * math.pi) - 0.5))
    # one valid component: exactly that normal
    q1 = UniformMixtureOfNormals(loc, torch.full((3, 1), 0.5), torch.tensor([False, True, False]))
    u = torch.linspace(-2, 4, 5)[:, None]
    assert_close(q1.log_prob(u), Normal(2.0, 0.5).log_prob(u[:, 0]))


def test_log_prob_against_manual_logsumexp_and_garbage():
    loc, scale, mask = params()
    q = UniformMixtureOfNormals(loc, scale, mask)
    value = torch.randn(4, 3, 2, generator=torch.Generator().manual_seed(5))
    expected = manual_log_prob(loc, scale, mask, value)
    assert_close(q.log_prob(value), expected.float())
    # padded components with garbage change nothing
    loc_g = loc.masked_fill(~mask[..., None], 1e3)
    scale_g = scale.masked_fill(~mask[..., None], 1e-3)
    assert_close(UniformMixtureOfNormals(loc_g, scale_g, mask).log_prob(value), q.log_prob(value))
    # a garbage component sitting right at the value would dominate if it were not masked
    near = loc.masked_fill(~mask[..., None], 0.0)
    zero = torch.zeros(3, 2)
    assert_close(UniformMixtureOfNormals(near, scale_g, mask).log_prob(zero), q.log_prob(zero))


def test_mean():
    loc, scale, mask = params()
    q = UniformMixtureOfNormals(loc.masked_fill(~mask[..., None], 1e3), scale, mask)
    expected = torch.stack([loc[i][mask[i]].mean(0) for i in range(3)])
    assert_close(q.mean, expected)


def test_rsample_moments_and_padded_components_never_sampled():
    loc, scale, mask = params(seed=2, batch=(2,), k=4, d=1)
    loc = loc.masked_fill(~mask[..., None], 1e6)
    scale = scale.masked_fill(~mask[..., None], 1e-3)
    q = UniformMixtureOfNormals(loc, scale, mask)
    s = q.rsample((200_000,))
    assert s.abs().max() < 100  # a padded component (at 1e6) was never picked
    w = mask[..., None].float() / mask.sum(-1)[:, None, None]
    mean = (w * loc.masked_fill(~mask[..., None], 0)).sum(-2)
    second = (w * (scale**2 + loc.masked_fill(~mask[..., None], 0) ** 2)).sum(-2)
    assert_close(s.mean(0), mean, atol=0.03, rtol=0)
    assert_close(s.var(0), second - mean**2, atol=0.05, rtol=0.02)


def test_components_are_picked_uniformly():
    # well-separated components: count the samples near each
    loc = torch.tensor([[0.0], [100.0], [200.0], [300.0]])
    mask = torch.tensor([True, False, True, True])
    q = UniformMixtureOfNormals(loc, torch.full((4, 1), 0.01), mask)
    s = q.rsample((30_000,))[:, 0]
    counts = torch.stack([((s - c).abs() < 1).sum() for c in loc[:, 0]]).float() / len(s)
    assert_close(counts, torch.tensor([1 / 3, 0.0, 1 / 3, 1 / 3]), atol=0.015, rtol=0)


def test_pathwise_gradients_flow_to_loc_and_scale():
    # E[u^2] = mean_k (scale_k^2 + loc_k^2): d/dloc_k = 2 loc_k / K, d/dscale_k = 2 scale_k / K
    loc = torch.tensor([[1.0], [-2.0], [0.5]], requires_grad=True)
    scale = torch.tensor([[0.5], [1.0], [7.0]], requires_grad=True)
    mask = torch.tensor([True, True, False])
    q = UniformMixtureOfNormals(loc, scale, mask)
    (q.rsample((200_000,)) ** 2).mean().backward()
    assert_close(loc.grad[:2, 0], 2 * loc.detach()[:2, 0] / 2, atol=0.03, rtol=0)
    assert_close(scale.grad[:2, 0], 2 * scale.detach()[:2, 0] / 2, atol=0.03, rtol=0)
    assert loc.grad[2].item() == 0 and scale.grad[2].item() == 0
    # and through log_prob
    loc.grad = scale.grad = None
    q.log_prob(torch.tensor([0.3])).backward()
    assert (loc.grad[:2] != 0).all() and (scale.grad[:2] != 0).all()
    assert loc.grad[2].item() == 0 and scale.grad[2].item() == 0


@pytest.mark.parametrize("validate", [True, False])
def test_constraints_are_checked(validate):
    loc, scale, mask = params()
    if validate:
        with pytest.raises(ValueError):
            UniformMixtureOfNormals(loc, -scale, mask, validate_args=True)
    else:
        UniformMixtureOfNormals(loc, scale, mask, validate_args=False)
