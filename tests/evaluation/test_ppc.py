"""Posterior predictive checks: draws, ArviZ conversion, tail probabilities, the plot."""
import warnings

import numpy as np
import pytest
import torch
from known_guides import oracle_guide, useless_guide

from pyro_groups import ExamScoresDecoder, GroupVAE, exam_scores
from pyro_groups.data import GroupBatch
from pyro_groups.evaluation import plot_ppc, posterior_predictive, ppc_summary, to_inference_data
from pyro_groups.guides import preset_guide

S = 40


@pytest.fixture(scope="module")
def data():
    return exam_scores(120, seed=11)


@pytest.fixture
def batch(data):
    b = data[torch.arange(120)]
    assert not bool(b.mask.all())
    return b


@pytest.fixture
def model():
    return GroupVAE(ExamScoresDecoder())


def test_posterior_predictive_shapes(model, batch):
    small = GroupBatch(batch.x[:5], batch.mask[:5])
    draws = posterior_predictive(model, preset_guide("cxvae", 1, 2, 1), small, num_samples=7)
    g, k = small.mask.shape
    assert set(draws) == {"u", "v", "x"}
    assert draws["u"].shape == (7, g, 2)
    assert draws["v"].shape == (7, g, k, 1)
    assert draws["x"].shape == (7, g, k, 1)
    assert all(torch.isfinite(t).all() for t in draws.values())


def test_replicates_are_resampled_not_the_data(model, batch, data):
    draws = posterior_predictive(model, oracle_guide(data), batch, num_samples=3)
    m = batch.mask
    assert not torch.equal(draws["x"][0][m], batch.x[m])  # "x" is not conditioned on the data
    assert not torch.equal(draws["x"][0][m], draws["x"][1][m])
    # ... but with the true codes they are the data up to the observation noise (s = 0.1)
    resid = (draws["x"][:, m] - batch.x[m]).std()
    assert resid.item() == pytest.approx(0.1 * 2**0.5, rel=0.1)
    # and the guide's codes are the truth
    torch.testing.assert_close(draws["u"][0], batch.u_true, atol=1e-2, rtol=0)


def test_to_inference_data(model, batch):
    small = GroupBatch(batch.x[:6], batch.mask[:6])
    draws = posterior_predictive(model, useless_guide(), small, num_samples=5)
    idata = to_inference_data(small, draws)
    assert {"posterior", "posterior_predictive", "observed_data"} <= set(idata.groups())
    n_obs = int(small.mask.sum())
    assert dict(idata.posterior["u"].sizes) == {"chain": 1, "draw": 5, "group": 6, "u_dim": 2}
    assert dict(idata.posterior_predictive["x"].sizes) == {"chain": 1, "draw": 5, "obs": n_obs}
    assert dict(idata.observed_data["x"].sizes) == {"obs": n_obs}
    observed = idata.observed_data["x"].values
    np.testing.assert_array_equal(observed, small.x[small.mask][:, 0].numpy())
    group_of_obs = idata.observed_data["x"].coords["group_of_obs"].values
    np.testing.assert_array_equal(np.bincount(group_of_obs), small.mask.sum(-1).numpy())
    replicated = idata.posterior_predictive["x"].values[0]
    np.testing.assert_array_equal(replicated, draws["x"][:, small.mask][..., 0].numpy())


def test_ppc_summary_known_answer():
    # exactly representable numbers: shifting a replicate by c moves its mean by c, keeps its std
    x = torch.tensor([[1.0, 2.0, 3.0, 0.0], [0.5, -1.0, 3.0, 2.0]]).unsqueeze(-1)
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    b = GroupBatch(x, mask)
    shifts = torch.tensor([-2.0, -1.0, 1.0, 2.0, 3.0]).view(-1, 1, 1, 1)
    rep = x + shifts
    rep[:, ~mask] = 1e6  # padded slots must not count
    s = ppc_summary(b, {"x": rep})
    np.testing.assert_allclose(s["p_mean"], [0.6, 0.6])
    np.testing.assert_allclose(s["p_std"], [1.0, 1.0])  # ties count as "at least as large"
    assert s["central95_mean"] == 1.0 and s["central95_std"] == 0.0


def test_ppc_summary_oracle_vs_useless(model, batch, data):
    truth = oracle_guide(data)
    oracle = ppc_summary(batch, posterior_predictive(model, truth, batch, num_samples=S))
    # all codes zero: every replicate is N(0, 0.1^2) noise, whatever the school
    zero = useless_guide(1e-4)
    useless = ppc_summary(batch, posterior_predictive(model, zero, batch, num_samples=S))
    for s in (oracle, useless):
        for key in ("p_mean", "p_std"):
            assert s[key].shape == (batch.num_groups,)
            assert np.all((s[key] >= 0) & (s[key] <= 1))
        assert 0.0 <= s["central95_mean"] <= 1.0 and 0.0 <= s["central95_std"] <= 1.0
    # the true codes reproduce every group: tail probabilities spread over (0, 1), rarely extreme
    assert oracle["central95_mean"] >= 0.85 and oracle["central95_std"] >= 0.85
    for key in ("p_mean", "p_std"):
        assert 0.35 < oracle[key].mean() < 0.65
        assert np.histogram(oracle[key], bins=4, range=(0, 1))[0].min() >= 0.1 * batch.num_groups
    # zero codes replicate neither a school's level nor its spread
    assert useless["central95_std"] <= 0.05 and useless["central95_mean"] <= 0.3


def test_plot_ppc_writes_a_png(model, batch, tmp_path):
    small = GroupBatch(batch.x[:4], batch.mask[:4])
    draws = posterior_predictive(model, useless_guide(), small, num_samples=4)
    idata = to_inference_data(small, draws)
    with warnings.catch_warnings():
        # arviz 0.23's plot_ppc trips a MatplotlibDeprecationWarning with matplotlib 3.11
        warnings.simplefilter("ignore", DeprecationWarning)
        path = plot_ppc(idata, tmp_path / "ppc.png", num_pp_samples=4)
    assert (tmp_path / "ppc.png").stat().st_size > 1000 and path.endswith("ppc.png")
