"""GPU-ready steps, checked on the CPU: the deferred NaN guard, the sync-free Trace_ELBO loss, the
host-sync counter, the JIT warnings, and (with a GPU) fit on CUDA."""
import math
import warnings
from dataclasses import replace

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO
from torch.testing import assert_close

from pyro_groups import GroupVAE, exam_scores, fit, make_guide
from pyro_groups.adversary import set_penalty
from pyro_groups.experiments.exam_scores import ROWS, run_one, smoke_config
from pyro_groups.models import ExamScoresDecoder
from pyro_groups.training import TrainingDivergedError
from pyro_groups.training.guard import NaNGuard, supports_found_inf
from pyro_groups.training.host_sync import HostSyncCounter
from pyro_groups.training.step import train_step, unique_params
from pyro_groups.training.sync_free import device_trace_elbo
from pyro_groups.validation import ArgumentTypeError

GUIDES = [("deepsets", "conditional"), ("average", "unconditional"), ("mixture", "unconditional")]


@pytest.fixture(scope="module")
def exam():
    return exam_scores(64, seed=1)


def setup(group="deepsets", instance="conditional", fused=True):
    torch.manual_seed(0)
    model = GroupVAE(ExamScoresDecoder())
    guide = make_guide(1, 2, 1, group=group, instance=instance, hidden=(8,))
    params = unique_params([model, guide])
    return model, guide, params, torch.optim.Adam(params, lr=0.01, fused=fused)


class NanGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


def flaky(bad_step, kind):
    """A Trace_ELBO loss that is NaN (or has NaN gradients) at call ``bad_step`` and after."""
    calls = []

    def loss(model, guide, x, mask, num_groups):
        calls.append(1)
        value = Trace_ELBO().differentiable_loss(model, guide, x, mask, num_groups=num_groups)
        if len(calls) - 1 >= bad_step:
            value = value * float("nan") if kind == "loss" else NanGradient.apply(value)
        return value

    return loss


# ---------------------------------------------------------------------------- deferred guard


@pytest.mark.filterwarnings("ignore:Encountered NaN")
@pytest.mark.parametrize("kind", ["loss", "gradient"])
def test_deferred_guard_skips_every_update_from_the_first_bad_step(exam, kind):
    model, guide, params, opt = setup()
    guard = NaNGuard(deferred=True)
    batches = list(exam.batches(16, shuffle=False))
    loss = flaky(2, kind)
    snapshots = []
    for i, b in enumerate(batches):
        train_step(loss, model, guide, opt, params, b, num_groups=len(exam), guard=guard,
                   where=f"epoch 0, step {i}")
        snapshots.append([p.detach().clone() for p in params])
    # steps 0 and 1 moved the parameters, steps 2 and 3 (bad, then after) did not
    assert any(not torch.equal(a, b) for a, b in zip(snapshots[0], snapshots[1]))
    for later in snapshots[2:]:
        for a, b in zip(later, snapshots[1]):
            assert torch.equal(a, b)
    assert all(int(opt.state[p]["step"]) == 2 for p in params)  # Adam's state is untouched
    with pytest.raises(TrainingDivergedError, match=f"non-finite {kind} .* epoch 0, step 2;"):
        guard.check()


def test_deferred_guard_check_passes_and_resets_on_good_steps(exam):
    model, guide, params, opt = setup()
    guard = NaNGuard(deferred=True)
    for b in exam.batches(16):
        train_step(Trace_ELBO(), model, guide, opt, params, b, num_groups=len(exam), guard=guard)
    guard.check()
    assert guard._labels == []
    NaNGuard().check()  # immediate mode: nothing to check


def test_deferred_guard_needs_a_found_inf_optimizer(exam):
    model, guide, params, opt = setup(fused=None)
    assert not supports_found_inf(opt) and supports_found_inf(setup()[3])
    batch = next(exam.batches(16))
    with pytest.raises(ArgumentTypeError, match="fused=True"):
        train_step(Trace_ELBO(), model, guide, opt, params, batch, num_groups=64,
                   guard=NaNGuard(deferred=True))


# ---------------------------------------------------------------------------- sync-free loss


class CoinGuide(torch.nn.Module):
    """A guide with a non-reparameterised (score-function) site."""

    def __init__(self):
        super().__init__()
        self.logit = torch.nn.Parameter(torch.tensor(0.3))

    def forward(self, x):
        pyro.sample("c", dist.Bernoulli(logits=self.logit))


def coin_model(x):
    c = pyro.sample("c", dist.Bernoulli(0.5))
    pyro.sample("x", dist.Normal(c, 1.0), obs=x)


