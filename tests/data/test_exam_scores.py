"""The Exam-Scores data set of the CxVAE paper (Sec. 3.1)."""
import pytest
import torch
from torch.testing import assert_close

from pyro_groups.data import GroupedData, exam_scores, exam_scores_mean


@pytest.fixture(scope="module")
def data():
    return exam_scores(4000, seed=3)


def test_shapes_and_types(data):
    assert isinstance(data, GroupedData)
    n, k = data.mask.shape
    assert n == 4000
    assert data.x.shape == (n, k, 1)
    assert data.u_true.shape == (n, 2)
    assert data.v_true.shape == (n, k, 1)
    assert data.mask.dtype == torch.bool
    assert k == int(data.mask.sum(-1).max())  # padded to the largest group only
    # groups are left-aligned: valid slots first
    sizes = data.mask.sum(-1)
    assert torch.equal(data.mask, torch.arange(k) < sizes[:, None])


def test_group_sizes(data):
    sizes = data.mask.sum(-1).float()
    assert sizes.min() >= 8
    # K ~ Poisson(16) + 8: mean 24, variance 16; the standard error of the mean here is 0.063
    assert abs(sizes.mean().item() - 24.0) < 0.3
    assert abs(sizes.var().item() - 16.0) < 2.0
    small = exam_scores(500, seed=0, mean_size=2.0, min_size=3).mask.sum(-1).float()
    assert small.min() >= 3
    assert abs(small.mean().item() - 5.0) < 0.3


def test_seed_reproducibility_and_global_rng_untouched():
    state = torch.get_rng_state()
    a, b, c = exam_scores(50, seed=7), exam_scores(50, seed=7), exam_scores(50, seed=8)
    assert torch.equal(torch.get_rng_state(), state)
    for name in ("x", "mask", "u_true", "v_true"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.u_true, c.u_true)


def test_ground_truth_reproduces_x(data):
    noise = 0.1
    resid = (data.x - exam_scores_mean(data.u_true[:, None, :], data.v_true))[data.mask]
    assert abs(resid.std().item() - noise) < 0.005  # ~96k residuals: standard error 0.0002
    assert abs(resid.mean().item()) < 0.002
    exact = exam_scores(30, seed=1, noise=0.0)
    noise_free = exam_scores_mean(exact.u_true[:, None, :], exact.v_true)
    assert_close(exact.x[exact.mask], noise_free[exact.mask])
    # padded slots hold zeros, in x and in v_true
    assert data.x[~data.mask].abs().max() == 0
    assert data.v_true[~data.mask].abs().max() == 0


def test_latents_are_standard_normal(data):
    u, v = data.u_true, data.v_true[data.mask]
    assert_close(u.mean(0), torch.zeros(2), atol=0.05, rtol=0)
    assert_close(u.std(0), torch.ones(2), atol=0.05, rtol=0)
    assert abs(v.mean().item()) < 0.02 and abs(v.std().item() - 1) < 0.02


def test_exam_scores_mean_known_values():
    u = torch.tensor([[1.0, 2.0], [-0.5, 0.0]])
    v = torch.tensor([[3.0], [1.0]])
    # 2 mu + (sigma^2 + 1) v
    assert_close(exam_scores_mean(u, v), torch.tensor([[2.0 + 5.0 * 3.0], [-1.0 + 1.0]]))
    # broadcasting a group code over its instances
    out = exam_scores_mean(u[:, None, :], torch.ones(2, 4, 1))
    assert out.shape == (2, 4, 1)
    assert_close(out[:, :, 0], torch.tensor([[7.0] * 4, [0.0] * 4]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_groups"):
        exam_scores(0)
