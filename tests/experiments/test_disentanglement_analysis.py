"""Known answers of the Locatello study's analyses (R^2 decompositions, rank correlations with
intervals, permutation tests, TC trends, model selection) and of its findings."""
import itertools
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from pyro_groups.experiments import disentanglement_analysis as an
from pyro_groups.experiments.disentanglement_report import describe, findings, format_r2_rst

OBJECTIVES = ("a", "b", "c")
VALUES = (1.0, 2.0)
SEEDS = range(4)


def synthetic_runs(metric) -> list[dict]:
    """3 objectives x 2 values x 4 seeds; ``metric(objective_index, value_index, seed)``."""
    runs = []
    for (i, obj), (j, value), seed in itertools.product(enumerate(OBJECTIVES),
                                                        enumerate(VALUES), SEEDS):
        runs.append({"model": obj, "value": value, "seed": seed,
                     "metrics": {"m": float(metric(i, j, seed))}})
    return runs


def test_r2_by_groups_by_hand():
    # Means 1.5 and 3.5 of (1, 2 | 3, 4): total SS 5, within SS 4 * 0.25 = 1, R^2 = 0.8.
    assert_allclose(an.r2_by_groups([1, 2, 3, 4], ["x", "x", "y", "y"]), 0.8)
    assert_allclose(an.r2_by_groups([1, 1, 5, 5], [0, 0, 1, 1]), 1.0)
    assert_allclose(an.r2_by_groups([1, 3, 1, 3], [0, 0, 1, 1]), 0.0)
    assert math.isnan(an.r2_by_groups([2, 2, 2], [0, 1, 2]))
    # Non-finite values are left out.
    assert_allclose(an.r2_by_groups([1, 2, 3, 4, float("nan")], ["x", "x", "y", "y", "y"]), 0.8)


@pytest.mark.parametrize(
    "metric, expected",
    [
        # Only the objective matters: it explains everything, nothing is left to the seed.
        (lambda i, j, s: 10 * i, {"r2_objective": 1.0, "r2_hyperparameter_within_objective": 0.0,
                                  "r2_seed_within_configuration": 0.0, "r2_seed": 0.0}),
        # The value matters with opposite signs in each objective: the objective means are equal.
        (lambda i, j, s: (-1) ** (i + j), {"r2_objective": 0.0,
                                           "r2_objective_x_hyperparameter": 1.0,
                                           "r2_hyperparameter_within_objective": 1.0}),
        # Only the seed matters (balanced design): objective and value explain nothing.
        (lambda i, j, s: s, {"r2_objective": 0.0, "r2_objective_x_hyperparameter": 0.0,
                             "r2_seed_within_configuration": 1.0, "r2_seed": 1.0}),
    ],
    ids=["objective", "hyperparameter", "seed"],
)
def test_variance_explained_known_decompositions(metric, expected):
    out = an.variance_explained(synthetic_runs(metric), ["m"], num_permutations=49)["m"]
    for key, value in expected.items():
        assert_allclose(out[key], value, atol=1e-12, err_msg=key)
    # Adjusted R^2: 1 - (1 - R^2)(n - 1)/(n - k) with n = 24 and k = 3 objectives.
    assert_allclose(out["r2_objective_adjusted"], 1 - (1 - out["r2_objective"]) * 23 / 21)
    assert out["n"] == 24


def test_permutation_p_separates_effect_from_noise():
    labels = [0] * 6 + [1] * 6
    # Only the split itself (or its mirror) gives R^2 = 1: 2 of 924 labellings.
    assert an.permutation_p([0] * 6 + [1] * 6, labels, num=999) < 0.02
    noise = np.random.default_rng(0).normal(size=12)
    assert an.permutation_p(noise, labels, num=199) > 0.05
    # Shuffling within blocks keeps what the blocks explain: an effect of the blocks alone is
    # not attributed to the labels within them.
    blocks = [0, 0, 0, 1, 1, 1] * 2
    values = [float(b) for b in blocks]
    assert an.permutation_p(values, labels, blocks, num=199) > 0.5


