"""Known-answer tests of the disentanglement metrics.

The reference representations are built on a full grid of three factors with 4, 5 and 6 values
(120 combinations, tiled so that train/test splits keep every value): the identity (codes =
factors), a constant, the factors each encoded twice, and the identity with permuted columns.
"""
import itertools
import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from pyro_groups.evaluation.disentanglement import (
    beta_vae_score,
    beta_vae_score_from_sampler,
    dci,
    dci_from_importance,
    discretize,
    entropy,
    factor_vae_score,
    factor_vae_score_from_sampler,
    group_mig,
    mig,
    modularity_explicitness,
    modularity_from_mi,
    mutual_info_matrix,
    sap,
)
from pyro_groups.evaluation.disentanglement.utils import (
    fix_factor_per_point,
    points_fixing_a_factor,
    rows_sharing_value,
)

SIZES = (4, 5, 6)
FAST = {"num_train": 400, "num_eval": 300, "batch_size": 32}


def grid(repeats: int = 3) -> np.ndarray:
    values = np.array(list(itertools.product(*(range(n) for n in SIZES))), dtype=float)
    return np.tile(values, (repeats, 1))


def noisy(factors: np.ndarray, scale: float = 0.4) -> np.ndarray:
    return factors + scale * np.random.default_rng(123).normal(size=factors.shape)


FACTORS = grid()
REPRESENTATIONS = {
    "identity": FACTORS,
    "constant": np.zeros_like(FACTORS),
    "duplicated": np.concatenate([FACTORS, FACTORS], axis=1),
    "permuted": FACTORS[:, [2, 0, 1]],
}


