"""compile_networks / fit(compile=...): same numbers as eager, a clean fallback, copies stay
independent. (The cheap "eager" backend stands in for inductor, whose speed is measured
in benchmarks/compile.py; the "eager" backend still runs the graphs that dynamo captures.)"""
import copy
import warnings

import pytest
import torch
from torch.testing import assert_close

from pyro_groups import GroupVAE, exam_scores, fit, make_guide
from pyro_groups.adversary import set_penalty
from pyro_groups.models import ExamScoresDecoder
from pyro_groups.training.compile import (
    CompileFallbackWarning,
    compile_networks,
    uncompile_networks,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:torch._dynamo")


def build(seed=0):
    torch.manual_seed(seed)
    model = GroupVAE(ExamScoresDecoder())
    guide = make_guide(1, 2, 1, group="deepsets", instance="conditional", hidden=(8,))
    return model, guide


def outputs_and_grads(guide, x, mask):
    torch.manual_seed(1)
    u = guide.group_encoder.net(x, mask)
    v = guide.instance_encoder.net(torch.cat([x, u[:, None, :2].expand(*x.shape[:2], 2)], -1))
    out = u.sum() + v.pow(2).sum()
    return out.detach(), torch.autograd.grad(out, list(guide.parameters()))


@pytest.fixture(scope="module")
def batch():
    return next(exam_scores(32, seed=0).batches(8, shuffle=False))


def test_compiled_networks_give_the_eager_numbers(batch):
    _, guide = build()
    keys = list(guide.state_dict())
    eager = outputs_and_grads(guide, batch.x, batch.mask)
    names = compile_networks(guide, backend="eager")
    assert sorted(names) == ["PyroDeepSets", "PyroMLP"]  # the maximal networks only
    assert compile_networks(guide, backend="eager") == []  # already compiled
    assert list(guide.state_dict()) == keys
    compiled = outputs_and_grads(guide, batch.x, batch.mask)
    assert_close(compiled, eager)
    uncompile_networks(guide)
    assert "forward" not in guide.group_encoder.net.__dict__


def test_fit_compiled_trains_like_eager():
    """With a penalty (its critic's gradient comes from the VAE step's retained graph) and the
    AOT-autograd backend, as inductor runs it."""
    data = exam_scores(48, seed=0)
    histories = []
    for options in (False, {"backend": "aot_eager"}):
        model, guide = build()
        pen = set_penalty(1, 1, hidden=(8,), seed=0)
        h = fit(model, guide, data, epochs=2, batch_size=16, penalties=[pen], progress=False,
                compile=options)
        histories.append([h["loss"], h["penalty_0"]])
    assert_close(torch.tensor(histories[1]), torch.tensor(histories[0]), rtol=1e-5, atol=1e-5)


def failing_backend(gm, example_inputs):
    raise RuntimeError("no compiler here")


def test_a_network_that_cannot_compile_runs_eagerly(batch):
    _, guide = build()
    eager = outputs_and_grads(guide, batch.x, batch.mask)
    compile_networks(guide, backend=failing_backend)
    with pytest.warns(CompileFallbackWarning, match="could not compile") as seen:
        fallback = outputs_and_grads(guide, batch.x, batch.mask)
    assert_close(fallback, eager)
    messages = sorted(str(w.message) for w in seen)
    assert len(messages) == 2 and "PyroDeepSets" in messages[0] and "PyroMLP" in messages[1]
    assert "no compiler here" in messages[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning per network, not per call
        assert_close(outputs_and_grads(guide, batch.x, batch.mask), eager)


def test_torch_compile_refusing_the_platform_falls_back(batch, monkeypatch):
    _, guide = build()
    eager = outputs_and_grads(guide, batch.x, batch.mask)

    def refuse(*args, **kwargs):
        raise RuntimeError("Dynamo is not supported on this Python")

    monkeypatch.setattr(torch, "compile", refuse)
    with pytest.warns(CompileFallbackWarning, match="not supported"):
        compile_networks(guide)
    assert_close(outputs_and_grads(guide, batch.x, batch.mask), eager)


def test_a_deep_copy_runs_its_own_parameters(batch):
    _, guide = build()
    compile_networks(guide, backend="eager")
    twin = copy.deepcopy(guide)
    with torch.no_grad():
        for p in twin.parameters():
            p.add_(1.0)
    mine = guide.group_encoder.net(batch.x, batch.mask)
    theirs = twin.group_encoder.net(batch.x, batch.mask)
    assert not torch.allclose(mine, theirs)
    uncompile_networks(twin)
    assert_close(twin.group_encoder.net(batch.x, batch.mask), theirs)
