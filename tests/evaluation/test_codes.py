"""encode / decode / reconstruct / translate / swap / interpolate, and the Exam-Scores errors."""
import pytest
import torch
from known_guides import inverse_guide, oracle_guide, useless_guide

from pyro_groups import ExamScoresDecoder, GroupVAE, exam_scores
from pyro_groups.evaluation import (
    decode,
    encode,
    exam_scores_errors,
    interpolate,
    reconstruct,
    swap,
    translate,
)
from pyro_groups.guides import preset_guide


@pytest.fixture(scope="module")
def data():
    return exam_scores(64, seed=3)


@pytest.fixture
def batch(data):
    b = data[torch.arange(6)]
    assert not bool(b.mask.all()), "the tests want padded slots"
    return b


@pytest.fixture
def model():
    return GroupVAE(ExamScoresDecoder())


def _hand_codes(batch):
    """The inverse guide's codes, computed independently of it."""
    u, v = [], torch.zeros_like(batch.x)
    for g in range(batch.num_groups):
        xs = batch.x[g, batch.mask[g], 0]
        mu, sigma = xs.mean() / 2, xs.std(unbiased=False)
        u.append(torch.stack([mu, sigma]))
        v[g, batch.mask[g], 0] = (xs - 2 * mu) / (sigma**2 + 1)
    return torch.stack(u), v


@pytest.mark.parametrize("preset", ["cxvae", "gvae", "mlvae"])
@pytest.mark.parametrize("sample", [False, True])
def test_encode_shapes_and_zero_padding(batch, preset, sample):
    guide = preset_guide(preset, 1, 2, 1)
    u, v = encode(guide, batch, sample=sample)
    g, k = batch.mask.shape
    assert u.shape == (g, 2) and v.shape == (g, k, 1)
    assert torch.all(v[~batch.mask] == 0)
    assert not u.requires_grad and not v.requires_grad
    x = reconstruct(GroupVAE(ExamScoresDecoder()), guide, batch, sample=sample)
    assert x.shape == batch.x.shape


def test_encode_known_answer(batch):
    u, v = encode(inverse_guide(), batch)
    u_hand, v_hand = _hand_codes(batch)
    torch.testing.assert_close(u, u_hand)
    torch.testing.assert_close(v, v_hand)


def test_sampled_codes_are_the_means_for_a_tiny_scale(batch):
    guide = inverse_guide(scale=1e-6)
    u0, v0 = encode(guide, batch)
    u1, v1 = encode(guide, batch, sample=True)
    torch.testing.assert_close(u1, u0, atol=1e-4, rtol=0)
    torch.testing.assert_close(v1, v0, atol=1e-4, rtol=0)
    u2, _ = encode(inverse_guide(scale=1.0), batch, sample=True)
    assert (u2 - u0).abs().max() > 0.1


def test_reconstruction_with_the_inverse_guide_is_the_data(model, batch):
    rec = reconstruct(model, inverse_guide(), batch, sample=False)
    torch.testing.assert_close(rec[batch.mask], batch.x[batch.mask], atol=1e-5, rtol=1e-5)


def test_translate_known_answer(model, data):
    source, target = data[torch.tensor([0, 1, 2])], data[torch.tensor([5, 4, 3])]
    guide = inverse_guide()
    out = translate(model, guide, source, target, sample=False)
    u_src, v_src = _hand_codes(source)
    u_tgt, _ = _hand_codes(target)
    assert out.shape == source.x.shape
    # the decoder's mean at the target's group code and the source's instance codes ...
    torch.testing.assert_close(out, ExamScoresDecoder().mean(u_tgt.unsqueeze(-2), v_src))
    # ... which here is 2 mu_t + (sigma_t^2 + 1) (x_s - 2 mu_s) / (sigma_s^2 + 1), by hand
    mu_s, s_s = u_src[:, None, :1], u_src[:, None, 1:]
    mu_t, s_t = u_tgt[:, None, :1], u_tgt[:, None, 1:]
    by_hand = 2 * mu_t + (s_t**2 + 1) * (source.x - 2 * mu_s) / (s_s**2 + 1)
    torch.testing.assert_close(out[source.mask], by_hand[source.mask])
    # translating a group to itself reconstructs it
    same = translate(model, guide, source, source, sample=False)
    torch.testing.assert_close(same[source.mask], source.x[source.mask], atol=1e-5, rtol=1e-5)


