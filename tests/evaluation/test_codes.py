"""encode / decode / reconstruct / translate / swap / interpolate, and the Exam-Scores errors.

Shared group codes (``GroupGuide`` + ``GroupVAE``) and per-member ones (``PairedGuide`` +
``PairedVAE``, group-tcVAE on pairs).
"""
import pyro.distributions as dist
import pytest
import torch
from known_guides import InverseInstanceEncoder, _Anchor, inverse_guide, oracle_guide, useless_guide
from pyro import poutine

from pyro_groups import ExamScoresDecoder, GroupVAE, exam_scores
from pyro_groups.data import GroupBatch
from pyro_groups.data.pairs import sample_pairs
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
from pyro_groups.guides.paired import PairedGuide, pair_guide
from pyro_groups.models import MLPDecoder
from pyro_groups.models.paired import PairedVAE


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


def _old_encode(guide, batch, sample):
    """``encode`` as it was before per-member codes, for the regression test."""
    qu = guide.group_posterior(batch.x, batch.mask)
    u = qu.sample() if sample else qu.mean
    qv = guide.instance_posterior(batch.x, u)
    v = (qv.sample() if sample else qv.mean).masked_fill(~batch.mask.unsqueeze(-1), 0.0)
    return u.squeeze(-2), v


def _old_decode(model, u, v):
    return model.decoder.mean(u.unsqueeze(-2), v)


