"""Property-based tests (Hypothesis) of the disentanglement metrics: bounds and exact invariances
on random inputs, and one shared input check that every metric applies."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pyro_groups.evaluation.disentanglement import (
    beta_vae_score,
    dci,
    dci_from_importance,
    factor_vae_score,
    group_mig,
    mig,
    modularity_explicitness,
    modularity_from_mi,
    sap,
)
from pyro_groups.validation import ArgumentError

FAST = dict(num_train=40, num_eval=20, batch_size=4)
METRICS = {
    "beta_vae": lambda c, f: beta_vae_score(c, f, **FAST),
    "factor_vae": lambda c, f: factor_vae_score(c, f, **FAST),
    "mig": mig,
    "group_mig": lambda c, f: group_mig(c, f, code_blocks=["u"] * c.shape[1],
                                        factor_blocks=["u"] * f.shape[1]),
    "dci": lambda c, f: dci(c, f, estimator="lasso"),
    "sap": sap,
    "modularity": modularity_explicitness,
}


@st.composite
def codes_and_factors(draw, min_rows=8):
    n = draw(st.integers(min_rows, 40))
    d, k = draw(st.integers(1, 4)), draw(st.integers(2, 3))
    codes = draw(arrays(np.float64, (n, d), elements=st.floats(-5, 5, width=32)))
    factors = draw(arrays(np.int64, (n, k), elements=st.integers(0, 3)))
    return codes, factors


@given(codes_and_factors(), st.randoms(use_true_random=False))
def test_mig_is_bounded_and_invariant_to_code_and_row_order(case, rnd):
    codes, factors = case
    out = mig(codes, factors)
    values = [v for v in out.values() if not np.isnan(v)]
    assert all(-1e-12 <= v <= 1 + 1e-12 for v in values)
    cols = list(range(codes.shape[1]))
    rnd.shuffle(cols)
    rows = list(range(codes.shape[0]))
    rnd.shuffle(rows)
    again = mig(codes[rows][:, cols], factors[rows])
    assert again.keys() == out.keys()
    for key in out:
        assert np.isclose(again[key], out[key], equal_nan=True, rtol=0, atol=1e-12)


@given(arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 5)),
              elements=st.floats(0, 10, width=32)))
def test_dci_and_modularity_from_matrices_are_in_unit_interval(matrix):
    d = dci_from_importance(matrix)
    assert 0 <= d["dci_disentanglement"] <= 1 + 1e-12
    assert 0 <= d["dci_completeness"] <= 1 + 1e-12
    # permuting codes and factors permutes the matrix: same scores
    perm = dci_from_importance(matrix[::-1, ::-1])
    assert np.allclose(list(perm.values()), list(d.values()), atol=1e-12)
    assert 0 <= modularity_from_mi(matrix)["modularity"] <= 1 + 1e-12


@given(
    codes_and_factors(),
    st.sampled_from(sorted(METRICS)),
    st.sampled_from([np.nan, np.inf, -np.inf]),
    st.data(),
)
def test_every_metric_rejects_non_finite_codes(case, name, bad, data):
    codes, factors = case
    i = data.draw(st.integers(0, codes.shape[0] - 1))
    j = data.draw(st.integers(0, codes.shape[1] - 1))
    codes = codes.copy()
    codes[i, j] = bad
    with pytest.raises(ArgumentError, match=rf"codes has 1 non-finite .* index \({i}, {j}\)"):
        METRICS[name](codes, factors)


@given(codes_and_factors(), st.sampled_from(sorted(METRICS)), st.integers(1, 5))
def test_every_metric_rejects_mismatched_rows(case, name, drop):
    codes, factors = case
    with pytest.raises(ArgumentError, match="same number of rows"):
        METRICS[name](codes, factors[drop:])


@pytest.mark.parametrize("name", sorted(METRICS))
@pytest.mark.parametrize(
    "codes, factors, match",
    [
        (np.zeros((0, 2)), np.zeros((0, 2), int), "empty"),
        (np.zeros((6, 2, 2)), np.zeros((6, 2), int), "codes must be 1-D or 2-D"),
        (np.zeros((6, 2)), np.full((6, 2), np.nan), "factors has 12 non-finite"),
        (np.zeros((6, 0)), np.zeros((6, 2), int), "codes has no columns"),
        (np.array([["a", "b"]] * 6), np.zeros((6, 2), int), "codes must hold numbers"),
    ],
)
def test_every_metric_shares_the_input_check(name, codes, factors, match):
    with pytest.raises(ArgumentError, match=match):
        METRICS[name](codes, factors)
