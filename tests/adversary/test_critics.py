"""Tests of the pair sampling and the one-observation / set-based critics on padded batches."""
from __future__ import annotations

import pytest
import torch

from pyro_groups.adversary.critics import PairCritic, SetCritic, sample_pairs

X_DIM, V_DIM = 3, 2
COUNTS = [4, 1, 3, 0, 2, 5]


def ragged_batch(counts=COUNTS, K: int = 6, garbage: float = 1e6, seed: int = 0, interleave=False):
    """Padded batch with ``counts[i]`` valid slots per group; padded slots hold ``garbage``."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(K)[None, :] < torch.tensor(counts)[:, None]
    if interleave:
        mask = torch.stack([row[torch.randperm(K, generator=g)] for row in mask])
    x = torch.randn(len(counts), K, X_DIM, generator=g)
    v = torch.randn(len(counts), K, V_DIM, generator=g)
    pad = ~mask[..., None]
    return x.masked_fill(pad, garbage), mask, v.masked_fill(pad, garbage)


def test_sample_pairs_respects_groups_and_padding():
    _, mask, _ = ragged_batch(interleave=True)
    idx = sample_pairs(mask, torch.Generator().manual_seed(0))
    counts = mask.sum(1)
    torch.testing.assert_close(idx.mask, mask & (counts >= 2)[:, None])
    assert idx.num_excluded_groups.item() == 1
    G, K = mask.shape
    own = torch.arange(G)[:, None].expand(G, K)
    slot = torch.arange(K)[None, :].expand(G, K)
    a = idx.mask
    assert mask[own[a], idx.joint_slot[a]].all()
    assert (idx.joint_slot[a] != slot[a]).all()
    assert mask[idx.marginal_group[a], idx.marginal_slot[a]].all()
    assert (idx.marginal_group[a] != own[a]).all()
    assert (counts[idx.marginal_group[a]] >= 2).all()
    again = sample_pairs(mask, torch.Generator().manual_seed(0))
    for first, second in zip(idx, again):
        torch.testing.assert_close(first, second)


def test_sample_pairs_is_uniform_over_candidates():
    _, mask, _ = ragged_batch(interleave=True)
    g = torch.Generator().manual_seed(1)
    G, K = mask.shape
    draws = 1500
    joint = torch.zeros(K)
    marginal = torch.zeros(G, K)
    anchor = tuple(torch.nonzero(mask[0])[0].tolist())
    for _ in range(draws):
        idx = sample_pairs(mask, g)
        joint[idx.joint_slot[0, anchor[0]]] += 1
        marginal[idx.marginal_group[0, anchor[0]], idx.marginal_slot[0, anchor[0]]] += 1
    joint_candidates = mask[0].clone()
    joint_candidates[anchor[0]] = False
    eligible = mask & (mask.sum(1) >= 2)[:, None]
    eligible[0] = False
    for counts, candidates in ((joint, joint_candidates), (marginal, eligible)):
        freq = counts / draws
        assert (freq[~candidates] == 0).all()
        expected = 1.0 / candidates.sum().item()
        assert (freq[candidates] - expected).abs().max().item() < 0.04


def test_sample_pairs_needs_two_eligible_groups():
    mask = torch.tensor([[True, True, False], [True, False, False]])
    with pytest.raises(ValueError):
        sample_pairs(mask)


def naive_pooled(critic: SetCritic, x, mask, normalise: str):
    out = torch.zeros(*mask.shape, critic.t_alpha[-1].out_features)
    for i in range(mask.shape[0]):
        valid = torch.nonzero(mask[i]).squeeze(1).tolist()
        denom = len(valid) if normalise == "K" else len(valid) - 1
        for k in valid:
            others = [j for j in valid if j != k]
            if others:
                out[i, k] = critic.t_alpha(x[i, others]).sum(0) / denom
    return out


@pytest.mark.parametrize("normalise", ["K", "K-1"])
def test_set_critic_leave_one_out_pooling_matches_loop(normalise):
    torch.manual_seed(0)
    critic = SetCritic(X_DIM, V_DIM, hidden=(16, 16), normalise=normalise)
    x, mask, _ = ragged_batch(interleave=True)
    with torch.no_grad():
        torch.testing.assert_close(critic.pooled(x, mask), naive_pooled(critic, x, mask, normalise))


def test_set_critic_is_padding_invariant():
    torch.manual_seed(0)
    critic = SetCritic(X_DIM, V_DIM, hidden=(16, 16))
    x, mask, v = ragged_batch(K=5, garbage=0.0)
    wide = (torch.zeros(len(COUNTS), 9, X_DIM), torch.zeros(len(COUNTS), 9, dtype=torch.bool))
    xw, mw = wide[0].fill_(1e6), wide[1]
    vw = torch.full((len(COUNTS), 9, V_DIM), -1e6)
    slots = torch.tensor([7, 0, 4, 2, 8])
    xw[:, slots], mw[:, slots], vw[:, slots] = x, mask, v
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        narrow, padded = critic(x, mask, v, g), critic(xw, mw, vw, g)
    torch.testing.assert_close(padded.joint[:, slots], narrow.joint)
    torch.testing.assert_close(padded.mask[:, slots], narrow.mask)
    assert (padded.joint[~padded.mask] == 0).all() and (padded.marginal[~padded.mask] == 0).all()
    assert padded.num_excluded_groups.item() == 1


def test_set_critic_marginal_uses_codes_of_other_groups_only():
    torch.manual_seed(0)
    critic = SetCritic(X_DIM, V_DIM, hidden=(16, 16))
    x, mask, v = ragged_batch(interleave=True)
    with torch.no_grad():
        scores = critic(x, mask, v, torch.Generator().manual_seed(5))
        pooled = critic.pooled(x, mask)
        eligible = scores.mask
        for i, k in torch.nonzero(eligible).tolist():
            others = eligible.clone()
            others[i] = False
            candidates = critic.score(v[others], pooled[i, k].expand(int(others.sum()), -1))
            assert (candidates - scores.marginal[i, k]).abs().min() < 1e-5
            joint = critic.score(v[i, k], pooled[i, k])
            torch.testing.assert_close(scores.joint[i, k], joint)


def test_pair_critic_group_scores_use_valid_partners():
    torch.manual_seed(0)
    critic = PairCritic(X_DIM, V_DIM, hidden=(16,))
    x, mask, v = ragged_batch(interleave=True)
    with torch.no_grad():
        scores = critic.group_scores(x, mask, v, torch.Generator().manual_seed(3))
        for i, k in torch.nonzero(scores.mask).tolist():
            same = mask[i].clone()
            same[k] = False
            joint_candidates = critic(x[i, k], v[i][same])
            assert (joint_candidates - scores.joint[i, k]).abs().min() < 1e-5
            others = scores.mask.clone()
            others[i] = False
            marginal_candidates = critic(x[i, k], v[others])
            assert (marginal_candidates - scores.marginal[i, k]).abs().min() < 1e-5
    assert (scores.joint[~scores.mask] == 0).all()


@pytest.mark.parametrize("critic_class", [SetCritic, PairCritic])
def test_nan_padding_leaves_gradients_finite(critic_class):
    torch.manual_seed(0)
    critic = critic_class(X_DIM, V_DIM, 8)
    x, mask, v = ragged_batch(garbage=float("nan"))
    scores = critic.group_scores(x, mask, v, torch.Generator().manual_seed(0))
    assert torch.isfinite(scores.joint).all() and torch.isfinite(scores.marginal).all()
    (scores.joint.sum() - scores.marginal.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in critic.parameters())


def test_pair_critic_score_matrix():
    torch.manual_seed(0)
    critic = PairCritic(X_DIM, V_DIM, hidden=(8,))
    x, v = torch.randn(5, X_DIM), torch.randn(5, V_DIM)
    matrix = critic.score_matrix(x, v)
    assert matrix.shape == (5, 5)
    torch.testing.assert_close(matrix[2, 4], critic(x[2], v[4]))
