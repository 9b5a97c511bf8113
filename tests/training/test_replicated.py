"""fit_replicated(): every replicate equals its solo fit(seed=s) run, streams are independent,
one optimiser over stacked parameters is R optimisers, exact resume, clear errors."""
import pyro
import pytest
import torch
from torch.testing import assert_close

from pyro_groups import GroupVAE, exam_scores, fit, make_guide
from pyro_groups.adversary import FactorVAEPenalty
from pyro_groups.data import GroupedData
from pyro_groups.experiments.exam_scores import Config, build
from pyro_groups.models import ExamScoresDecoder
from pyro_groups.training import CheckpointError, TrainingDivergedError
from pyro_groups.training.replicated import fit_replicated

CFG = Config(hidden=(16, 16))
ROW_SETS = {
    "cxvae": (["cxvae"] * 3, [0, 1, 2]),
    "gvae": (["gvae"] * 3, [0, 1, 2]),
    "cxvae-family": (["cxvae", "cxvae-reg-none", "cxvae-reg-unconditional"], [3, 3, 4]),
}


@pytest.fixture(scope="module")
def data():
    return exam_scores(192, seed=0)


def built(names, seeds):
    out = []
    for name, seed in zip(names, seeds):
        pyro.set_rng_seed(seed)
        out.append(build(name, CFG))
    return out


def draw(epoch, model, guide):
    """A callback that reads the global stream (it must be the replicate's own)."""
    return {"draw": float(torch.rand(()))}


def flat(modules):
    return torch.cat([p.detach().flatten() for m in modules for p in m.parameters()])


def without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history.to_list()]