def sample_grid_factors(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.stack([rng.integers(0, size, n) for size in SIZES], axis=1).astype(float)


def test_discretize_matches_numpy_histogram():
    codes = np.random.default_rng(0).normal(size=(500, 3))
    expected = np.stack(
        [np.digitize(c, np.histogram(c, 20)[1][:-1]) - 1 for c in codes.T], axis=1
    )
    assert_array_equal(discretize(codes, 20), expected)
    assert_array_equal(discretize(np.full((5, 1), 3.0)), np.zeros((5, 1)))


def test_entropy_and_mutual_information_by_hand():
    # a and b are independent fair bits: I = 0; a with itself: I = H(a) = log 2; a constant
    # column carries no information and has zero entropy.
    a = np.array([0, 0, 1, 1])
    b = np.array([0, 1, 0, 1])
    const = np.zeros(4, dtype=int)
    assert_allclose(entropy(np.stack([a, const], 1)), [math.log(2), 0.0])
    mi = mutual_info_matrix(np.stack([a, b, const], 1), np.stack([a, b], 1))
    assert_allclose(mi, [[math.log(2), 0.0], [0.0, math.log(2)], [0.0, 0.0]], atol=1e-12)
    assert mi[2, 0] == 0.0 and mi[2, 1] == 0.0


def test_rows_sharing_value_share_the_value_and_skip_the_anchor():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    anchors = rng.integers(0, 200, 50)
    rows = rows_sharing_value(labels, anchors, 7, rng, exclude_anchor=True)
    assert rows.shape == (50, 7)
    assert (labels[rows] == labels[anchors][:, None]).all()
    assert (rows != anchors[:, None]).all()


@pytest.mark.parametrize("num_anchors, num_partners", [(5, 1), (1, 6)])
def test_points_fixing_a_factor_hand_each_factor_its_points(num_anchors, num_partners):
    labels = np.random.default_rng(1).integers(0, 3, size=(120, 4))
    seen = []

    def features(anchors: np.ndarray, partners: np.ndarray) -> np.ndarray:
        assert anchors.shape == (len(anchors), num_anchors)
        assert partners.shape == (len(anchors), num_anchors, num_partners)
        shared = labels[anchors][:, :, None, :] == labels[partners]
        k = np.flatnonzero(shared.all(axis=(0, 1, 2)))  # the fixed factor (among others)
        seen.append((len(anchors), k))
        return np.full(len(anchors), 100 + k[0] if k.size == 1 else -1)

    out = np.empty(40, dtype=np.int64)
    fixed = points_fixing_a_factor(
        labels, out, features, np.random.default_rng(0),
        num_anchors=num_anchors, num_partners=num_partners,
    )
    assert fixed.shape == (40,) and sum(n for n, _ in seen) == 40
    assert all(k.size >= 1 for _, k in seen)
    assert_array_equal(out[out >= 0], 100 + fixed[out >= 0])
    again = np.empty(40, dtype=np.int64)
    same = points_fixing_a_factor(
        labels, again, features, np.random.default_rng(0),
        num_anchors=num_anchors, num_partners=num_partners,
    )
    assert_array_equal(same, fixed)
    assert_array_equal(again, out)


def test_fix_factor_per_point_copies_the_fixed_column_only():
    rng = np.random.default_rng(2)
    first = rng.integers(0, 10, size=(12, 3))
    pairs = rng.integers(10, 20, size=(12, 3))
    before = pairs.copy()
    fixed = fix_factor_per_point(pairs, first, 4, rng)  # 3 points of 4 rows, row by row
    column = np.repeat(fixed, 4)
    rows = np.arange(12)
    assert_array_equal(pairs[rows, column], first[rows, column])
    untouched = np.ones_like(pairs, dtype=bool)
    untouched[rows, column] = False
    assert_array_equal(pairs[untouched], before[untouched])
    batch = rng.integers(0, 10, size=(12, 3))
    fixed = fix_factor_per_point(batch, batch[::4], 4, rng)  # one value per point
    for m, k in enumerate(fixed):
        assert (batch[4 * m : 4 * m + 4, k] == batch[4 * m, k]).all()


def test_mig_known_representations():
    assert_allclose(mig(REPRESENTATIONS["identity"], FACTORS)["mig"], 1.0)
    assert mig(REPRESENTATIONS["constant"], FACTORS)["mig"] == 0.0
    # Each factor has two codes with I = H(v_k): the gap is exactly zero.
    assert_allclose(mig(REPRESENTATIONS["duplicated"], FACTORS)["mig"], 0.0, atol=1e-12)
    assert mig(REPRESENTATIONS["permuted"], FACTORS) == mig(REPRESENTATIONS["identity"], FACTORS)


def test_mig_by_hand_with_a_coarse_copy():
    # z0 = v (4 values), z1 = v // 2 (2 values): I(z0; v) = log 4, I(z1; v) = H(z1) = log 2,
    # so MIG = (log 4 - log 2) / log 4 = 1/2.
    v = np.tile(np.arange(4.0), 10)
    codes = np.stack([v, v // 2], axis=1)
    assert_allclose(mig(codes, v)["mig"], 0.5)


def test_mig_on_a_random_sample_is_close_to_one():
    factors = sample_grid_factors(3000, np.random.default_rng(0))
    result = mig(factors, factors)
    assert 0.97 < result["mig"] <= 1.0


def test_group_mig_ignores_duplicates_inside_a_block_and_is_negative_when_swapped():
    # Codes [v0, v0 | v1, v2]: the u block holds factor 0 twice, the v block factors 1 and 2.
    codes = FACTORS[:, [0, 0, 1, 2]]
    blocks = ["u", "u", "v", "v"]
    right = group_mig(codes, FACTORS, code_blocks=blocks, factor_blocks=["u", "v", "v"])
    assert_allclose([right["group_mig"], right["group_mig_u"], right["group_mig_v"]], 1.0)
    assert_allclose(mig(codes, FACTORS)["mig_factor_0"], 0.0, atol=1e-12)
    swapped = group_mig(codes, FACTORS, code_blocks=blocks, factor_blocks=["v", "u", "u"])
    assert_allclose(swapped["group_mig"], -1.0)


def test_group_mig_by_hand_with_a_leak_into_the_other_block():
    # u = [v0], v = [v0 // 2, v1] with v0, v1 uniform on 4 values. Factor 0 (block u):
    # (log 4 - log 2) / log 4 = 1/2; factor 1 (block v): (log 4 - 0) / log 4 = 1; mean 3/4.
    factors = np.array(list(itertools.product(range(4), range(4))), dtype=float)
    codes = np.stack([factors[:, 0], factors[:, 0] // 2, factors[:, 1]], axis=1)
    out = group_mig(codes, factors, code_blocks=["u", "v", "v"], factor_blocks=["u", "v"])
    assert_allclose([out["group_mig"], out["group_mig_u"], out["group_mig_v"]], [0.75, 0.5, 1.0])
    with pytest.raises(ValueError):
        group_mig(codes, factors, code_blocks=["u", "v"], factor_blocks=["u", "v"])


def test_dci_from_importance_by_hand():
    assert_allclose(list(dci_from_importance(np.eye(3)).values()), [1.0, 1.0])
    assert_allclose(list(dci_from_importance(np.ones((3, 3))).values()), [0.0, 0.0], atol=1e-12)
    assert list(dci_from_importance(np.zeros((2, 2))).values()) == [0.0, 0.0]
    # R = [[.5, .5], [0, 1]]. Code 0 splits evenly (D_0 = 0), code 1 is pure (D_1 = 1), both
    # carry weight 1/2: D = 1/2. Factor 0 lives in code 0 only (C_0 = 1, weight .5/2 = 1/4);
    # factor 1 is split 1/3 : 2/3, C_1 = 1 - H_2(1/3, 2/3) = 0.0817042, weight 3/4:
    # C = 1/4 + 3/4 * 0.0817042 = 0.3112781.
    out = dci_from_importance(np.array([[0.5, 0.5], [0.0, 1.0]]))
    assert_allclose(out["dci_disentanglement"], 0.5)
    assert_allclose(out["dci_completeness"], 0.3112781, atol=1e-7)
    # Each of 3 factors split evenly over 2 of 6 codes: D = 1, C = 1 - log 2 / log 6 = 0.6131471.
    out = dci_from_importance(-0.5 * np.concatenate([np.eye(3), np.eye(3)]))
    assert_allclose(out["dci_disentanglement"], 1.0)
    assert_allclose(out["dci_completeness"], 1 - math.log(2) / math.log(6))


@pytest.mark.parametrize(
    "estimator, name",
    [
        ("random_forest", "identity"),
        ("random_forest", "permuted"),
        ("lasso", "identity"),
        ("lasso", "permuted"),
        ("gbt", "identity"),
    ],
)
def test_dci_identity_and_permuted(estimator, name):
    out = dci(REPRESENTATIONS[name], FACTORS, estimator=estimator)
    assert_allclose([out["dci_disentanglement"], out["dci_completeness"]], [1.0, 1.0], atol=1e-6)
    assert out["dci_informativeness_test"] > 0.99


def test_dci_duplicated_and_constant():
    # Forests pick between two identical codes at random: about the hand value 1 - log2/log6.
    out = dci(REPRESENTATIONS["duplicated"], FACTORS)
    assert_allclose(out["dci_disentanglement"], 1.0)
    assert_allclose(out["dci_completeness"], 1 - math.log(2) / math.log(6), atol=0.05)
    out = dci(REPRESENTATIONS["constant"], FACTORS)
    assert out["dci_disentanglement"] == 0.0 and out["dci_completeness"] == 0.0
    assert out["dci_informativeness_test"] < 0.4


def test_modularity_from_mi_by_hand():
    assert modularity_from_mi(np.array([[1.0, 0, 0], [0, 2.0, 0]]))["modularity"] == 1.0
    # One code, theta = (2, 1, 1): delta = (1 + 1) / ((3 - 1) * 4) = 1/4, modularity 3/4.
    assert_allclose(modularity_from_mi(np.array([[2.0, 1.0, 1.0]]))["modularity"], 0.75)
    # Codes (1,0,0) -> 1, (.5,.5,0) -> 1 - .25 / (2 * .25) = 1/2, (0,0,0) -> 0: mean 1/2.
    mi = np.array([[1.0, 0, 0], [0.5, 0.5, 0], [0, 0, 0]])
    assert_allclose(modularity_from_mi(mi)["modularity"], 0.5)


def test_modularity_explicitness_known_representations():
    for name in ("identity", "duplicated", "permuted"):
        out = modularity_explicitness(REPRESENTATIONS[name], FACTORS)
        assert_allclose(out["modularity"], 1.0)
        assert out["explicitness_test"] > 0.99
    out = modularity_explicitness(REPRESENTATIONS["constant"], FACTORS)
    assert out == {"modularity": 0.0, "explicitness_train": 0.5, "explicitness_test": 0.5}


def test_sap_known_representations():
    identity = sap(REPRESENTATIONS["identity"], FACTORS)["sap"]
    # Top code: accuracy 1; runner-up about chance 1/|V_k|: SAP near mean(3/4, 4/5, 5/6) = 0.79.
    assert 0.7 < identity <= 1.0
    assert sap(REPRESENTATIONS["permuted"], FACTORS)["sap"] == identity
    assert sap(REPRESENTATIONS["constant"], FACTORS)["sap"] == 0.0
    assert_allclose(sap(REPRESENTATIONS["duplicated"], FACTORS)["sap"], 0.0)
    # Continuous: on a full grid the factors are uncorrelated, so R^2 is 1 or 0.
    assert_allclose(sap(REPRESENTATIONS["identity"], FACTORS, continuous_factors=True)["sap"], 1)


def test_sap_continuous_by_hand():
    # Codes (v0, v0 + v1), v0 and v1 on 4 values each (equal variances): R^2(z1, v0) =
    # R^2(z1, v1) = 1/2. Factor 0: 1 - 1/2; factor 1: 1/2 - 0. SAP = 1/2.
    factors = np.array(list(itertools.product(range(4), range(4))), dtype=float)
    codes = np.stack([factors[:, 0], factors.sum(1)], axis=1)
    assert_allclose(sap(codes, factors, continuous_factors=True)["sap"], 0.5)


@pytest.mark.parametrize("name", ["identity", "duplicated", "permuted"])
def test_beta_vae_and_factor_vae_perfect(name):
    assert beta_vae_score(REPRESENTATIONS[name], FACTORS, **FAST)["beta_vae_score"] == 1.0
    assert factor_vae_score(REPRESENTATIONS[name], FACTORS, **FAST)["factor_vae_score"] == 1.0


def test_beta_vae_and_factor_vae_at_chance_for_a_constant():
    beta = beta_vae_score(REPRESENTATIONS["constant"], FACTORS, **FAST)["beta_vae_score"]
    factor = factor_vae_score(REPRESENTATIONS["constant"], FACTORS, **FAST)
    assert 0.2 < beta < 0.5
    assert 0.2 < factor["factor_vae_score"] < 0.5
    assert factor["factor_vae_num_active_dims"] == 0


def test_factor_vae_catches_the_missing_factor_that_beta_vae_misses():
    # Codes (v0, v1) ignore v2 (Kim & Mnih's critique). BetaVAE: fixing v2 leaves no zero
    # difference, which a linear classifier still separates: 1. FactorVAE: points that fix v2
    # vote for dimension 0 or 1, which the majority vote assigns to factors 0 and 1: 2/3.
    codes = FACTORS[:, :2]
    assert beta_vae_score(codes, FACTORS, **FAST)["beta_vae_score"] == 1.0
    score = factor_vae_score(codes, FACTORS, **FAST)["factor_vae_score"]
    assert_allclose(score, 2 / 3, atol=0.06)


def test_factor_vae_prunes_collapsed_dimensions():
    tiny = 1e-3 * np.random.default_rng(0).normal(size=(FACTORS.shape[0], 1))
    out = factor_vae_score(np.concatenate([FACTORS, tiny], axis=1), FACTORS, **FAST)
    assert out["factor_vae_num_active_dims"] == 3
    assert out["factor_vae_score"] == 1.0


def test_sampler_variants():
    def represent(factors: np.ndarray) -> np.ndarray:
        return factors[:, [1, 2, 0]]

    def constant(factors: np.ndarray) -> torch.Tensor:
        return torch.zeros(factors.shape[0], 3)

    fast = dict(FAST, chunk_size=1000)
    assert beta_vae_score_from_sampler(represent, sample_grid_factors, **fast)[
        "beta_vae_score"
    ] == 1.0
    out = factor_vae_score_from_sampler(represent, sample_grid_factors, **fast)
    assert out["factor_vae_score"] == 1.0 and out["factor_vae_num_active_dims"] == 3
    chance = beta_vae_score_from_sampler(constant, sample_grid_factors, **fast)["beta_vae_score"]
    assert 0.2 < chance < 0.5


SEEDED = [
    lambda c, f, rng: beta_vae_score(c, f, rng=rng, **FAST),
    lambda c, f, rng: factor_vae_score(c, f, rng=rng, **FAST),
    lambda c, f, rng: dci(c, f, rng=rng),
    lambda c, f, rng: sap(c, f, rng=rng),
    lambda c, f, rng: modularity_explicitness(c, f, rng=rng),
]


@pytest.mark.parametrize("metric", SEEDED, ids=["beta_vae", "factor_vae", "dci", "sap", "mod"])
def test_same_seed_same_numbers(metric):
    codes = noisy(FACTORS, 1.5)
    first = metric(codes, FACTORS, 7)
    assert metric(codes, FACTORS, 7) == first
    assert metric(codes, FACTORS, np.random.default_rng(7)) == first
    assert metric(codes, FACTORS, 8) != first


def test_torch_tensors_are_accepted_and_rows_must_match():
    codes = noisy(FACTORS)
    expected = mig(codes, FACTORS)
    assert mig(torch.as_tensor(codes), torch.as_tensor(FACTORS)) == expected
    with pytest.raises(ValueError):
        mig(codes[:-1], FACTORS)
