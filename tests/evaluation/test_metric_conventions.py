"""Both metric conventions ("pyro_groups" and "disentanglement_lib") on the known answers.

The representations are those of ``test_disentanglement_metrics``: a tiled full grid of three
factors with 4, 5 and 6 values encoded as the identity, a constant, each factor twice, and the
identity with permuted columns. Where the conventions must agree the tests are parametrised over
both; where they differ the expected value of each is worked out in the comments.
"""
import itertools
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from pyro_groups.evaluation.disentanglement import (
    beta_vae_score,
    dci,
    downstream_accuracy,
    factor_vae_score,
    gaussian_total_correlation,
    group_mig,
    mig,
    modularity_explicitness,
    sap,
)
from pyro_groups.evaluation.disentanglement.conventions import (
    DISENTANGLEMENT_LIB,
    PYRO_GROUPS,
    Convention,
    logistic_regression,
    resolve_convention,
    train_test_rows,
)

SIZES = (4, 5, 6)
FAST = {"num_train": 400, "num_eval": 300, "batch_size": 32}
BOTH = ["pyro_groups", "disentanglement_lib"]


def grid(sizes=SIZES, repeats: int = 3) -> np.ndarray:
    values = np.array(list(itertools.product(*(range(n) for n in sizes))), dtype=float)
    return np.tile(values, (repeats, 1))


FACTORS = grid()
REPRESENTATIONS = {
    "identity": FACTORS,
    "constant": np.zeros_like(FACTORS),
    "duplicated": np.concatenate([FACTORS, FACTORS], axis=1),
    "permuted": FACTORS[:, [2, 0, 1]],
}


def test_resolve_convention_and_bad_names():
    assert resolve_convention("pyro_groups") is PYRO_GROUPS
    assert resolve_convention(DISENTANGLEMENT_LIB) is DISENTANGLEMENT_LIB
    with pytest.raises(ValueError, match="convention"):
        resolve_convention("locatello")
    for metric in (mig, sap, dci, modularity_explicitness):
        with pytest.raises(ValueError, match="convention"):
            metric(FACTORS, FACTORS, convention="dlib")


def test_train_test_rows_permutation_is_disjoint_independent_draws_repeat():
    rng = np.random.default_rng(0)
    train, test = train_test_rows(100, 0.2, rng, "pyro_groups")
    assert len(train) == 80 and len(test) == 20
    assert set(train).isdisjoint(test) and len(set(train) | set(test)) == 100
    train, test = train_test_rows(15000, 1 / 3, rng, "disentanglement_lib")
    assert len(train) == 10000 and len(test) == 5000  # disentanglement_lib's sizes
    # Draws with replacement: about n (1 - 1/e) distinct rows in the training part.
    assert abs(len(set(train)) - 15000 * (1 - math.exp(-10000 / 15000))) < 150
    assert not set(train).isdisjoint(test)
    with pytest.raises(ValueError):
        train_test_rows(3, 0.01, rng, "disentanglement_lib")


def test_liblinear_is_one_vs_rest():
    x = np.random.default_rng(0).normal(size=(300, 2))
    y = np.digitize(x[:, 0], [-0.5, 0.5])
    model = logistic_regression("disentanglement_lib").fit(x, y)
    assert len(model.estimators_) == 3  # one binary classifier per class
    assert_allclose(model.predict_proba(x).sum(1), 1.0)
    assert logistic_regression("pyro_groups").fit(x, y).coef_.shape == (3, 2)


@pytest.mark.parametrize("convention", BOTH)
def test_mig_and_group_mig_do_not_depend_on_the_convention(convention):
    assert_allclose(mig(REPRESENTATIONS["identity"], FACTORS, convention=convention)["mig"], 1.0)
    out = group_mig(FACTORS, FACTORS, code_blocks="uvv", factor_blocks="uvv",
                    convention=convention)
    assert_allclose(out["group_mig"], 1.0)


@pytest.mark.parametrize("convention", BOTH)
def test_sap_constant_duplicated_permuted(convention):
    # Equal codes get equal scores: the top two tie, SAP = 0 exactly; permuting codes changes
    # nothing (same classifier on the same column).
    assert sap(REPRESENTATIONS["constant"], FACTORS, convention=convention)["sap"] == 0.0
    assert sap(REPRESENTATIONS["duplicated"], FACTORS, convention=convention)["sap"] == 0.0
    identity = sap(REPRESENTATIONS["identity"], FACTORS, convention=convention)["sap"]
    assert sap(REPRESENTATIONS["permuted"], FACTORS, convention=convention)["sap"] == identity


