"""The non-amortised (SVI) guide: groups found by their observations, the ELBO at the mean-field
optimum of a linear-Gaussian model, training under fit and in a plain SVI loop."""
import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
from torch.testing import assert_close

from linear_gaussian import (
    LinearGaussianDecoder,
    exact_log_marginal,
    joint_posterior_precision,
    mean_field_gap,
    sample_groups,
)
from pyro_groups import fit
from pyro_groups.data import GroupDataError, GroupedData
from pyro_groups.evaluation import encode, swap_grid
from pyro_groups.guides import NonAmortisedGuide
from pyro_groups.guides.encoders import MIN_SCALE
from pyro_groups.models import GroupVAE, MLPDecoder


@pytest.fixture
def data():
    x = torch.randn(6, 4, 3)
    mask = torch.arange(4) < torch.tensor([4, 1, 3, 4, 2, 4])[:, None]
    return GroupedData(x, mask)


def test_groups_are_found_in_any_order_and_padding(data):
    guide = NonAmortisedGuide(data, 2, 1)
    perm = torch.tensor([3, 1, 5, 0])
    batch = data[perm]  # trimmed to its largest group
    assert_close(guide.group_index(batch.x), perm)
    wide = torch.cat([data.x, torch.zeros(6, 3, 3)], 1)
    assert_close(guide.group_index(wide), torch.arange(6))
    u, v = encode(guide, batch)
    assert_close(u, guide.u_loc[perm].detach())
    assert_close(v[batch.mask], guide.v_loc[perm][batch.mask].detach())
    assert torch.all(v[~batch.mask] == 0)


def test_unknown_and_duplicate_groups_are_errors(data):
    guide = NonAmortisedGuide(data, 2, 1)
    with pytest.raises(GroupDataError, match="not groups of the data"):
        guide.group_index(data.x[:, :1] + 1.0)
    with pytest.raises(GroupDataError, match="repeat another group"):
        NonAmortisedGuide(GroupedData(data.x[[0, 0]], data.mask[[0, 0]]), 2, 1)
    with pytest.raises(ValueError, match="init_scale"):
        NonAmortisedGuide(data, 2, 1, init_scale=0.0)


def _inv_softplus(y):
    return y + torch.log(-torch.expm1(-y))


def test_elbo_at_the_mean_field_optimum_of_a_linear_gaussian_model():
    """Set the free posteriors to the best fully factorised normal of the exact posterior (exact
    means, precisions the diagonal of the joint precision): the ELBO is then
    log p(x) - G * mean_field_gap, and moving a group's u away from its mean lowers it."""
    dec = LinearGaussianDecoder([[1.0], [0.5]], [[0.3], [-1.0]], 0.4)
    k, g = 3, 4
    data = sample_groups(dec, g, k, seed=2)
    guide = NonAmortisedGuide(data, 1, 1)
    prec = joint_posterior_precision(dec, k)
    M = torch.cat([torch.kron(torch.ones(k, 1), dec.A), torch.kron(torch.eye(k), dec.B)], 1)
    means = torch.linalg.solve(prec, M.T @ data.x.reshape(g, -1).T / dec.noise**2).T
    sd = prec.diagonal().rsqrt()
    with torch.no_grad():
        guide.u_loc[:] = means[:, :1]
        guide.v_loc[:] = means[:, 1:, None]
        guide.u_raw_scale[:] = _inv_softplus(sd[0] - MIN_SCALE)
        guide.v_raw_scale[:] = _inv_softplus(sd[1:] - MIN_SCALE)[None, :, None]
    elbo = TraceMeanField_ELBO(num_particles=4000, vectorize_particles=True, max_plate_nesting=2)
    model = GroupVAE(dec)
    best = float(exact_log_marginal(dec, data.x, data.mask).sum()) - g * mean_field_gap(dec, k)
    assert -elbo.loss(model, guide, data.x, data.mask) == pytest.approx(best, abs=0.3)
    with torch.no_grad():
        guide.u_loc[2] += 0.5
    assert -elbo.loss(model, guide, data.x, data.mask) < best - 1.0


def test_trains_under_fit_and_in_plain_svi(data):
    model = GroupVAE(MLPDecoder(2, 1, 3, hidden=(8,)))
    guide = NonAmortisedGuide(data, 2, 1)
    history = fit(model, guide, data, epochs=20, batch_size=2, lr=0.05, progress=False)
    losses = [row["loss"] for row in history.to_list()]
    assert losses[-1] < losses[0]
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    for batch in data.batches(3):
        assert torch.isfinite(torch.tensor(svi.step(batch.x, batch.mask, num_groups=len(data))))
    grid = swap_grid(model, guide, data[torch.arange(6)])
    assert_close(grid.swapped.diagonal(dim1=0, dim2=1).movedim(-1, 0), grid.style_reconstructions)
    with pytest.raises(GroupDataError):
        swap_grid(model, guide, data[torch.arange(6)], accumulate=False)