def test_translate_shape_with_a_preset_guide(model, batch):
    guide = preset_guide("cxvae", 1, 2, 1)
    out = translate(model, guide, batch, batch.to("cpu"))
    assert out.shape == batch.x.shape


def test_translate_needs_equal_group_counts(model, data):
    with pytest.raises(ValueError, match="groups"):
        translate(model, inverse_guide(), data[torch.arange(3)], data[torch.arange(2)])


def test_swap(model, batch):
    guide = inverse_guide()
    u, v = encode(guide, batch)
    identity = swap(model, guide, batch, torch.arange(batch.num_groups))
    torch.testing.assert_close(identity, reconstruct(model, guide, batch, sample=False))
    torch.testing.assert_close(identity, decode(model, u, v))
    shifted = swap(model, guide, batch)  # default: cyclic shift by one
    torch.testing.assert_close(shifted, decode(model, torch.roll(u, 1, 0), v))
    perm = torch.tensor([2, 0, 1, 5, 3, 4])
    torch.testing.assert_close(swap(model, guide, batch, perm), decode(model, u[perm], v))


def test_interpolate(model, data):
    a, b = data[torch.arange(3)], data[torch.arange(3, 6)]
    guide = inverse_guide()
    out = interpolate(model, guide, a, b, steps=4)
    assert out.shape == (4, *a.x.shape)
    torch.testing.assert_close(out[0], reconstruct(model, guide, a, sample=False))
    torch.testing.assert_close(out[-1], translate(model, guide, a, b, sample=False))
    u_a, v_a = encode(guide, a)
    u_b, _ = encode(guide, b)
    torch.testing.assert_close(out[1], decode(model, u_a + (u_b - u_a) / 3, v_a))


def test_exam_scores_errors_oracle_vs_useless(model):
    holdout = exam_scores(200, seed=5)
    keys = ("rec_err", "rec_err_mean", "trans_err", "trans_err_mean")
    keys += ("u_pred_err", "u_pred_err_abs", "v_pred_err")
    oracle = exam_scores_errors(model, oracle_guide(holdout), holdout)
    useless = exam_scores_errors(model, useless_guide(), holdout)
    assert set(keys) <= set(oracle) and set(keys) <= set(useless)
    # the oracle decodes the true codes: only the observation noise (s = 0.1) is left
    assert oracle["rec_err_mean"] == pytest.approx(0.01, rel=0.2)
    assert oracle["rec_err"] == pytest.approx(0.01, rel=0.2)
    assert oracle["trans_err_mean"] < 1e-8
    assert oracle["trans_err"] < 1e-4
    # a regressor from the true factors to themselves (100 training groups for u; the regressor
    # clips to the training range, so the range's edges cost a little)
    assert oracle["u_pred_err"] < 0.05 and oracle["v_pred_err"] < 1e-3
    # the prior as a guide knows nothing: errors of the order of the factors' variance
    assert useless["v_pred_err"] > 0.8 and useless["u_pred_err"] > 0.8
    assert useless["u_pred_err"] > 20 * oracle["u_pred_err"]
    assert useless["trans_err_mean"] > 3.0 and useless["rec_err"] > 3.0
    # and is seeded: the same numbers twice
    assert exam_scores_errors(model, useless_guide(), holdout) == useless


def test_exam_scores_errors_needs_ground_truth(model, data):
    from pyro_groups.data import GroupedData

    bare = GroupedData(data.x, data.mask)
    with pytest.raises(ValueError, match="ground truth"):
        exam_scores_errors(model, inverse_guide(), bare)