def _exactly(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


@pytest.mark.parametrize("preset", ["cxvae", "gvae", "mlvae", "mlvae-mixture", "inverse"])
@pytest.mark.parametrize("sample", [False, True])
@torch.no_grad()
def test_shared_code_guides_give_what_they_gave_before(model, data, preset, sample):
    guide = inverse_guide() if preset == "inverse" else preset_guide(preset, 1, 2, 1)
    src, tgt = data[torch.arange(5)], data[torch.arange(5, 10)]
    torch.manual_seed(1)
    u, v = _old_encode(guide, src, sample)
    u_t, _ = _old_encode(guide, tgt, sample)
    torch.manual_seed(1)
    for got, want in zip(encode(guide, src, sample=sample), (u, v)):
        _exactly(got, want)
    torch.manual_seed(1)
    _exactly(reconstruct(model, guide, src, sample=sample), _old_decode(model, u, v))
    for members in ("aligned", "mean"):
        torch.manual_seed(1)
        got = translate(model, guide, src, tgt, sample=sample, members=members)
        _exactly(got, _old_decode(model, u_t, v))
    u, v = _old_encode(guide, src, False)
    u_t, _ = _old_encode(guide, tgt, False)
    perm = torch.tensor([3, 0, 4, 1, 2])
    for members in ("aligned", "mean"):
        _exactly(swap(model, guide, src, perm, members=members), _old_decode(model, u[perm], v))
        _exactly(swap(model, guide, src, members=members), _old_decode(model, u.roll(1, 0), v))
        w = torch.linspace(0, 1, 4).view(-1, 1, 1)
        line = (1 - w) * u + w * u_t
        want = torch.stack([_old_decode(model, u_s, v) for u_s in line])
        _exactly(interpolate(model, guide, src, tgt, steps=4, members=members), want)


def test_per_member_layout_of_a_shared_code_guide(batch):
    guide = inverse_guide()
    u, v = encode(guide, batch)
    u_k, v_k = encode(guide, batch, per_member=True)
    g, k = batch.mask.shape
    assert u_k.shape == (g, k, 2)
    _exactly(v_k, v)
    want = u.unsqueeze(-2).expand(g, k, 2).masked_fill(~batch.mask.unsqueeze(-1), 0.0)
    _exactly(u_k, want)
    _exactly(encode(guide, batch, per_member=False)[0], u)
    # decoding the repeated code gives what decoding the shared code gives
    model = GroupVAE(ExamScoresDecoder())
    rec = decode(model, u, v)
    torch.testing.assert_close(decode(model, u_k, v)[batch.mask], rec[batch.mask])


class KnownPerMemberEncoder(_Anchor):
    """A per-member group posterior with known means ``u_k = (x_k / 4, 1/2 + x_k / 10)``."""

    def __init__(self, scale: float = 1e-4) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> dist.TorchDistribution:
        loc = torch.cat([x / 4, 0.5 + x / 10], -1)  # [G, K, 2]
        return dist.Normal(loc, torch.full_like(loc, self.scale)).to_event(1)


def known_paired_guide(scale: float = 1e-4) -> PairedGuide:
    """group-tcVAE's guide inverting the Exam-Scores decoder member by member: ``u_k`` as above,
    ``v_k = (x_k - 2 mu_k) / (sigma_k^2 + 1)`` given the member's own ``u_k``."""
    return PairedGuide(KnownPerMemberEncoder(scale), InverseInstanceEncoder(scale))


def _known_codes(x):
    """The known guide's posterior means, by hand: ``mu``, ``sigma``, ``v``, each ``[G, K, 1]``."""
    mu, sigma = x / 4, 0.5 + x / 10
    return mu, sigma, (x - 2 * mu) / (sigma**2 + 1)


@pytest.fixture
def pairs(data):
    return sample_pairs(data, 8, rng=0)[torch.arange(8)]


@pytest.fixture
def paired_model():
    return PairedVAE(ExamScoresDecoder())


def ragged_triples():
    x = torch.linspace(-3, 4, 12).reshape(4, 3, 1)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    return GroupBatch(x.masked_fill(~mask.unsqueeze(-1), 0.0), mask)


@pytest.mark.parametrize("sample", [False, True])
def test_paired_encode_shapes(pairs, sample):
    guide = known_paired_guide()
    u, v = encode(guide, pairs, sample=sample)
    assert u.shape == (8, 2, 2) and v.shape == (8, 2, 1)
    assert encode(guide, pairs, sample=sample, per_member=True)[0].shape == (8, 2, 2)
    assert encode(guide, pairs, sample=sample, per_member=False)[0].shape == (8, 2)
    single = GroupBatch(pairs.x[:, :1], pairs.mask[:, :1])
    u1, v1 = encode(guide, single, sample=sample)
    assert u1.shape == (8, 2) and v1.shape == (8, 1, 1)
    assert encode(guide, single, per_member=True)[0].shape == (8, 1, 2)


def test_paired_encode_known_answer(pairs):
    mu, sigma, v_hand = _known_codes(pairs.x)
    u, v = encode(known_paired_guide(), pairs)
    torch.testing.assert_close(u, torch.cat([mu, sigma], -1))
    torch.testing.assert_close(v, v_hand)
    u_mean, _ = encode(known_paired_guide(), pairs, per_member=False)
    torch.testing.assert_close(u_mean, torch.cat([mu, sigma], -1).mean(-2))


def test_per_member_codes_on_ragged_groups():
    batch = ragged_triples()
    u, v = encode(known_paired_guide(), batch)
    mu, sigma, _ = _known_codes(batch.x)
    want = torch.cat([mu, sigma], -1).masked_fill(~batch.mask.unsqueeze(-1), 0.0)
    torch.testing.assert_close(u, want)
    assert torch.all(v[~batch.mask] == 0)
    sizes = batch.mask.sum(-1, keepdim=True)
    u_mean, _ = encode(known_paired_guide(), batch, per_member=False)
    torch.testing.assert_close(u_mean, want.sum(-2) / sizes)


def test_paired_decode_is_the_paired_models_x_site(paired_model, pairs):
    u, v = encode(known_paired_guide(), pairs)
    out = decode(paired_model, u, v)
    cond = poutine.condition(paired_model, data={"u": u, "v": v})
    tr = poutine.trace(cond).get_trace(pairs.x, pairs.mask)
    torch.testing.assert_close(out, tr.nodes["x"]["fn"].mean)
    # the guide inverts the decoder member by member: reconstructions are the data
    rec = reconstruct(paired_model, known_paired_guide(), pairs, sample=False)
    torch.testing.assert_close(rec, pairs.x, atol=1e-5, rtol=1e-5)
    _exactly(rec, out)


def test_paired_swap_known_answer(paired_model, pairs):
    guide = known_paired_guide()
    mu, sigma, v = _known_codes(pairs.x)
    identity = swap(paired_model, guide, pairs, torch.arange(8))
    _exactly(identity, reconstruct(paired_model, guide, pairs, sample=False))
    torch.testing.assert_close(identity, pairs.x, atol=1e-5, rtol=1e-5)
    perm = torch.tensor([2, 0, 1, 5, 3, 4, 7, 6])
    aligned = swap(paired_model, guide, pairs, perm)
    torch.testing.assert_close(aligned, 2 * mu[perm] + (sigma[perm] ** 2 + 1) * v)
    mean = swap(paired_model, guide, pairs, perm, members="mean")
    mu_g, sigma_g = mu.mean(-2, keepdim=True)[perm], sigma.mean(-2, keepdim=True)[perm]
    torch.testing.assert_close(mean, 2 * mu_g + (sigma_g**2 + 1) * v)
    shifted = swap(paired_model, guide, pairs)  # default: cyclic shift, member-aligned
    torch.testing.assert_close(shifted, swap(paired_model, guide, pairs, torch.arange(8).roll(1)))


def test_paired_translate_known_answer(paired_model, data):
    source = sample_pairs(data, 6, rng=1)[torch.arange(6)]
    target = sample_pairs(data, 6, rng=2)[torch.arange(6)]
    guide = known_paired_guide()
    mu_s, sigma_s, v_s = _known_codes(source.x)
    mu_t, sigma_t, _ = _known_codes(target.x)
    out = translate(paired_model, guide, source, target, sample=False)
    torch.testing.assert_close(out, 2 * mu_t + (sigma_t**2 + 1) * v_s)
    torch.testing.assert_close(out, decode(paired_model, encode(guide, target)[0], v_s))
    mean = translate(paired_model, guide, source, target, sample=False, members="mean")
    mu_g, sigma_g = mu_t.mean(-2, keepdim=True), sigma_t.mean(-2, keepdim=True)
    torch.testing.assert_close(mean, 2 * mu_g + (sigma_g**2 + 1) * v_s)
    u_g, _ = encode(guide, target, per_member=False)
    _exactly(mean, decode(paired_model, u_g, encode(guide, source)[1]))
    same = translate(paired_model, guide, source, source, sample=False)
    torch.testing.assert_close(same, source.x, atol=1e-5, rtol=1e-5)


def test_paired_translate_with_sampled_codes(paired_model, pairs):
    guide = known_paired_guide(scale=1e-6)
    want = translate(paired_model, guide, pairs, pairs.to("cpu"), sample=False)
    got = translate(paired_model, guide, pairs, pairs, sample=True)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    noisy = translate(paired_model, known_paired_guide(scale=1.0), pairs, pairs, sample=True)
    assert (noisy - want).abs().max() > 0.1


def test_paired_interpolate(paired_model, data):
    a = sample_pairs(data, 4, rng=1)[torch.arange(4)]
    b = sample_pairs(data, 4, rng=2)[torch.arange(4)]
    guide = known_paired_guide()
    for members in ("aligned", "mean"):
        out = interpolate(paired_model, guide, a, b, steps=3, members=members)
        assert out.shape == (3, 4, 2, 1)
        start = translate(paired_model, guide, a, a, sample=False, members=members)
        end = translate(paired_model, guide, a, b, sample=False, members=members)
        torch.testing.assert_close(out[0], start)
        torch.testing.assert_close(out[-1], end)
    u_a, v_a = encode(guide, a)
    u_b, _ = encode(guide, b)
    out = interpolate(paired_model, guide, a, b, steps=3)
    torch.testing.assert_close(out[0], a.x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1], decode(paired_model, (u_a + u_b) / 2, v_a))


