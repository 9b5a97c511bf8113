"""GroupBatch, input checks, padding and GroupedData (construction, indexing, batches, splits)."""
import pytest
import torch
from torch.testing import assert_close

from pyro_groups.data import GroupBatch, GroupDataError, GroupedData, check_group_inputs, pad_groups
from pyro_groups.data.batch import zero_padding


def ragged(sizes=(3, 1, 2), event=(2,)):
    """Groups with known values: group i, slot k holds 10 * i + k + 1 (never zero)."""
    return [
        (10.0 * i + torch.arange(1, k + 1, dtype=torch.float32))
        .reshape(k, *[1] * len(event))
        .expand(k, *event)
        for i, k in enumerate(sizes)
    ]


# ---------------------------------------------------------------------------- pad_groups


def test_pad_groups_known_answer():
    x, mask = pad_groups(ragged())
    assert x.shape == (3, 3, 2) and mask.dtype == torch.bool
    assert mask.tolist() == [[True, True, True], [True, False, False], [True, True, False]]
    assert_close(x[:, :, 0], torch.tensor([[1.0, 2.0, 3.0], [11.0, 0.0, 0.0], [21.0, 22.0, 0.0]]))
    assert_close(x[..., 0], x[..., 1])


def test_pad_groups_numpy_and_images():
    import numpy as np

    x, mask = pad_groups([np.ones((2, 1, 4, 4)), np.ones((4, 1, 4, 4))])
    assert x.shape == (2, 4, 1, 4, 4)
    assert mask.sum().item() == 6
    assert x[0, 2:].abs().sum() == 0


@pytest.mark.parametrize(
    "groups, match",
    [
        ([], "no groups"),
        ([torch.ones(2, 3), torch.ones(0, 3)], "group 1 is empty"),
        ([torch.ones(2, 3), torch.ones(2, 4)], "group 1 has shape"),
    ],
)
def test_pad_groups_errors(groups, match):
    with pytest.raises(GroupDataError, match=match):
        pad_groups(groups)


def test_zero_padding():
    x = torch.full((2, 3, 2), 7.0)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    out = zero_padding(x, mask)
    assert_close(out[..., 0], torch.tensor([[7.0, 0.0, 7.0], [0.0, 0.0, 7.0]]))
    x[0, 1] = float("nan")
    assert torch.isfinite(zero_padding(x, mask)).all()


# ---------------------------------------------------------------------------- check_group_inputs


def _ok():
    return torch.randn(3, 4, 2), torch.ones(3, 4, dtype=torch.bool)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda x, m: (x, m.to(torch.uint8)), "bool"),
        (lambda x, m: (x, m.float()), "bool"),
        (lambda x, m: (x, m.tolist()), "bool"),
        (lambda x, m: (x, m[0]), r"shape \[G, K\]"),
        (lambda x, m: (x, m[..., None]), r"shape \[G, K\]"),
        (lambda x, m: (x[:0], m[:0]), "empty batch"),
        (lambda x, m: (x[:, :3], m), "matching mask"),
        (lambda x, m: (x[0], m), "matching mask"),
        (lambda x, m: (x[:2], m), "matching mask"),
        (lambda x, m: (x.flatten(1), m), "matching mask"),
        (lambda x, m: (x, m.index_fill(0, torch.tensor([1]), False)), "empty group"),
        (lambda x, m: (x.index_fill(1, torch.tensor([2]), float("nan")), m), "non-finite"),
        (lambda x, m: (x.index_fill(0, torch.tensor([0]), float("inf")), m), "non-finite"),
    ],
)
def test_check_group_inputs_errors(make, match):
    x, mask = make(*_ok())
    with pytest.raises(GroupDataError, match=match):
        check_group_inputs(x, mask)


def test_check_group_inputs_accepts_and_skips_value_checks():
    x, mask = _ok()
    check_group_inputs(x, mask)
    check_group_inputs(None, mask)
    # NaN in a padded slot is fine: only observed entries are read
    mask[0, -1] = False
    x[0, -1] = float("nan")
    check_group_inputs(x, mask)
    # the value checks are skipped with values=False, the shape checks are not
    x[1, 0] = float("nan")
    with pytest.raises(GroupDataError, match="non-finite"):
        check_group_inputs(x, mask)
    check_group_inputs(x, mask, values=False)
    with pytest.raises(GroupDataError):
        check_group_inputs(x[:, :2], mask, values=False)


def test_group_data_error_is_value_error():
    assert issubclass(GroupDataError, ValueError)


# ---------------------------------------------------------------------------- GroupBatch


def test_group_batch_properties_and_to():
    x, mask = pad_groups(ragged())
    b = GroupBatch(x, mask, u_true=torch.arange(3.0), index=torch.tensor([5, 6, 7]))
    assert b.num_groups == 3
    assert b.sizes.tolist() == [3, 1, 2]
    assert b.device == torch.device("cpu")
    c = b.to("cpu")
    assert c is not b and c.x is b.x  # already there: not copied
    assert_close(c.u_true, b.u_true)
    assert c.v_true is None


def test_group_batch_checks_shapes_on_construction_and_values_on_validate():
    x, mask = pad_groups(ragged())
    with pytest.raises(GroupDataError):
        GroupBatch(x[:, :2], mask)
    with pytest.raises(GroupDataError, match="bool"):
        GroupBatch(x, mask.long())
    x[1, 0, 0] = float("nan")
    b = GroupBatch(x, mask)  # shape checks only: no GPU sync at construction
    with pytest.raises(GroupDataError, match="non-finite"):
        b.validate()
    x[1, 0, 0] = 1.0
    assert GroupBatch(x, mask).validate() is not None


# ---------------------------------------------------------------------------- GroupedData


