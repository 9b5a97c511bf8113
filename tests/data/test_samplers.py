"""DistributedGroupSampler: distinct groups per rank, whole global batches, seeded epochs."""
import pytest
import torch

from pyro_groups.data import DistributedGroupSampler, exam_scores
from pyro_groups.data.samplers import epoch_generator
from pyro_groups.validation import ArgumentError, ArgumentTypeError


def shards(n, g, w, **kw):
    """Per step, the list of every rank's indices (each rank's own sampler)."""
    per_rank = [list(DistributedGroupSampler(n, g, num_replicas=w, rank=r, **kw))
                for r in range(w)]
    return [list(step) for step in zip(*per_rank)]


@pytest.mark.parametrize("n, g, w", [(24, 4, 2), (24, 3, 4), (7, 7, 1)])
def test_each_epoch_sees_every_group_once_on_distinct_ranks(n, g, w):
    steps = shards(n, g, w, seed=3)
    assert len(steps) == n // (g * w)
    seen = torch.cat([torch.cat(step) for step in steps])
    assert sorted(seen.tolist()) == list(range(n))
    for step in steps:
        assert all(s.shape == (g,) and s.dtype == torch.int64 for s in step)


def test_ranks_concatenate_to_the_global_batches():
    sampler = DistributedGroupSampler(30, 4, num_replicas=3, rank=1, seed=5)
    sampler.set_epoch(2)
    batches = list(sampler.global_batches())
    assert len(batches) == 3 and all(b.shape == (3, 4) for b in batches)
    for r in range(3):
        ref = DistributedGroupSampler(30, 4, num_replicas=3, rank=r, seed=5)
        ref.set_epoch(2)
        steps = list(ref)
        assert len(steps) == 3
        for a, b in zip(steps, batches):
            assert torch.equal(a, b[r])


def test_partial_last_batch_is_padded_or_dropped():
    padded = shards(10, 2, 2, seed=0)  # B = 4: 3 steps, the last completed by 2 repeats
    assert len(padded) == 3
    seen = torch.cat([torch.cat(s) for s in padded]).tolist()
    assert set(seen) == set(range(10)) and len(seen) == 12
    last = torch.cat(padded[-1]).tolist()
    assert len(set(last)) == 4  # the repeats are distinct from the batch's own groups
    dropped = shards(10, 2, 2, seed=0, drop_last=True)
    assert len(dropped) == 2
    assert len(set(torch.cat([torch.cat(s) for s in dropped]).tolist())) == 8
    assert len(DistributedGroupSampler(10, 2, num_replicas=2, rank=0)) == 3


def test_epochs_and_seeds():
    a = DistributedGroupSampler(50, 5, num_replicas=2, rank=0, seed=1)
    first = list(a)
    assert all(torch.equal(x, y) for x, y in zip(first, a))  # same epoch, same order
    a.set_epoch(1)
    assert any(not torch.equal(x, y) for x, y in zip(first, a))
    b = DistributedGroupSampler(50, 5, num_replicas=2, rank=0, seed=2)
    assert any(not torch.equal(x, y) for x, y in zip(first, b))
    # (seed, epoch) streams do not collide as seed + epoch would
    assert not torch.equal(torch.randperm(50, generator=epoch_generator(0, 1)),
                           torch.randperm(50, generator=epoch_generator(1, 0)))
    in_order = DistributedGroupSampler(8, 2, num_replicas=2, rank=1, shuffle=False)
    assert [s.tolist() for s in in_order] == [[2, 3], [6, 7]]


def test_indices_build_batches_of_the_data():
    data = exam_scores(16, seed=0)
    sampler = DistributedGroupSampler(len(data), 4, num_replicas=2, rank=1, seed=0)
    for index in sampler:
        batch = data[index]
        assert torch.equal(batch.index, index) and batch.x.shape[0] == 4


def test_default_world_without_a_process_group():
    s = DistributedGroupSampler(8, 2)
    assert (s.num_replicas, s.rank) == (1, 0)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"num_groups": 7, "batch_size": 4, "num_replicas": 2, "rank": 0}, ArgumentError,
     "needs at least 8"),
    ({"num_groups": 8, "batch_size": 0, "num_replicas": 2, "rank": 0}, ArgumentError,
     "batch_size must be an integer >= 1"),
    ({"num_groups": 8, "batch_size": 2, "num_replicas": 2, "rank": 2}, ArgumentError,
     r"rank must be an integer in \[0, 1\]"),
    ({"num_groups": 8, "batch_size": 2, "num_replicas": 0, "rank": 0}, ArgumentError,
     "num_replicas"),
    ({"num_groups": 8, "batch_size": 2.0, "num_replicas": 1, "rank": 0}, ArgumentTypeError,
     "batch_size must be an integer"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        DistributedGroupSampler(**kwargs)