def test_rank_correlation_interval_by_hand():
    perfect = an.rank_correlation(range(10), range(10))
    assert_allclose(perfect["rho"], 1.0)
    assert perfect["beyond_noise"] is True
    # rho = 0.5 from n = 28: atanh(0.5) = 0.5493, 2 sqrt(1.06 / 25) = 0.4118, so the interval
    # is (tanh 0.1375, tanh 0.9611) = (0.1366, 0.7450).
    x = np.arange(28.0)
    rng = np.random.default_rng(0)
    for _ in range(2000):
        y = x + rng.normal(scale=12.0, size=28)
        c = an.rank_correlation(x, y)
        if abs(c["rho"] - 0.5) < 0.003:
            break
    z, half = math.atanh(c["rho"]), 2 * math.sqrt(1.06 / 25)
    assert_allclose([c["low"], c["high"]], [math.tanh(z - half), math.tanh(z + half)])
    independent = an.rank_correlation(rng.normal(size=200), rng.normal(size=200))
    assert independent["low"] < 0 < independent["high"] and independent["beyond_noise"] is False
    assert an.rank_correlation([1, 2, 3], [3, 2, 1])["beyond_noise"] is None  # n < 4


def tc_runs(sampled, mean) -> list[dict]:
    return [{"model": "beta_vae", "value": v, "seed": s,
             "metrics": {"tc_sampled": sampled[j] + 0.01 * s, "tc_mean": mean[j] + 0.01 * s}}
            for j, v in enumerate((1.0, 4.0)) for s in range(3)]


def test_tc_trend_and_its_findings():
    # Sampled TC 1.0 -> 0.2 (falls), mean TC 1.0 -> 3.0 (rises), seeds spread 0.01: beyond noise.
    runs = tc_runs((1.0, 0.2), (1.0, 3.0))
    (row,) = an.tc_trend(runs)
    assert (row["weak"], row["strong"]) == (1.0, 4.0)
    assert_allclose(row["tc_sampled_strong"]["mean"], 0.21)
    analysis = {"tc": [row], "metric_agreement": [], "rank_correlation": {"metrics": []},
                "r2": {"unsupervised": {}}, "model_selection": [], "downstream": []}
    out = findings(runs, analysis, None)
    assert [f["reproduced"] for f in out] == [True, True]
    assert [f["beyond_noise"] for f in out] == [True, True]
    assert "beta-VAE" in describe(out[0]) and "1.010 -> 0.210" in describe(out[0])
    # The opposite trends are not reproduced.
    row = an.tc_trend(tc_runs((0.2, 1.0), (3.0, 1.0)))[0]
    out = findings(runs, {**analysis, "tc": [row]}, None)
    assert [f["reproduced"] for f in out] == [False, False]


def test_model_selection_by_hand():
    # ELBO rises with MIG in every objective: rho 1, the picked run is the best (top half);
    # the sampled TC is constant within objectives and tells nothing.
    runs = []
    for obj, s in itertools.product(OBJECTIVES, range(4)):
        runs.append({"model": obj, "value": 1.0, "seed": s, "metrics": {
            "elbo": float(s), "reconstruction_nll": -float(s), "tc_sampled": 1.0,
            "tc_mean": float(s), "mig": float(s) + OBJECTIVES.index(obj),
            "dci_disentanglement": -float(s)}})
    rows = {(r["score"], r["target"]): r for r in an.model_selection(runs)}
    elbo = rows[("elbo", "mig")]
    assert_allclose(elbo["within_objective_mean_rho"], 1.0)
    assert elbo["top_half_rate"] == 1.0 and elbo["pooled"]["rho"] > 0.7
    assert rows[("elbo", "dci_disentanglement")]["top_half_rate"] == 0.0
    assert rows[("tc_mean", "mig")]["within_objective_mean_rho"] == pytest.approx(-1.0)
    assert math.isnan(rows[("tc_sampled", "mig")]["within_objective_mean_rho"])


def test_format_r2_rst_percentages():
    r2 = an.variance_explained(synthetic_runs(lambda i, j, s: 10 * i), ["m"],
                               num_permutations=9)
    table = format_r2_rst(r2)
    assert table.splitlines()[3].split()[:2] == ["m", "100"]
