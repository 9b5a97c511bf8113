"""Posterior predictive checks: draws, ArviZ conversion, tail probabilities, the plot."""
import math
import warnings

import arviz as az
import numpy as np
import pytest
import torch
from known_guides import oracle_guide, useless_guide
from pyro.distributions import Normal
from torch.testing import assert_close

from pyro_groups import ExamScoresDecoder, GroupVAE, exam_scores
from pyro_groups.data import GroupBatch, exam_scores_mean
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
    assert set(draws) == {"u", "v", "x", "log_likelihood"}
    assert draws.levels == {"u": "group", "v": "instance"}
    assert draws["u"].shape == (7, g, 2)
    assert draws["v"].shape == (7, g, k, 1)
    assert draws["x"].shape == (7, g, k, 1)
    assert draws["log_likelihood"].shape == (7, g, k)
    assert (draws["log_likelihood"][:, ~small.mask] == 0).all()
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
    assert set(idata.groups()) == {
        "posterior", "posterior_predictive", "log_likelihood", "observed_data"
    }
    n_obs = int(small.mask.sum())
    assert set(idata.posterior.data_vars) == {"u", "v"}
    assert dict(idata.posterior["u"].sizes) == {"chain": 1, "draw": 5, "group": 6, "u_dim": 2}
    assert dict(idata.posterior["v"].sizes) == {"chain": 1, "draw": 5, "obs": n_obs, "v_dim": 1}
    np.testing.assert_array_equal(
        idata.posterior["v"].values[0], draws["v"][:, small.mask].numpy()
    )
    assert dict(idata.log_likelihood["x"].sizes) == {"chain": 1, "draw": 5, "obs": n_obs}
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


def test_log_likelihood_is_the_decoders_at_each_draw(model, batch):
    small = GroupBatch(batch.x[:5], batch.mask[:5])
    draws = posterior_predictive(model, preset_guide("gvae", 1, 2, 1), small, num_samples=4)
    # known answer: the Exam-Scores likelihood N(x; 2 mu + (sigma^2 + 1) v, 0.1^2) at the draws
    loc = exam_scores_mean(draws["u"].unsqueeze(-2), draws["v"])
    expected = Normal(loc, 0.1).log_prob(small.x)[..., 0]
    m = small.mask
    assert_close(draws["log_likelihood"][:, m], expected[:, m])


def test_loo_and_waic_run_and_waic_matches_its_definition(model, batch, data):
    small = GroupBatch(batch.x[:8], batch.mask[:8])
    draws = posterior_predictive(model, oracle_guide(data), small, num_samples=S)
    idata = to_inference_data(small, draws)
    ll = draws["log_likelihood"][:, small.mask].double()  # [S, n_obs]
    lppd = torch.logsumexp(ll, 0) - math.log(S)
    p_waic = ll.var(0)  # ArviZ: the sample variance (ddof=1) of the pointwise log-likelihood
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto k / WAIC variance warnings on 40 draws
        waic = az.waic(idata, pointwise=True)
        loo = az.loo(idata, pointwise=True)
    assert waic.elpd_waic == pytest.approx(float((lppd - p_waic).sum()), rel=1e-6)
    assert loo.elpd_loo <= float(lppd.sum()) + 1e-6  # leaving an observation out cannot help
    assert len(loo.pareto_k) == int(small.mask.sum())
    by_group = to_inference_data(small, draws, pointwise="group")
    assert dict(by_group.log_likelihood["x"].sizes) == {"chain": 1, "draw": S, "group": 8}
    assert_close(
        torch.as_tensor(by_group.log_likelihood["x"].values[0]),
        (draws["log_likelihood"].double() * small.mask).sum(-1),
    )


@pytest.mark.parametrize("family", ["iid", "paired"])
def test_every_model_family(batch, family):
    from pyro_groups import MLPDecoder
    from pyro_groups.guides import IIDGuide, pair_guide
    from pyro_groups.models import IIDVAE, PairedVAE

    small = GroupBatch(batch.x[:4], batch.mask[:4])
    if family == "iid":
        model, guide, latents = IIDVAE(MLPDecoder(0, 2, 1, hidden=(4,))), IIDGuide(1, 2), {"z"}
    else:
        model = PairedVAE(MLPDecoder(2, 1, 1, hidden=(4,)))
        guide, latents = pair_guide("group_tcvae", 1, 2, 1, hidden=(4,)), {"u", "v"}
    draws = posterior_predictive(model, guide, small, num_samples=3)
    assert set(draws) == latents | {"x", "log_likelihood"}
    assert set(draws.levels.values()) == {"instance"}
    idata = to_inference_data(small, draws)
    assert set(idata.posterior.data_vars) == latents
    n_obs = int(small.mask.sum())
    for name in latents:
        assert idata.posterior[name].sizes["obs"] == n_obs
    assert 0.0 <= ppc_summary(small, draws)["central95_mean"] <= 1.0


def test_plot_ppc_leaves_pyplot_alone(model, batch, tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    small = GroupBatch(batch.x[:4], batch.mask[:4])
    idata = to_inference_data(small, posterior_predictive(model, useless_guide(), small,
                                                          num_samples=3))
    backend, figures = matplotlib.get_backend(), plt.get_fignums()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        plot_ppc(idata, tmp_path / "ppc.png", num_pp_samples=3)
    assert matplotlib.get_backend() == backend and plt.get_fignums() == figures


@pytest.mark.parametrize("autoguide", ["AutoNormal", "AutoDiagonalNormal"])
def test_autoguides_sites_are_discovered_and_auxiliary_sites_skipped(model, batch, autoguide):
    import pyro.infer.autoguide as ag

    small = GroupBatch(batch.x[:3], torch.ones(3, batch.mask.shape[1], dtype=torch.bool))
    draws = posterior_predictive(model, getattr(ag, autoguide)(model), small, num_samples=2)
    assert set(draws) == {"u", "v", "x", "log_likelihood"}  # no "_Auto..._latent"
    assert draws.levels == {"u": "group", "v": "instance"} and draws["u"].shape == (2, 3, 2)


def test_group_autoguide_reads_the_batchs_own_groups(model, data):
    from pyro.infer.autoguide import AutoNormal

    from pyro_groups.guides.auto import GroupAutoGuide

    n = len(data)
    guide = GroupAutoGuide(AutoNormal, model, init_scale=1e-4)
    full = data._full(torch.arange(n))
    guide(full.x, full.mask, num_groups=n, group_index=full.index)  # creates the parameters
    index = torch.tensor([7, 3, 50])
    batch = data._full(index)
    draws = posterior_predictive(model, guide, batch, num_samples=3, num_groups=n,
                                 group_index=batch.index)
    locs = guide.auto.locs.u.detach()[index].squeeze(-2)  # AutoNormal's per-group locations
    assert_close(draws["u"].mean(0), locs, atol=1e-3, rtol=0)