@pytest.fixture
def float64():
    """Double precision: the critics' gradients cancel (their bound is near 0 at the start) and
    Adam normalises them, so in float32 summation-order noise shows up as 1e-4 in the critics
    after a few steps; in float64 every number agrees to 1e-10."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("rows, clip_norm", [(rows, None) for rows in ROW_SETS] + [("cxvae", 20.0)])
def test_every_replicate_equals_its_solo_fit(rows, clip_norm, device, float64):
    """Clipping at 20 binds at every step (the gradient norms are ~1e7) and is per replicate, as
    each solo run clips its own gradient."""
    names, seeds = ROW_SETS[rows]
    data = exam_scores(192, seed=0)
    kwargs = dict(epochs=2, batch_size=96, lr=3e-3, progress=False, callback=draw, device=device,
                  clip_norm=clip_norm)
    solo = built(names, seeds)
    solo_h = [fit(m, g, data, penalties=p, seed=s, **kwargs) for (m, g, p), s in zip(solo, seeds)]
    reps = built(names, seeds)
    histories = fit_replicated(reps, data, seeds=seeds, **kwargs)
    tol = dict(rtol=1e-10, atol=1e-10)
    for (m, g, p), (m2, g2, p2), h, h2 in zip(solo, reps, solo_h, histories):
        assert [set(r) for r in h.to_list()] == [set(r) for r in h2.to_list()]
        for row, row2 in zip(without_seconds(h), without_seconds(h2)):
            assert row["draw"] == row2["draw"]  # the same global stream, bit for bit
            for k in row:
                assert_close(row2[k], row[k], **tol, msg=k)
        assert_close(flat([g2]), flat([g]), **tol)
        if p:
            assert_close(flat(p2), flat(p), **tol)
            assert_close(p2[0].ema_state, p[0].ema_state, **tol)
            assert torch.equal(p2[0].generator.get_state(), p[0].generator.get_state())


def test_streams_are_independent_and_equal_seeds_give_equal_replicates(data):
    reps = built(["cxvae"] * 3, [5, 5, 5])  # identical initial weights and critics
    histories = fit_replicated(reps, data, seeds=[0, 1, 0], epochs=1, batch_size=96,
                               progress=False, callback=draw)
    g0, g1, g2 = (flat([g]) for _, g, _ in reps)
    assert torch.equal(g0, g2) and histories[0].to_list()[0]["loss"] == histories[2]["loss"][0]
    assert not torch.allclose(g0, g1)
    assert histories[0]["draw"] == histories[2]["draw"] != histories[1]["draw"]
    assert torch.equal(flat(reps[0][2]), flat(reps[2][2]))


@pytest.mark.parametrize("make", [
    lambda ps: torch.optim.Adam(ps, lr=0.1),
    lambda ps: torch.optim.AdamW(ps, lr=0.1, weight_decay=0.1),
    lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
])
def test_one_optimiser_over_stacked_parameters_is_r_optimisers(make):
    g = torch.Generator().manual_seed(0)
    stacked = torch.nn.Parameter(torch.randn(3, 4, 5, generator=g))
    solos = [torch.nn.Parameter(stacked.detach()[r].clone()) for r in range(3)]
    one, many = make([stacked]), [make([p]) for p in solos]
    for _ in range(5):
        grads = torch.randn(3, 4, 5, generator=g) * torch.tensor([1e-3, 1.0, 1e3])[:, None, None]
        stacked.grad = grads.clone()
        one.step()
        for p, opt, grad in zip(solos, many, grads):
            p.grad = grad.clone()
            opt.step()
    assert_close(stacked.detach(), torch.stack([p.detach() for p in solos]), rtol=1e-6, atol=0)


def test_resume_continues_exactly(data, tmp_path):
    kwargs = dict(seeds=[0, 1], batch_size=96, progress=False, callback=draw)
    straight = built(["cxvae"] * 2, [0, 1])
    h_straight = fit_replicated(straight, data, epochs=2, **kwargs)
    path = tmp_path / "run.pt"
    resumed = built(["cxvae"] * 2, [0, 1])
    fit_replicated(resumed, data, epochs=1, checkpoint=path, **kwargs)
    again = built(["cxvae"] * 2, [0, 1])  # fresh modules: everything comes from the checkpoint
    h_resumed = fit_replicated(again, data, epochs=2, checkpoint=path, resume=True, **kwargs)
    for a, b, ha, hb in zip(straight, again, h_straight, h_resumed):
        assert without_seconds(ha) == without_seconds(hb)
        assert torch.equal(flat(a[1:2] + tuple(a[2])), flat(b[1:2] + tuple(b[2])))
        assert torch.equal(a[2][0].generator.get_state(), b[2][0].generator.get_state())
    with pytest.raises(CheckpointError, match="other replicas"):
        fit_replicated(built(["cxvae"] * 2, [0, 1]), data, epochs=3, checkpoint=path,
                       resume=True, **{**kwargs, "seeds": [0, 2]})


@pytest.mark.filterwarnings("ignore:Encountered NaN")
def test_divergence_names_the_replicate_and_keeps_the_last_good_state(data):
    bad = GroupedData(data.x * 1e30, data.mask)  # finite data whose likelihood overflows
    reps = built(["gvae"] * 3, [0, 1, 2])
    before = [flat([g]) for _, g, _ in reps]
    with pytest.raises(TrainingDivergedError, match=r"replicates \[1\] \(seeds \[7\]\)"):
        fit_replicated(reps, [data, bad, data], seeds=[3, 7, 9], epochs=1, batch_size=96,
                       progress=False)
    for (_, g, _), b in zip(reps, before):
        assert torch.equal(flat([g]), b)


def test_bad_input_is_named(data):
    reps = built(["gvae"] * 2, [0, 1])
    with pytest.raises(ValueError, match="seeds must be 2 ints"):
        fit_replicated(reps, data, seeds=[0], progress=False)
    with pytest.raises(ValueError, match="at least one replica"):
        fit_replicated([], data, seeds=[], progress=False)
    with pytest.raises(ValueError, match="one size"):
        fit_replicated(reps, [data, exam_scores(100)], seeds=[0, 1], progress=False)
    with pytest.raises(ValueError, match="callback must be one callable or 2"):
        fit_replicated(reps, data, seeds=[0, 1], callback=[draw], progress=False)
    with pytest.raises(ValueError, match="differs from replicate 0"):
        fit_replicated(built(["gvae", "mlvae"], [0, 0]), data, seeds=[0, 0], progress=False)
    model, guide, _ = reps[0]
    with pytest.raises(ValueError, match="MIPenalty"):
        fit_replicated([(model, guide, [FactorVAEPenalty(3, 1.0)])], data, seeds=[0],
                       progress=False)
    mixture = make_guide(1, 2, 1, group="mixture", instance="unconditional", hidden=(8,))
    with pytest.raises(ValueError, match="reparameterised Normal"):
        fit_replicated([(GroupVAE(ExamScoresDecoder()), mixture)], data, seeds=[0], epochs=1,
                       progress=False)
