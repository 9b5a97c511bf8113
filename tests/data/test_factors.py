import numpy as np
import pytest
import torch

from pyro_groups.data import GroupedData
from pyro_groups.data.digits import LabelledImages, digits
from pyro_groups.data.factors import (
    FactorPairs,
    as_rng,
    group_by_factors,
    group_sizes,
    pairs_sharing,
    poisson_sizes,
    random_groups,
)
from pyro_groups.data.sprites import Sprites


@pytest.fixture(scope="module")
def data():
    return Sprites(image_size=16)


def full_rows(u, v, shared, num_factors):
    """Rebuild factor rows [K, F] from u_true [n_shared] and v_true [K, F - n_shared]."""
    rest = [j for j in range(num_factors) if j not in shared]
    rows = torch.zeros(v.shape[0], num_factors, dtype=torch.long)
    rows[:, shared] = u.long()
    rows[:, rest] = v.long()
    return rows


def test_sample_factors_ranges_and_seeds(data):
    f = data.sample_factors(1000, 0)
    assert f.shape == (1000, 5) and f.dtype == np.int64
    assert (f.min(0) >= 0).all() and (f.max(0) < np.array(data.factor_sizes)).all()
    assert np.array_equal(f, data.sample_factors(1000, np.random.default_rng(0)))
    assert not np.array_equal(f, data.sample_factors(1000, 1))
    t1 = data.sample_factors(10, torch.Generator().manual_seed(3))
    assert np.array_equal(t1, data.sample_factors(10, torch.Generator().manual_seed(3)))
    assert isinstance(as_rng(None), np.random.Generator)


def test_group_by_factors_shares_group_factors(data):
    shared = [0, 1]  # shape, scale
    gd = group_by_factors(data, ["shape", "scale"], 6, 5, rng=0)
    assert isinstance(gd, GroupedData)
    assert gd.x.shape == (6, 5, 1, 16, 16) and gd.x.dtype == torch.float32
    assert gd.u_true.shape == (6, 2) and gd.v_true.shape == (6, 5, 3)
    assert gd.mask.all()
    for g in range(6):
        rows = full_rows(gd.u_true[g], gd.v_true[g], shared, 5)
        assert torch.equal(gd.x[g], data.images(rows))  # each observation is its factors' image
        assert len({tuple(r) for r in gd.v_true[g].tolist()}) > 1  # instance factors differ
    assert len({tuple(r) for r in gd.u_true.tolist()}) > 1  # groups differ


def test_group_by_factor_indices_equal_names(data):
    a = group_by_factors(data, ["pos_y", "shape"], 4, 3, rng=7)
    b = group_by_factors(data, [4, 0], 4, 3, rng=7)
    assert torch.equal(a.x, b.x) and torch.equal(a.u_true, b.u_true)
    assert torch.equal(a.v_true, b.v_true)
    with pytest.raises(KeyError):
        group_by_factors(data, ["colour"], 2, 2, rng=0)


def test_grouping_is_reproducible(data):
    a = group_by_factors(data, ["orientation"], 4, (1, 4), rng=11)
    b = group_by_factors(data, ["orientation"], 4, (1, 4), rng=np.random.default_rng(11))
    c = group_by_factors(data, ["orientation"], 4, (1, 4), rng=12)
    assert torch.equal(a.x, b.x) and torch.equal(a.mask, b.mask)
    assert not (torch.equal(a.u_true, c.u_true) and torch.equal(a.mask, c.mask))


def test_ragged_groups_are_padded(data):
    gd = group_by_factors(data, ["shape"], 30, (2, 5), rng=1)
    sizes = gd.mask.sum(-1)
    assert sizes.min() >= 2 and sizes.max() <= 5 and len(set(sizes.tolist())) > 1
    assert (gd.x[~gd.mask] == 0).all() and (gd.v_true[~gd.mask] == 0).all()
    assert (gd.x[gd.mask].sum((1, 2, 3)) > 0).all()
    gp = group_by_factors(data, ["shape"], 50, poisson_sizes(3.0, min_size=2), rng=1)
    assert gp.mask.sum(-1).min() >= 2


def test_group_sizes():
    assert group_sizes(3, 4).tolist() == [4, 4, 4]
    s = group_sizes(200, (3, 6), 0)
    assert s.min() == 3 and s.max() == 6
    with pytest.raises(ValueError):
        group_sizes(3, 0)
    with pytest.raises(ValueError):
        group_sizes(3, (5, 2))
    with pytest.raises(ValueError):
        poisson_sizes(2.0, min_size=0)


