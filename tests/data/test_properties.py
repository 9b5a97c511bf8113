"""Property-based tests (Hypothesis) of the data constructors: whatever valid input they get,
padding, masks, conversion and ground truth line up; invalid counts are rejected by type."""
import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch.testing import assert_close

from pyro_groups.data import GroupedData, exam_scores, exam_scores_mean, group_by_factors
from pyro_groups.data.factors import FactorDataset
from pyro_groups.data.pairs import pair_indices
from pyro_groups.validation import ArgumentError, ArgumentTypeError

EVENTS = st.sampled_from([(), (1,), (3,), (2, 2)])
DTYPES = st.sampled_from([np.float64, np.float32, np.int64, np.int32, np.bool_])


@st.composite
def ragged_groups(draw):
    event, dtype = draw(EVENTS), draw(DTYPES)
    sizes = draw(st.lists(st.integers(1, 5), min_size=1, max_size=6))
    if dtype in (np.float64, np.float32):
        elements = st.floats(-1e3, 1e3, width=32)
    elif dtype is np.bool_:
        elements = st.booleans()
    else:
        elements = st.integers(-1000, 1000)
    groups = [draw(arrays(dtype, (k, *event), elements=elements)) for k in sizes]
    return groups, event


@given(ragged_groups())
def test_from_groups_converts_pads_and_masks(case):
    groups, event = case
    data = GroupedData.from_groups(groups)
    sizes = [len(g) for g in groups]
    assert len(data) == len(groups)
    assert data.x.dtype == torch.get_default_dtype()  # numpy floats, ints, bools alike
    assert tuple(data.event_shape) == (event or (1,))  # scalar observations get event [1]
    assert data.mask.sum(-1).tolist() == sizes
    assert data.mask.shape[1] == max(sizes)
    for i, g in enumerate(groups):
        k = len(g)
        assert data.mask[i, :k].all() and not data.mask[i, k:].any()  # valid slots first
        expected = torch.as_tensor(np.asarray(g, dtype=np.float64)).reshape(k, *data.event_shape)
        assert_close(data.x[i, :k].double(), expected, rtol=1e-6, atol=1e-6)
        assert (data.x[i, k:] == 0).all()
        batch = data[[i]]  # indexing trims to the group and keeps the same values
        assert_close(batch.x[0][batch.mask[0]], data.x[i, :k])


@given(
    num_groups=st.integers(1, 40),
    seed=st.integers(0, 2**31 - 1),
    mean_size=st.floats(0.0, 6.0),
    min_size=st.integers(1, 4),
)
def test_exam_scores_without_noise_is_its_formula(num_groups, seed, mean_size, min_size):
    data = exam_scores(num_groups, seed=seed, noise=0.0, mean_size=mean_size, min_size=min_size)
    m = data.mask
    assert len(data) == num_groups and data.u_true.shape == (num_groups, 2)
    assert (m.sum(-1) >= min_size).all()
    # valid slots come first in every group
    assert (m.long().diff(dim=-1) <= 0).all()
    expected = exam_scores_mean(data.u_true.unsqueeze(-2), data.v_true)
    assert_close(data.x[m], expected[m])
    assert (data.v_true[~m] == 0).all() and (data.x[~m] == 0).all()


@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()))
def test_exam_scores_rejects_non_integer_counts(n):
    with pytest.raises(ArgumentTypeError, match="num_groups must be an integer"):
        exam_scores(n)


@given(st.floats(max_value=-1e-12) | st.just(float("nan")) | st.just(float("inf")))
def test_exam_scores_rejects_bad_noise(noise):
    with pytest.raises(ArgumentError, match="noise"):
        exam_scores(4, noise=noise)


@given(
    n=st.integers(2, 30),
    holdout=st.integers(1, 29) | st.floats(0.01, 0.99),
    seed=st.integers(0, 99),
)
def test_split_partitions_the_groups(n, holdout, seed):
    data = GroupedData(torch.arange(n * 2.0).reshape(n, 2, 1), torch.ones(n, 2, dtype=torch.bool),
                       u_true=torch.arange(n))
    n_out = holdout if isinstance(holdout, int) else int(round(holdout * n))
    if not 0 < n_out < n:
        with pytest.raises(ArgumentError, match="holdout"):
            data.split(holdout, seed=seed)
        return
    train, hold = data.split(holdout, seed=seed)
    assert len(hold) == n_out and len(train) == n - n_out
    assert sorted(train.u_true.tolist() + hold.u_true.tolist()) == list(range(n))
    for part in (train, hold):  # rows travel with their ground truth
        assert_close(part.x[:, 0, 0], 2.0 * part.u_true)


@given(st.booleans())
def test_split_rejects_bools(flag):
    with pytest.raises(ArgumentTypeError, match="bool"):
        exam_scores(8).split(flag)


@given(n=st.integers(1, 20), batch_size=st.integers(1, 25), seed=st.integers(0, 99))
def test_batches_visit_every_group_once(n, batch_size, seed):
    data = GroupedData(torch.randn(n, 3, 1), torch.ones(n, 3, dtype=torch.bool))
    gen = torch.Generator().manual_seed(seed)
    seen = torch.cat([b.index for b in data.batches(batch_size, generator=gen)])
    assert sorted(seen.tolist()) == list(range(n))


class Toy(FactorDataset):
    """A tiny factor data set whose 1x1x3 'image' is its factor row (a known answer)."""

    factor_names = ("a", "b", "c")
    factor_sizes = (2, 3, 4)
    observation_shape = (3, 1, 1)

    def images(self, factors):
        f = torch.as_tensor(self.check_factors(factors), dtype=torch.float32)
        return f.view(-1, 3, 1, 1)


@given(
    shared=st.lists(st.sampled_from(["a", "b", "c"]), max_size=2, unique=True),
    num_groups=st.integers(1, 12),
    size=st.integers(1, 5) | st.tuples(st.integers(1, 3), st.integers(3, 6)),
    seed=st.integers(0, 999),
)
def test_group_by_factors_shares_exactly_the_named_factors(shared, num_groups, size, seed):
    data = group_by_factors(Toy(), shared, num_groups, size, rng=seed)
    m = data.mask
    rows = data.x[..., 0, 0]  # [G, K, 3]: the factor rows themselves
    cols = sorted(Toy.factor_names.index(s) for s in shared)
    rest = [j for j in range(3) if j not in cols]
    assert data.u_true.shape == (num_groups, len(cols))
    assert_close(rows[..., rest][m], data.v_true[m].float())
    for i in range(num_groups):
        assert_close(rows[i][m[i]][:, cols], data.u_true[i].float().expand(int(m[i].sum()), -1))


@given(
    labels=st.lists(st.integers(0, 4), min_size=2, max_size=30),
    num_pairs=st.integers(1, 20),
    seed=st.integers(0, 99),
)
def test_pair_indices_pair_different_members_of_one_group(labels, num_pairs, seed):
    lab = np.asarray(labels)
    assume(np.bincount(lab).max() >= 2)
    idx = pair_indices(lab, num_pairs, rng=seed).numpy()
    assert idx.shape == (num_pairs, 2)
    assert (idx[:, 0] != idx[:, 1]).all()
    assert (lab[idx[:, 0]] == lab[idx[:, 1]]).all()