def test_sap_identity_differs_between_conventions():
    # Threshold tree: the right code scores 1, the others about chance 1/|V_k| (balanced):
    # near mean(3/4, 4/5, 5/6) = 0.79. LinearSVC(C=0.01) cannot cut a 1-D code into more than
    # two intervals well, so even the identity scores far lower (0.34 here).
    ours = sap(REPRESENTATIONS["identity"], FACTORS)["sap"]
    theirs = sap(REPRESENTATIONS["identity"], FACTORS, convention="disentanglement_lib")["sap"]
    assert 0.7 < ours <= 1.0
    assert 0.1 < theirs < 0.5


@pytest.mark.parametrize("convention", BOTH)
def test_sap_binary_factors_by_hand(convention):
    # Two fair binary factors drawn i.i.d., codes = factors. The own code predicts perfectly
    # (for LinearSVC too: with balanced classes the penalised solution still puts the threshold
    # between 0 and 1), the other code is independent of the factor, so its (balanced) accuracy
    # is 1/2 up to the noise of 2,000 test rows: SAP = 1 - 1/2 = 1/2. (Rows drawn i.i.d.: the
    # disjoint parts of a *full grid* are negatively dependent, which pushes an independent
    # code's held-out accuracy below 1/2.)
    factors = np.random.default_rng(0).integers(0, 2, size=(10000, 2)).astype(float)
    assert_allclose(sap(factors, factors, convention=convention)["sap"], 0.5, atol=0.04)


@pytest.mark.parametrize("convention", BOTH)
@pytest.mark.parametrize("name", ["identity", "permuted"])
def test_dci_identity_and_permuted(convention, name):
    out = dci(REPRESENTATIONS[name], FACTORS, convention=convention)
    assert_allclose([out["dci_disentanglement"], out["dci_completeness"]], [1.0, 1.0], atol=1e-6)
    assert out["dci_informativeness_test"] > 0.99


@pytest.mark.parametrize("convention", BOTH)
def test_dci_duplicated_and_constant(convention):
    # Each factor's importance split between its two copies: D = 1, C = 1 - log 2 / log 6
    # (up to the estimator's random choice between identical copies).
    out = dci(REPRESENTATIONS["duplicated"], FACTORS, convention=convention)
    assert_allclose(out["dci_disentanglement"], 1.0)
    assert_allclose(out["dci_completeness"], 1 - math.log(2) / math.log(6), atol=0.05)
    out = dci(REPRESENTATIONS["constant"], FACTORS, convention=convention)
    assert out["dci_disentanglement"] == 0.0 and out["dci_completeness"] == 0.0
    assert out["dci_informativeness_test"] < 0.4


def test_dci_estimator_follows_the_convention_unless_given():
    factors = grid((3, 4), repeats=5)
    codes = factors + np.random.default_rng(1).normal(size=factors.shape)
    gbt = dci(codes, factors, estimator="gbt", convention="disentanglement_lib")
    assert dci(codes, factors, convention="disentanglement_lib") == gbt
    forest = dci(codes, factors, convention="disentanglement_lib", estimator="random_forest")
    assert forest != gbt


@pytest.mark.parametrize("name", ["identity", "duplicated", "permuted"])
def test_modularity_explicitness_informative(name):
    # All rows of a full grid: independent factors have exactly zero plug-in MI, modularity 1.
    # The training draw of disentanglement_lib is not balanced, so independent columns show a
    # small spurious MI and modularity falls just short of 1. Liblinear one-vs-rest cannot
    # rank the middle values of a 1-D code against the rest, so explicitness is below the
    # multinomial fit's (> 0.99) but far above chance 0.5.
    ours = modularity_explicitness(REPRESENTATIONS[name], FACTORS)
    assert_allclose(ours["modularity"], 1.0)
    assert ours["explicitness_test"] > 0.99
    theirs = modularity_explicitness(REPRESENTATIONS[name], FACTORS,
                                     convention="disentanglement_lib")
    assert 0.99 < theirs["modularity"] < 1.0
    assert 0.9 < theirs["explicitness_test"] < ours["explicitness_test"]


@pytest.mark.parametrize("convention", BOTH)
def test_modularity_explicitness_constant(convention):
    out = modularity_explicitness(REPRESENTATIONS["constant"], FACTORS, convention=convention)
    assert out == {"modularity": 0.0, "explicitness_train": 0.5, "explicitness_test": 0.5}


@pytest.mark.parametrize("convention", BOTH)
@pytest.mark.parametrize("name", ["identity", "duplicated", "permuted"])
def test_beta_vae_and_factor_vae_perfect(convention, name):
    codes = REPRESENTATIONS[name]
    assert beta_vae_score(codes, FACTORS, convention=convention, **FAST)["beta_vae_score"] == 1.0
    out = factor_vae_score(codes, FACTORS, convention=convention, **FAST)
    assert out["factor_vae_score"] == 1.0