def test_ragged_per_member_codes_move_by_the_mean(paired_model):
    batch = ragged_triples()
    guide = known_paired_guide()
    perm = torch.tensor([3, 0, 1, 2])
    with pytest.raises(ValueError, match=r"aligned.*u \[4, 3, 2\].*members='mean'"):
        swap(paired_model, guide, batch, perm)
    mu, sigma, v = _known_codes(batch.x)
    w = batch.mask.unsqueeze(-1).to(mu.dtype)
    mu_g = ((mu * w).sum(-2, keepdim=True) / w.sum(-2, keepdim=True))[perm]
    sigma_g = ((sigma * w).sum(-2, keepdim=True) / w.sum(-2, keepdim=True))[perm]
    out = swap(paired_model, guide, batch, perm, members="mean")
    want = 2 * mu_g + (sigma_g**2 + 1) * v
    torch.testing.assert_close(out[batch.mask], want[batch.mask])
    # aligned works where every receiving member has a partner: group 2 (one member) from 0
    ok = swap(paired_model, guide, batch, torch.tensor([0, 0, 0, 3]))
    want = 2 * mu[0] + (sigma[0] ** 2 + 1) * v
    torch.testing.assert_close(ok[1:3][batch.mask[1:3]], want[1:3][batch.mask[1:3]])