def test_random_groups(data):
    gd = random_groups(data, 5, 4, rng=0)
    assert gd.u_true is None and gd.v_true.shape == (5, 4, 5)
    for g in range(5):
        assert torch.equal(gd.x[g], data.images(gd.v_true[g]))
    assert torch.equal(gd.x, random_groups(data, 5, 4, rng=0).x)


@pytest.mark.parametrize("k", [0, 1, 3, 4])
def test_pairs_share_exactly_k_factors(data, k):
    p = pairs_sharing(data, 64, k, rng=k)
    assert isinstance(p, FactorPairs) and len(p) == 64
    assert (p.shared.sum(1) == k).all()
    equal = p.factors1 == p.factors2
    assert torch.equal(equal, p.shared)  # equal exactly on the shared factors
    assert torch.equal(p.x1, data.images(p.factors1)) and torch.equal(p.x2, data.images(p.factors2))
    assert len({tuple(r) for r in p.shared.int().tolist()}) > 1 or k in (0, 5)


def test_pairs_with_unknown_k_and_grouping(data):
    p = pairs_sharing(data, 100, None, rng=0)
    ks = p.shared.sum(1)
    assert ks.min() >= 1 and ks.max() <= 4 and len(set(ks.tolist())) > 1
    gd = p.grouped()
    assert gd.x.shape == (100, 2, 1, 16, 16)
    assert gd.u_true.shape == (100, 5) and gd.v_true.shape == (100, 2, 5)
    loose = pairs_sharing(data, 50, 2, rng=0, distinct=False)
    assert ((loose.factors1 == loose.factors2) | ~loose.shared).all()
    with pytest.raises(ValueError):
        pairs_sharing(data, 4, 5)


def test_digits_grouped_by_label():
    d = digits()
    assert d.num_images == 1797 and d.factor_names == ("label", "example")
    assert d.factor_sizes[0] == 10 and d.observation_shape == (1, 8, 8)
    f = d.sample_factors(500, 0)
    assert (f[:, 1] < d.counts[f[:, 0]]).all()
    x = d.images(f)
    assert x.shape == (500, 1, 8, 8) and x.min() >= 0 and x.max() <= 1 and x.max() == 1
    gd = group_by_factors(d, ["label"], 8, 4, rng=0)
    assert gd.u_true.shape == (8, 1) and gd.v_true.shape == (8, 4, 1)
    labels = torch.as_tensor(d.labels)
    for g in range(8):
        idx = d.image_index(full_rows(gd.u_true[g], gd.v_true[g], [0], 2).numpy())
        assert (labels[idx] == gd.u_true[g, 0]).all()


def test_digits_partition_uses_each_image_once():
    d = digits()
    gd = d.partition(16, rng=0)
    assert int(gd.mask.sum()) == 1797 and gd.x.shape[1] == 16
    flat = gd.x[gd.mask].flatten(1)
    every = d.images_at(np.arange(1797)).flatten(1)
    assert torch.unique(flat, dim=0).shape[0] == torch.unique(every, dim=0).shape[0]
    g = 3
    rows = full_rows(gd.u_true[g], gd.v_true[g][gd.mask[g]], [0], 2)
    assert torch.equal(gd.x[g][gd.mask[g]], d.images(rows))


def test_labelled_images_validation():
    with pytest.raises(ValueError, match="class"):
        LabelledImages(np.zeros((3, 4, 4)), np.array([0, 2, 2]))
    with pytest.raises(ValueError, match="labels"):
        LabelledImages(np.zeros((3, 4, 4)), np.array([0, 1]))
    with pytest.raises(ValueError, match="images"):
        LabelledImages(np.zeros((3, 4)), np.array([0, 1, 1]))
    imgs = np.arange(3, dtype=np.uint8)[:, None, None] * np.ones((1, 2, 2), np.uint8)
    li = LabelledImages(imgs, np.array([1, 0, 1]))
    assert li.factor_sizes == (2, 2)
    assert li.image_index([[0, 1], [1, 1], [0, 0]]).tolist() == [1, 2, 1]  # label 0's example wraps
    assert float(li.images([[1, 1]]).max()) == pytest.approx(2 / 255)