@pytest.mark.parametrize("group, instance", GUIDES)
@pytest.mark.parametrize("particles", [1, 3])
def test_device_trace_elbo_is_trace_elbo(exam, group, instance, particles):
    model, guide, params, _ = setup(group, instance)
    b = next(exam.batches(16, shuffle=False))
    results = []
    for fn in (Trace_ELBO(num_particles=particles).differentiable_loss,
               device_trace_elbo(Trace_ELBO(num_particles=particles))):
        pyro.set_rng_seed(3)
        value = fn(model, guide, b.x, b.mask, num_groups=len(exam))
        results.append((value.detach(), torch.autograd.grad(value, params)))
    (v0, g0), (v1, g1) = results
    assert_close(v1, v0, rtol=1e-6, atol=0)
    assert_close(g1, g0, rtol=1e-5, atol=1e-6)


def test_device_trace_elbo_keeps_score_function_terms():
    guide, x = CoinGuide(), torch.tensor(0.7)
    results = []
    for fn in (Trace_ELBO().differentiable_loss, device_trace_elbo(Trace_ELBO())):
        pyro.set_rng_seed(5)
        value = fn(coin_model, guide, x)
        results.append((value.detach(), torch.autograd.grad(value, [guide.logit])[0]))
    assert_close(results[1][0], results[0][0])
    assert_close(results[1][1], results[0][1])
    assert results[0][1] != 0


# ---------------------------------------------------------------------------- host syncs


def test_host_sync_counter_sees_reads_and_data_sized_ops():
    t = torch.arange(6.0)
    with HostSyncCounter() as syncs:
        t.sum().item()
        bool(t.max() > 2)
        float(t[0])
        t.nonzero()
        t[t > 2]
        t.view(2, 3).reshape(-1) * 2  # shape-only: no read
    assert syncs.count == 5, syncs.where
    assert any("test_device_step.py" in k for k in syncs.where)


@pytest.mark.parametrize("group, instance", GUIDES)
def test_elbo_step_under_a_deferred_guard_reads_nothing(exam, group, instance):
    model, guide, params, opt = setup(group, instance)
    batches = list(exam.batches(16))
    counts = []
    for guard in (NaNGuard(deferred=True), NaNGuard()):
        with HostSyncCounter() as syncs:
            for b in batches:
                train_step(Trace_ELBO(), model, guide, opt, params, b, num_groups=len(exam),
                           guard=guard, validate=False)
        counts.append(syncs)
    assert counts[0].count == 0, counts[0].where
    assert counts[1].count >= len(batches)  # the immediate guard and Pyro's loss read


def test_batches_read_the_device_once_an_epoch(exam):
    with HostSyncCounter() as syncs:
        batches = list(exam.batches(16))
    assert len(batches) == 4
    assert syncs.count == 1 and "numpy" in next(iter(syncs.where)), syncs.where  # the CPU order


# ---------------------------------------------------------------------------- JIT warnings


@pytest.mark.parametrize("penalised", [False, True])
def test_fit_with_the_jit_elbo_emits_no_warning(exam, penalised):
    model, guide, _, _ = setup()
    penalties = [set_penalty(1, 1, hidden=(8,), seed=0)] if penalised else []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = fit(model, guide, exam, epochs=2, batch_size=16, loss="jit", penalties=penalties,
                progress=False)
    assert len(h) == 2


def test_jit_warnings_are_filtered_only_inside_the_library(exam):
    """The filter does not leak: outside fit, the same warning still reaches the caller."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.warn("`torch.jit.trace` is deprecated.", DeprecationWarning)
    assert len(seen) == 1


# ---------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
@pytest.mark.parametrize("group, instance", GUIDES)
def test_elbo_step_on_cuda_never_waits_for_the_device(exam, group, instance):
    model, guide, _, _ = setup(group, instance)
    model.cuda(), guide.cuda()
    params = unique_params([model, guide])
    opt = torch.optim.Adam(params, lr=0.01, fused=True)
    data = exam.to("cuda")
    guard = NaNGuard(deferred=True)
    batches = list(data.batches(16))
    train_step(Trace_ELBO(), model, guide, opt, params, batches[0], num_groups=64, guard=guard,
               validate=False)  # compiles nothing, but warms up the allocator and Adam's state
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for b in batches:
            train_step(Trace_ELBO(), model, guide, opt, params, b, num_groups=64, guard=guard,
                       validate=False)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    guard.check()


@pytest.mark.cuda
def test_fit_on_cuda_raises_at_the_end_of_the_epoch_with_the_last_good_state(exam):
    model, guide, _, _ = setup()
    data = exam.to("cuda")

    def corrupt(epoch, m, g):
        data.x[3, 0, 0] = 1e30
        return {}

    with pytest.raises(TrainingDivergedError, match="non-finite loss .* epoch 1"):
        fit(model, guide, data, epochs=3, batch_size=16, device="cuda", callback=corrupt,
            progress=False)
    assert all(torch.isfinite(p).all() for p in guide.parameters())


@pytest.mark.cuda
@pytest.mark.parametrize("row", sorted(ROWS))
def test_every_exam_scores_row_runs_on_cuda(row):
    cfg = replace(smoke_config(), device="cuda", epochs=1, last=1)
    record = run_one(row, 0, cfg)
    assert len(record["history"]) == 1 and math.isfinite(record["history"][0]["trans_err"])
    assert math.isfinite(record["v_leak"])