def test_grouped_data_zero_fills_padding_and_from_groups():
    x, mask = pad_groups(ragged())
    garbage = x.masked_fill(~mask[..., None], 1e3)
    data = GroupedData(garbage, mask)
    assert_close(data.x, x)
    assert len(data) == 3 and data.event_shape == (2,) and data.device == torch.device("cpu")
    v = [torch.full((k, 1), float(k)) for k in (3, 1, 2)]
    d2 = GroupedData.from_groups(ragged(), u_true=torch.eye(3), v_true=v)
    assert_close(d2.x, x)
    assert d2.mask.tolist() == mask.tolist()
    expected = torch.tensor([[3.0, 3.0, 3.0], [1.0, 0.0, 0.0], [2.0, 2.0, 0.0]])
    assert_close(d2.v_true[:, :, 0], expected)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=lambda x: x.index_fill(0, torch.tensor([2]), float("nan"))), "non-finite"),
        (dict(mask=lambda m: m.index_fill(0, torch.tensor([1]), False)), "empty group"),
        (dict(mask=lambda m: m.int()), "bool"),
        (dict(mask=lambda m: m[:, :2]), "matching mask"),
        (dict(x=lambda x: x[:2]), "matching mask"),
        (dict(u_true=lambda x: torch.zeros(2, 1)), "u_true has 2 groups"),
        (dict(v_true=lambda x: torch.zeros(3, 2, 1)), "v_true shape"),
    ],
)
def test_grouped_data_bad_input(kwargs, match):
    x, mask = pad_groups(ragged())
    args = dict(x=x, mask=mask, u_true=None, v_true=None)
    for k, f in kwargs.items():
        args[k] = f(x if k != "mask" else mask)
    with pytest.raises(GroupDataError, match=match):
        GroupedData(**args)


def test_grouped_data_indexing_trims_to_largest_group():
    u = torch.arange(3.0)[:, None]
    v = torch.arange(9.0).reshape(3, 3, 1)
    data = GroupedData(*pad_groups(ragged()), u_true=u, v_true=v)
    b = data[[1, 2]]
    assert b.x.shape == (2, 2, 2) and b.mask.shape == (2, 2)
    assert b.index.tolist() == [1, 2]
    assert_close(b.x[:, :, 0], torch.tensor([[11.0, 0.0], [21.0, 22.0]]))
    assert_close(b.u_true, u[1:])
    assert_close(b.v_true, v[1:, :2])
    assert data[1:2].x.shape == (1, 1, 2)
    assert data[torch.tensor([0])].x.shape == (1, 3, 2)


def test_batches_cover_every_group_once_and_are_reproducible():
    data = GroupedData(torch.randn(10, 4, 1), torch.ones(10, 4, dtype=torch.bool))
    batches = list(data.batches(3, generator=torch.Generator().manual_seed(1)))
    assert [b.num_groups for b in batches] == [3, 3, 3, 1]
    seen = torch.cat([b.index for b in batches])
    assert sorted(seen.tolist()) == list(range(10))
    assert seen.tolist() != list(range(10))  # shuffled
    for b in batches:
        assert_close(b.x, data.x[b.index])
    gen = torch.Generator
    again = torch.cat([b.index for b in data.batches(3, generator=gen().manual_seed(1))])
    assert again.tolist() == seen.tolist()
    other = torch.cat([b.index for b in data.batches(3, generator=gen().manual_seed(2))])
    assert other.tolist() != seen.tolist()
    ordered = torch.cat([b.index for b in data.batches(3, shuffle=False)])
    assert ordered.tolist() == list(range(10))
    assert [b.num_groups for b in data.batches(3, drop_last=True)] == [3, 3, 3]


def test_batches_fixed_shape_keeps_k_max():
    data = GroupedData(*pad_groups([torch.ones(k, 1) for k in (1, 1, 5, 1, 1, 1)]))
    shapes = {tuple(b.x.shape) for b in data.batches(2, fixed_shape=True, shuffle=False)}
    assert shapes == {(2, 5, 1)}
    trimmed = [tuple(b.x.shape) for b in data.batches(2, shuffle=False)]
    assert trimmed == [(2, 1, 1), (2, 5, 1), (2, 1, 1)]
    # fewer groups than a batch: one smaller batch rather than none
    small = GroupedData(torch.ones(2, 3, 1), torch.ones(2, 3, dtype=torch.bool))
    assert [b.num_groups for b in small.batches(5, fixed_shape=True)] == [2]
    with pytest.raises(ValueError, match="batch_size"):
        next(data.batches(0))


def test_split_and_subset():
    x, mask = torch.arange(20.0).reshape(10, 2, 1), torch.ones(10, 2, dtype=torch.bool)
    data = GroupedData(x, mask, u_true=torch.arange(10.0))
    train, hold = data.split(0.3, seed=0)
    assert (len(train), len(hold)) == (7, 3)
    ids = sorted(train.u_true.tolist() + hold.u_true.tolist())
    assert ids == list(map(float, range(10)))
    for part in (train, hold):  # rows stay together with their ground truth
        assert_close(part.x[:, 0, 0], 2 * part.u_true)
    train2, hold2 = data.split(3, seed=0)
    assert_close(hold2.x, hold.x)
    _, hold3 = data.split(3, seed=1)
    assert hold3.u_true.tolist() != hold.u_true.tolist()
    for bad in (0, 10, 0.0, 1.0):
        with pytest.raises(ValueError, match="holdout"):
            data.split(bad)
    sub = data.subset(torch.tensor([4, 2]))
    assert sub.u_true.tolist() == [4.0, 2.0]
    moved = data.to("cpu")
    assert_close(moved.x, data.x)
    assert len(moved) == 10
