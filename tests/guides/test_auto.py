"""Pyro autoguides on group models: per-group parameters paired with the right groups, padded
slots masked; known answer: at the exact posterior the ELBO equals log p(x) for every draw."""
import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoDelta, AutoDiagonalNormal, AutoNormal
from torch.distributions import transform_to

from linear_gaussian import LinearGaussianDecoder, exact_log_marginal
from pyro_groups import GroupVAE, fit
from pyro_groups.data import GroupedData
from pyro_groups.guides import GroupAutoGuide

A, B, NOISE = [[1.0], [0.0]], [[0.0], [0.8]], 0.5


def ragged_data(n=12, k_max=4, seed=0):
    dec = LinearGaussianDecoder(A, B, NOISE)
    g = torch.Generator().manual_seed(seed)
    u, v = torch.randn(n, 1, 1, generator=g), torch.randn(n, k_max, 1, generator=g)
    x = dec.mean(u, v) + NOISE * torch.randn(n, k_max, 2, generator=g)
    mask = torch.arange(k_max) < torch.randint(1, k_max + 1, (n, 1), generator=g)
    assert not bool(mask.all())
    return dec, GroupedData(x, mask)


def set_exact_posterior(guide: GroupAutoGuide, data: GroupedData) -> None:
    """A and B act on separate coordinates, so p(u, v | x) = p(u | x) prod p(v_k | x_k) is in
    AutoNormal's family: u precision 1 + K_i / s^2, v precision 1 + 0.8^2 / s^2."""
    x, mask, s2 = data.x, data.mask.to(data.x.dtype), NOISE**2
    prec_u = 1.0 + mask.sum(-1) / s2
    prec_v = 1.0 + 0.8**2 / s2
    locs, scales = guide.auto.locs, guide.auto.scales
    set_param(locs, "u", ((x[..., 0] * mask).sum(-1) / s2 / prec_u).reshape(-1, 1, 1))
    set_param(scales, "u", prec_u.rsqrt().reshape(-1, 1, 1))
    set_param(locs, "v", (0.8 / s2 * x[..., 1] / prec_v).unsqueeze(-1))
    set_param(scales, "v", torch.full_like(x[..., 1:], prec_v**-0.5))


def set_param(module, name, value):
    """Set a (constrained) PyroParam to ``value``."""
    constraint = module._pyro_params[name][0]
    with torch.no_grad():
        getattr(module, name + "_unconstrained").copy_(transform_to(constraint).inv(value))


def materialise(guide, data):
    b = next(data.batches(len(data), shuffle=False, pad=True))
    guide(b.x, b.mask, num_groups=len(data), group_index=b.index)


def test_at_the_exact_posterior_the_minibatch_elbo_is_log_px_and_pairing_matters():
    dec, data = ragged_data()
    model = GroupVAE(dec)
    guide = GroupAutoGuide(AutoNormal, model)
    materialise(guide, data)
    set_exact_posterior(guide, data)
    index = torch.tensor([5, 2, 9, 0, 7])
    b = data._full(index)  # padded to the data set's widest group
    exact = (len(data) / len(index)) * exact_log_marginal(dec, b.x, b.mask).sum()
    for _ in range(3):  # zero variance: every draw gives log p(x)
        elbo = -Trace_ELBO().loss(model, guide, b.x, b.mask, num_groups=len(data),
                                  group_index=b.index)
        assert elbo == pytest.approx(float(exact), rel=1e-5)
    wrong = -Trace_ELBO().loss(model, guide, b.x, b.mask, num_groups=len(data),
                               group_index=b.index.flip(0))
    assert wrong < float(exact) - 1.0


@pytest.mark.parametrize("auto", [AutoNormal, AutoDelta])
def test_fit_trains_autoguides_on_ragged_minibatches_and_padded_slots_stay_put(auto):
    dec, data = ragged_data(n=16)
    model = GroupVAE(dec)
    guide = GroupAutoGuide(auto, model)
    materialise(guide, data)

    def v_locs():
        return (guide.auto.locs if auto is AutoNormal else guide.auto).v.detach().squeeze(-1)

    start = v_locs().clone()
    h = fit(model, guide, data, epochs=30, batch_size=4, lr=0.05, progress=False)
    assert h["loss"][-1] < h["loss"][0]
    pad = ~data.mask
    assert torch.equal(v_locs()[pad], start[pad])  # no gradient ever reaches a padded slot
    assert not torch.equal(v_locs()[data.mask], start[data.mask])


def test_plain_svi_loop_with_padded_batches_and_group_indices():
    dec, data = ragged_data()
    model = GroupVAE(dec)
    guide = GroupAutoGuide(AutoNormal, model)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    losses = [svi.step(b.x, b.mask, num_groups=len(data), group_index=b.index)
              for _ in range(20) for b in data.batches(4, pad=True)]
    assert sum(losses[-3:]) < sum(losses[:3])


def test_bare_autoguides_and_unsupported_subsampling_are_clear_errors():
    dec, data = ragged_data()
    model = GroupVAE(dec)
    with pytest.raises(TypeError, match="GroupAutoGuide"):
        fit(model, AutoNormal(model), data, epochs=1, progress=False)
    with pytest.raises(TypeError, match="AutoGuide class"):
        GroupAutoGuide(AutoNormal(model), model)
    guide = GroupAutoGuide(AutoDiagonalNormal, model)
    with pytest.raises(ValueError, match="cannot train on a minibatch"):
        fit(model, guide, data, epochs=1, batch_size=4, progress=False)
    h = fit(model, guide, data, epochs=2, batch_size=len(data), progress=False)
    assert len(h) == 2