def test_per_member_translation_between_group_sizes(paired_model, pairs):
    guide = known_paired_guide()
    triples = ragged_triples()
    source = GroupBatch(pairs.x[:4], pairs.mask[:4])
    with pytest.raises(ValueError, match=r"u \[4, 3, 2\] \(mask \[4, 3\]\).*mask \[4, 2\]"):
        translate(paired_model, guide, source, triples, sample=False)
    out = translate(paired_model, guide, source, triples, sample=False, members="mean")
    u_g, _ = encode(guide, triples, per_member=False)
    torch.testing.assert_close(out, decode(paired_model, u_g, encode(guide, source)[1]))
    # a single-observation target has one (shared) code, which every member takes
    single = GroupBatch(triples.x[:, :1], triples.mask[:, :1])
    out = translate(paired_model, guide, source, single, sample=False)
    u_1, _ = encode(guide, single)
    torch.testing.assert_close(out, decode(paired_model, u_1, encode(guide, source)[1]))


def test_trained_style_paired_guide_and_model_on_pairs():
    """Networks of the library (conditional instance encoder), not hand-made encoders."""
    g = torch.Generator().manual_seed(0)
    batch = GroupBatch(torch.randn(5, 2, 4, generator=g), torch.ones(5, 2, dtype=torch.bool))
    other = GroupBatch(torch.randn(5, 2, 4, generator=g), torch.ones(5, 2, dtype=torch.bool))
    model = PairedVAE(MLPDecoder(2, 3, 4, hidden=(8,)))
    guide = pair_guide("group_tcvae", 4, 2, 3, hidden=(8,), instance="conditional")
    u, v = encode(guide, batch)
    loc, _ = guide.group_encoder.observation_posteriors(batch.x)
    torch.testing.assert_close(u, loc)
    torch.testing.assert_close(v, guide.instance_posterior(batch.x, loc).mean)
    rec = reconstruct(model, guide, batch, sample=False)
    torch.testing.assert_close(rec, model.decoder.mean(u, v))
    _exactly(swap(model, guide, batch, torch.arange(5)), rec)
    _exactly(translate(model, guide, batch, batch, sample=False), rec)
    for members in ("aligned", "mean"):
        assert translate(model, guide, batch, other, members=members).shape == (5, 2, 4)
        assert swap(model, guide, batch, members=members).shape == (5, 2, 4)
        assert interpolate(model, guide, batch, other, 3, members=members).shape == (3, 5, 2, 4)
    assert reconstruct(model, guide, batch).shape == (5, 2, 4)


def test_decode_rejects_mismatched_codes(model, paired_model):
    v = torch.zeros(4, 2, 1)
    with pytest.raises(ValueError, match=r"u \[4, 3, 2\].*v \[4, 2, 1\]"):
        decode(paired_model, torch.zeros(4, 3, 2), v)
    with pytest.raises(ValueError, match=r"u \[5, 2\].*v \[4, 2, 1\]"):
        decode(model, torch.zeros(5, 2), v)
    with pytest.raises(ValueError, match=r"u \[4, 2\].*v \[4, 1\]"):
        decode(model, torch.zeros(4, 2), torch.zeros(4, 1))
    with pytest.raises(ValueError, match=r"u \[4, 2, 3\] has size 3.*u_dim is 2"):
        decode(paired_model, torch.zeros(4, 2, 3), v)
    with pytest.raises(ValueError, match=r"v \[4, 2, 2\] has size 2.*v_dim is 1"):
        decode(model, torch.zeros(4, 2), torch.zeros(4, 2, 2))


def test_bad_arguments(paired_model, pairs):
    guide = known_paired_guide()
    with pytest.raises(ValueError, match=r"perm must have shape \[8\].*\[3\]"):
        swap(paired_model, guide, pairs, torch.arange(3))
    with pytest.raises(ValueError, match="members must be one of"):
        translate(paired_model, guide, pairs, pairs, members="first")
    with pytest.raises(ValueError, match="a has 8 groups, b 3"):
        interpolate(paired_model, guide, pairs, GroupBatch(pairs.x[:3], pairs.mask[:3]))