def test_constant_codes_chance_or_zero():
    # BetaVAE: an uninformative feature leaves the classifier at chance 1/3 in both conventions.
    # FactorVAE: no active dimension: the majority vote is at chance (ours), or 0 (theirs).
    codes = REPRESENTATIONS["constant"]
    for convention in BOTH:
        beta = beta_vae_score(codes, FACTORS, convention=convention, **FAST)["beta_vae_score"]
        assert 0.2 < beta < 0.5
    assert 0.2 < factor_vae_score(codes, FACTORS, **FAST)["factor_vae_score"] < 0.5
    theirs = factor_vae_score(codes, FACTORS, convention="disentanglement_lib", **FAST)
    assert theirs == {"factor_vae_score": 0.0, "factor_vae_train_accuracy": 0.0,
                      "factor_vae_num_active_dims": 0.0}


def test_beta_vae_raw_features_depend_on_scale_only_under_disentanglement_lib():
    # Standardised features make the score invariant to rescaling the codes; liblinear on raw
    # features, with its penalty, is not.
    codes = FACTORS + np.random.default_rng(0).normal(scale=2.0, size=FACTORS.shape)
    scores = {}
    for convention in BOTH:
        scores[convention] = [
            beta_vae_score(s * codes, FACTORS, rng=3, convention=convention, **FAST)[
                "beta_vae_score"
            ]
            for s in (1.0, 1e-3)
        ]
    assert scores["pyro_groups"][0] == scores["pyro_groups"][1]
    assert scores["disentanglement_lib"][0] != scores["disentanglement_lib"][1]


def test_a_custom_convention_mixes_choices():
    # disentanglement_lib's independent draws with our threshold tree: the identity's SAP is in
    # the tree's range again (see test_sap_identity_differs_between_conventions).
    custom = Convention(**{**DISENTANGLEMENT_LIB.__dict__, "name": "custom",
                           "sap_classifier": "threshold_tree"})
    out = sap(REPRESENTATIONS["identity"], FACTORS, convention=custom)["sap"]
    assert 0.7 < out <= 1.0


@pytest.mark.parametrize("convention", BOTH)
def test_downstream_identity_constant_and_efficiency(convention):
    # Rows drawn i.i.d. from the 4 x 5 x 6 grid. Identity codes: every factor is read off one
    # coordinate, gradient boosting reaches accuracy 1 from 100 rows (efficiency 1). A constant
    # code: every classifier predicts one class, about 1/|V_k| accuracy at any size.
    rng = np.random.default_rng(0)
    factors = np.stack([rng.integers(0, n, 1400) for n in SIZES], 1).astype(float)
    out = downstream_accuracy(factors, factors, predictor="gbt", num_train=(100, 400),
                              num_test=1000, convention=convention)
    assert out["gbt_100_test"] > 0.97 and out["gbt_400_test"] > 0.99
    assert_allclose(out["gbt_efficiency"], out["gbt_100_test"] / out["gbt_400_test"])
    chance = np.mean([1 / n for n in SIZES])
    out = downstream_accuracy(np.zeros_like(factors), factors, num_train=(100, 400),
                              num_test=1000, convention=convention)
    assert_allclose([out["logistic_100_test"], out["logistic_400_test"]], chance, atol=0.06)


def test_downstream_logistic_reads_a_noisy_identity():
    # Codes = factors + N(0, 0.5^2): a linear read-out, better from 400 rows than from 100.
    rng = np.random.default_rng(0)
    factors = np.stack([rng.integers(0, n, 1400) for n in SIZES], 1).astype(float)
    codes = factors + 0.5 * rng.normal(size=factors.shape)
    out = downstream_accuracy(codes, factors, num_train=(100, 400), num_test=1000)
    assert 0.6 < out["logistic_100_test"] < out["logistic_400_test"] < 0.9
    assert out["logistic_efficiency"] < 1.0


def test_downstream_bad_arguments():
    with pytest.raises(ValueError, match="predictor"):
        downstream_accuracy(FACTORS, FACTORS, predictor="svm")
    with pytest.raises(ValueError, match="disjoint"):
        downstream_accuracy(FACTORS, FACTORS, num_train=(100, 300), num_test=100)


def test_gaussian_total_correlation_known_answers():
    # Bivariate normal with correlation rho: TC = I(z1; z2) = -1/2 log(1 - rho^2).
    rng = np.random.default_rng(0)
    rho = 0.6
    z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=200_000)
    assert_allclose(gaussian_total_correlation(z), -0.5 * math.log(1 - rho**2), atol=5e-3)
    assert gaussian_total_correlation(rng.normal(size=(200_000, 4))) < 1e-4
    # Scale-free, a constant column is left out, a duplicated one is infinitely correlated.
    assert_allclose(gaussian_total_correlation(z * [3.0, 1e-3]), gaussian_total_correlation(z))
    assert_allclose(gaussian_total_correlation(np.c_[z, np.ones(len(z))]),
                    gaussian_total_correlation(z))
    assert gaussian_total_correlation(np.c_[z[:, :1], z[:, :1]]) == math.inf
    assert gaussian_total_correlation(z[:, :1]) == 0.0
