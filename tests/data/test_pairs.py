"""Pair sampling: pairs share their group, the two members differ, padding never takes part."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pyro_groups.data import GroupedData
from pyro_groups.data.factors import pairs_sharing
from pyro_groups.data.pairs import pair_indices, pairs_from_factors, sample_pairs
from pyro_groups.data.sprites import Sprites


def test_pair_indices_share_labels_and_differ():
    labels = np.array([3, 1, 3, 7, 1, 3, 9, 3])  # 9 and 7 occur once: never in a pair
    idx = pair_indices(labels, 2000, rng=0)
    assert idx.shape == (2000, 2) and idx.dtype == torch.long
    a, b = idx[:, 0].numpy(), idx[:, 1].numpy()
    assert (labels[a] == labels[b]).all()
    assert (a != b).all()
    assert not np.isin(idx.numpy(), [3, 6]).any()
    torch.testing.assert_close(pair_indices(labels, 2000, rng=0), idx, rtol=0, atol=0)


@pytest.mark.parametrize("weight, expected", [
    ("pairs", {3: 12 / 14, 1: 2 / 14}),         # K(K - 1): 4 * 3 and 2 * 1
    ("groups", {3: 0.5, 1: 0.5}),
    ("observations", {3: 4 / 6, 1: 2 / 6}),
])
def test_pair_indices_group_weights(weight, expected):
    labels = np.array([3, 1, 3, 7, 1, 3, 9, 3])
    n = 20_000
    idx = pair_indices(labels, n, rng=1, weight=weight).numpy()
    freq = {lab: float((labels[idx[:, 0]] == lab).mean()) for lab in expected}
    for lab, p in expected.items():
        assert freq[lab] == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / n))
    # inside a group every ordered pair of distinct members is equally likely
    members = np.flatnonzero(labels == 3)
    pairs = [(i, j) for i in members for j in members if i != j]
    in3 = idx[labels[idx[:, 0]] == 3]
    counts = np.array([((in3[:, 0] == i) & (in3[:, 1] == j)).sum() for i, j in pairs])
    assert counts.sum() == len(in3)
    p = 1 / len(pairs)
    assert np.abs(counts / len(in3) - p).max() < 5 * np.sqrt(p * (1 - p) / len(in3))


def test_pair_indices_errors():
    with pytest.raises(ValueError, match="two observations"):
        pair_indices([1, 2, 3], 5, rng=0)
    with pytest.raises(ValueError, match="weight"):
        pair_indices([1, 1], 5, weight="uniform")


def coded_groups():
    """Ragged groups whose observations encode (group + 1, slot + 1); padded slots are zero."""
    sizes = torch.tensor([3, 1, 2, 5, 2])
    k = int(sizes.max())
    mask = torch.arange(k) < sizes[:, None]
    g_idx, k_idx = torch.meshgrid(torch.arange(5), torch.arange(k), indexing="ij")
    x = torch.stack([g_idx + 1, k_idx + 1], -1).float()
    return x, mask


def test_sample_pairs_from_grouped_data():
    x, mask = coded_groups()
    data = GroupedData(x, mask)
    pairs = sample_pairs(data, 500, rng=0)
    assert isinstance(pairs, GroupedData) and pairs.x.shape == (500, 2, 2)
    assert bool(pairs.mask.all())
    grp, slot = pairs.x[..., 0] - 1, pairs.x[..., 1] - 1
    assert (grp[:, 0] == grp[:, 1]).all()               # same group
    assert (slot[:, 0] != slot[:, 1]).all()             # two different members
    assert (grp >= 0).all() and mask[grp.long(), slot.long()].all()  # never a padded slot
    assert not (grp == 1).any()                         # a group of one gives no pair
    assert torch.equal(pairs.u_true, grp[:, 0].long())  # u_true: the group's index
    assert pairs.v_true is None


def test_sample_pairs_keeps_ground_truth():
    x, mask = coded_groups()
    u = torch.arange(5) * 10
    v = x[..., 1].long() * 100
    pairs = sample_pairs(GroupedData(x, mask, u_true=u, v_true=v), 50, rng=3)
    grp = (pairs.x[:, 0, 0] - 1).long()
    assert torch.equal(pairs.u_true, grp * 10)
    assert torch.equal(pairs.v_true, pairs.x[..., 1].long() * 100)
    with pytest.raises(ValueError):
        sample_pairs(GroupedData(x, mask), 5, labels=[0] * 5)


def test_sample_pairs_from_labels():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(30, 3, generator=gen)
    labels = torch.randint(0, 6, (30,), generator=gen)
    factors = torch.arange(30)
    pairs = sample_pairs(x, 100, labels=labels, factors=factors, rng=0)
    first, second = pairs.v_true[:, 0], pairs.v_true[:, 1]      # the observations' indices
    assert (first != second).all()
    assert torch.equal(labels[first], labels[second])
    assert torch.equal(pairs.u_true, labels[first])
    assert torch.equal(pairs.x, x[pairs.v_true])
    named = sample_pairs(x, 10, labels=np.array(["a", "b", "c"] * 10), rng=0)
    assert named.u_true is None and named.x.shape == (10, 2, 3)
    with pytest.raises(ValueError, match="labels"):
        sample_pairs(x, 10)


def test_pairs_from_factors_share_content_and_differ_elsewhere():
    sprites = Sprites(16)
    shared = ["shape", "scale"]
    pairs = pairs_from_factors(sprites, 200, shared, rng=0)
    assert pairs.x.shape == (200, 2, 1, 16, 16)
    assert pairs.u_true.shape == (200, 2) and pairs.v_true.shape == (200, 2, 3)
    v1, v2 = pairs.v_true[:, 0], pairs.v_true[:, 1]
    assert (v1 != v2).all()                              # every non-content factor differs
    # shape and scale are the first two factors
    rows = torch.cat([pairs.u_true[:, None].expand(-1, 2, -1), pairs.v_true], -1)
    assert torch.equal(pairs.x, sprites.images(rows.reshape(-1, 5)).reshape(200, 2, 1, 16, 16))
    assert not torch.equal(pairs.x[:, 0], pairs.x[:, 1])
    same = pairs_from_factors(sprites, 200, shared, rng=0)
    assert torch.equal(same.x, pairs.x)
    loose = pairs_from_factors(sprites, 200, ["pos_x"], rng=1, distinct=False)
    assert loose.u_true.shape == (200, 1)
    assert (loose.v_true[:, 0] == loose.v_true[:, 1]).any()  # independent draws may coincide
    with pytest.raises(ValueError):
        pairs_from_factors(sprites, 5, [])


def test_pairs_sharing_grouped_is_a_pair_data_set():
    pairs = pairs_sharing(Sprites(16), 20, 2, rng=0).grouped()
    assert isinstance(pairs, GroupedData) and pairs.mask.shape == (20, 2)
    f1, f2 = pairs.v_true[:, 0], pairs.v_true[:, 1]
    assert torch.equal(pairs.u_true.bool(), f1 == f2)
