"""fit(): every guide and objective, the loss it reports, seeds, NaN guard, penalties, devices."""
import pyro
import pytest
import torch
from pyro.infer import JitTrace_ELBO, Trace_ELBO, TraceMeanField_ELBO
from torch.testing import assert_close

from pyro_groups import GroupVAE, History, MLPDecoder, exam_scores, fit, make_guide
from pyro_groups.data import GroupedData
from pyro_groups.models import ExamScoresDecoder
from pyro_groups.training import TrainingDivergedError, load_checkpoint, make_elbo, resolve_device

GROUPS = ["average", "product", "mixture", "deepsets"]
INSTANCES = ["conditional", "unconditional"]


@pytest.fixture(scope="module")
def exam():
    return exam_scores(48, seed=2)


def mlp_setup(seed=0, group="deepsets", instance="conditional"):
    """A small MLP model and guide whose initial weights depend only on ``seed``."""
    torch.manual_seed(seed)
    model = GroupVAE(MLPDecoder(2, 1, 3, hidden=(8,)))
    guide = make_guide(3, 2, 1, group=group, instance=instance, hidden=(8,))
    return model, guide


def mlp_data(n=24, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 3, generator=g) + 0.3 * torch.randn(n, k, 3, generator=g)
    mask = torch.arange(k) < torch.randint(1, k + 1, (n, 1), generator=g)
    return GroupedData(x, mask)


def params_of(*modules):
    return [p.detach().clone() for m in modules for p in m.parameters()]


def without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history.to_list()]


# ---------------------------------------------------------------------------- every combination


@pytest.mark.parametrize("loss", ["trace", "meanfield", "jit"])
@pytest.mark.parametrize("instance", INSTANCES)
@pytest.mark.parametrize("group", GROUPS)
def test_every_guide_and_objective_trains_through_fit(exam, group, instance, loss):
    model = GroupVAE(ExamScoresDecoder())
    guide = make_guide(1, 2, 1, group=group, instance=instance, hidden=(16,))
    h = fit(model, guide, exam, epochs=5, batch_size=16, lr=0.01, loss=loss, progress=False)
    assert len(h) == 5 and h["epoch"] == [0, 1, 2, 3, 4]
    assert all(torch.isfinite(torch.tensor(h["loss"])))
    # the loss starts in the thousands (the likelihood's scale is 0.1); it falls by half or more
    assert sum(h["loss"][-2:]) / 2 < 0.75 * h["loss"][0], h["loss"]


def test_elbo_instances_and_particles(exam):
    model, guide = GroupVAE(ExamScoresDecoder()), make_guide(1, 2, 1, hidden=(16,))
    elbo = TraceMeanField_ELBO()
    h = fit(model, guide, exam, epochs=3, batch_size=48, lr=0.03, loss=elbo, progress=False)
    assert h["loss"][-1] < h["loss"][0]
    h = fit(model, guide, exam, epochs=1, batch_size=48, num_particles=3, progress=True)
    assert len(h) == 1


def test_make_elbo():
    assert isinstance(make_elbo("trace"), Trace_ELBO)
    assert isinstance(make_elbo("meanfield", num_particles=4), TraceMeanField_ELBO)
    assert make_elbo("meanfield", num_particles=4).num_particles == 4
    jit = make_elbo("jit")
    assert isinstance(jit, JitTrace_ELBO) and jit.ignore_jit_warnings
    elbo = Trace_ELBO()
    assert make_elbo(elbo) is elbo
    with pytest.raises(ValueError, match="loss must be one of"):
        make_elbo("kl")


# ---------------------------------------------------------------------------- the reported loss


@pytest.mark.parametrize("batch_size", [48, 20])
def test_reported_loss_is_the_negative_elbo_per_group(exam, batch_size):
    """Known answer: with a zero learning rate the epoch's loss is the mean over its steps of
    -ELBO(batch) * N / G / N, replayed here with the same random draws and batch order."""
    model, guide = GroupVAE(ExamScoresDecoder()), make_guide(1, 2, 1, hidden=(16,))
    h = fit(model, guide, exam, epochs=1, batch_size=batch_size, seed=5, progress=False,
            optimizer=lambda p: torch.optim.SGD(p, lr=0.0))
    pyro.set_rng_seed(5)
    n, losses = len(exam), []
    for b in exam.batches(batch_size, generator=torch.Generator().manual_seed(5)):
        scaled = Trace_ELBO().loss(model, guide, b.x, b.mask, num_groups=n)
        losses.append(scaled / n)
    assert len(losses) == (1 if batch_size == 48 else 3)
    expected = torch.tensor(sum(losses) / len(losses))
    assert_close(torch.tensor(h["loss"][0]), expected, rtol=1e-5, atol=0)


# ---------------------------------------------------------------------------- seeds


def test_same_seed_same_numbers():
    data = mlp_data()
    runs = []
    for seed in (0, 0, 1):
        model, guide = mlp_setup()
        h = fit(model, guide, data, epochs=3, batch_size=8, lr=0.01, seed=seed, progress=False)
        runs.append((without_seconds(h), params_of(model, guide)))
    (h0, p0), (h1, p1), (h2, p2) = runs
    assert h0 == h1
    for a, b in zip(p0, p1):
        assert torch.equal(a, b)
    assert h0 != h2
    assert any(not torch.equal(a, b) for a, b in zip(p0, p2))


def test_seed_none_leaves_the_rng_alone():
    data = mlp_data()
    model, guide = mlp_setup()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    fit(model, guide, data, epochs=1, batch_size=8, seed=None, progress=False)
    assert not torch.equal(torch.get_rng_state(), state)  # it used the stream as it was ...
    model, guide = mlp_setup()
    torch.manual_seed(123)
    h1 = fit(model, guide, data, epochs=1, batch_size=8, seed=None, progress=False)
    model, guide = mlp_setup()
    torch.manual_seed(124)
    h2 = fit(model, guide, data, epochs=1, batch_size=8, seed=None, progress=False)
    assert h1["loss"] != h2["loss"]  # ... and did not reseed it


# ---------------------------------------------------------------------------- NaN guard


class RecordingAdam(torch.optim.Adam):
    """Adam that keeps a copy of the parameters after every step it applies."""

    def __init__(self, params, **kw):
        super().__init__(params, **kw)
        self.snapshots = [[p.detach().clone() for g in self.param_groups for p in g["params"]]]

    def step(self, closure=None):
        out = super().step(closure)
        self.snapshots.append([p.detach().clone() for g in self.param_groups for p in g["params"]])
        return out


class NanGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


class FlakyDecoder(MLPDecoder):
    """An MLP decoder that goes bad from its ``bad_call``-th call on (a NaN loss or gradient)."""

    def __init__(self, bad_call, kind):
        super().__init__(2, 1, 3, hidden=(8,))
        self.calls, self.bad_call, self.kind = 0, bad_call, kind

    def forward(self, u, v):
        self.calls += 1
        d = super().forward(u, v)
        if self.calls < self.bad_call:
            return d
        loc = d.base_dist.loc
        loc = loc * float("nan") if self.kind == "loss" else NanGradient.apply(loc)
        # (with validation on, a NaN parameter would be refused by the distribution itself)
        return type(d.base_dist)(loc, d.base_dist.scale, validate_args=False).to_event(1)


@pytest.mark.filterwarnings("ignore:Encountered NaN")
@pytest.mark.parametrize(
    "kind, match", [("loss", "non-finite loss"), ("gradient", "non-finite gradient")]
)
def test_nan_stops_training_with_the_last_good_parameters(tmp_path, kind, match):
    data = mlp_data()
    torch.manual_seed(0)
    model = GroupVAE(FlakyDecoder(bad_call=7, kind=kind))
    guide = make_guide(3, 2, 1, hidden=(8,))
    opts = []

    def factory(params):
        opts.append(RecordingAdam(params, lr=0.01))
        return opts[0]

    ckpt = tmp_path / "run.pt"
    with pytest.raises(TrainingDivergedError, match=match) as err:
        fit(model, guide, data, epochs=5, batch_size=8, optimizer=factory, checkpoint=ckpt,
            progress=False)
    assert "epoch 2, step 0" in str(err.value)  # 3 steps an epoch: the 7th step is epoch 2's first
    snaps = opts[0].snapshots
    assert len(snaps) == 7  # the initial parameters and 6 applied steps
    now = [p.detach() for g in opts[0].param_groups for p in g["params"]]
    for a, b in zip(now, snaps[-1]):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(snaps[-1], snaps[-2]))
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in now)
    # the checkpoint holds the end of the last complete epoch
    state = load_checkpoint(ckpt)
    assert state["epoch"] == 1
    for a, b in zip(state["model"].values(), model.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.filterwarnings("ignore:Encountered NaN")
def test_data_that_overflows_the_loss_mid_training():
    data = exam_scores(32, seed=0)
    model, guide = GroupVAE(ExamScoresDecoder()), make_guide(1, 2, 1, hidden=(8,))
    opts = []

    def factory(params):
        opts.append(RecordingAdam(params, lr=0.01))
        return opts[0]

    def corrupt(epoch, model, guide):
        data.x[3, 0, 0] = 1e30  # finite, but its squared error overflows float32
        return {}

    with pytest.raises(TrainingDivergedError, match="non-finite loss .* epoch 1"):
        fit(model, guide, data, epochs=3, batch_size=8, optimizer=factory, callback=corrupt,
            progress=False)
    snaps = opts[0].snapshots
    assert 5 <= len(snaps) <= 8  # epoch 0's four steps, then up to three good ones
    for a, b in zip(params_of(guide), snaps[-1]):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------------- penalties, clipping


class ConstantPenalty(torch.nn.Module):
    """A penalty of ``value * N`` (so ``value`` a group in the history) with a counting critic."""

    def __init__(self, value):
        super().__init__()
        self.value, self.critic_calls = value, 0

    def critic_step(self, model, guide, batch, num_groups):
        self.critic_calls += 1
        return {"critic": float(batch.num_groups)}

    def forward(self, model, guide, batch, num_groups):
        return torch.tensor(self.value * num_groups)


class ShrinkPenalty(torch.nn.Module):
    """A large L2 penalty on the guide's weights (no critic)."""

    def forward(self, model, guide, batch, num_groups):
        return 1e3 * sum(p.pow(2).sum() for p in guide.parameters())


def test_penalties_and_callback_are_recorded():
    data = mlp_data(n=24)
    model, guide = mlp_setup()
    pen = ConstantPenalty(2.5)
    h = fit(model, guide, data, epochs=2, batch_size=8, penalties=[pen], progress=False,
            callback=lambda epoch, m, g: {"twice": 2.0 * epoch})
    assert pen.critic_calls == 6
    assert_close(torch.tensor(h["penalty_0"]), torch.tensor([2.5, 2.5]))
    assert h["critic"] == [8.0, 8.0]
    assert h["twice"] == [0.0, 2.0]
    assert set(h.last) >= {"epoch", "loss", "seconds", "penalty_0", "critic", "twice"}


def test_penalty_gradients_reach_the_parameters():
    data = mlp_data(n=24)
    norms = []
    for penalties in ([], [ShrinkPenalty()]):
        model, guide = mlp_setup()
        fit(model, guide, data, epochs=3, batch_size=24, lr=0.05, penalties=penalties,
            progress=False)
        norms.append(sum(p.pow(2).sum() for p in guide.parameters()).item())
    assert norms[1] < 0.5 * norms[0], norms


def test_clip_norm_bounds_the_step():
    data = mlp_data(n=24)
    model, guide = mlp_setup()
    before = params_of(model, guide)
    fit(model, guide, data, epochs=1, batch_size=24, clip_norm=1e-3, progress=False,
        optimizer=lambda p: torch.optim.SGD(p, lr=1.0))
    step = torch.cat([(a - b).flatten() for a, b in zip(params_of(model, guide), before)])
    assert_close(step.norm(), torch.tensor(1e-3), rtol=1e-3, atol=0)


# ---------------------------------------------------------------------------- devices


def test_resolve_device():
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error(exam):
    model, guide = GroupVAE(ExamScoresDecoder()), make_guide(1, 2, 1, hidden=(8,))
    with pytest.raises(ValueError, match="CUDA is not available"):
        fit(model, guide, exam, epochs=1, device="cuda", progress=False)
    with pytest.raises(ValueError, match="'cuda:0' but CUDA is not available"):
        resolve_device("cuda:0")


@pytest.mark.cuda
def test_fit_on_cuda(exam):
    model, guide = GroupVAE(ExamScoresDecoder()), make_guide(1, 2, 1, hidden=(16,))
    h = fit(model, guide, exam, epochs=4, batch_size=16, lr=0.03, device="cuda", progress=False)
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert all(p.is_cuda for p in guide.parameters())


# ---------------------------------------------------------------------------- History


def test_history():
    h = History()
    assert len(h) == 0 and h.last == {}
    with pytest.raises(KeyError, match="no column 'loss'"):
        h["loss"]
    h.append({"epoch": 0, "loss": 2.0})
    h.append({"epoch": 1, "loss": 1.0, "extra": 5})
    assert h["loss"] == [2.0, 1.0] and h["extra"] == [None, 5] and h.last["epoch"] == 1
    rows = h.to_list()
    rows[0]["loss"] = 99.0
    assert h["loss"][0] == 2.0  # a copy
    assert History(rows)["loss"] == [99.0, 1.0]
    with pytest.raises(KeyError, match="columns"):
        h["nope"]


def test_nan_distribution_parameters_under_validation_stop_training():
    data = exam_scores(64, seed=0)
    model, guide = GroupVAE(ExamScoresDecoder()), make_guide(1, 2, 1)
    with torch.no_grad():
        guide.instance_encoder.net[0].weight.fill_(float("nan"))
    before = [p.detach().clone() for p in guide.parameters()]
    with pytest.raises(TrainingDivergedError, match="NaN/inf parameters at epoch 0, step 0"):
        fit(model, guide, data, epochs=1, progress=False)
    for p, q in zip(guide.parameters(), before):
        assert_close(p.detach(), q, equal_nan=True)


def test_a_pyro_optimizer_is_accepted_and_an_instance_is_refused(exam):
    model, guide = GroupVAE(ExamScoresDecoder()), make_guide(1, 2, 1, hidden=(8,))
    h = fit(model, guide, exam, epochs=2, batch_size=16, optimizer=pyro.optim.Adam({"lr": 0.01}),
            progress=False)
    assert len(h) == 2
    params = list(guide.parameters())
    with pytest.raises(TypeError, match="factory"):
        fit(model, guide, exam, epochs=1, optimizer=torch.optim.Adam(params), progress=False)
    per_param = pyro.optim.Adam(lambda name, param: {"lr": 0.01})
    with pytest.raises(TypeError, match="fixed arguments"):
        fit(model, guide, exam, epochs=1, optimizer=per_param, progress=False)


README_PATTERN = """
import sys, pyro, torch
from pyro_groups import GroupVAE, ExamScoresDecoder, exam_scores, fit, make_guide
from pyro_groups.adversary import set_penalty
pyro.set_rng_seed(0)  # seed first: the weights and the penalty's streams are drawn when built
train, holdout = exam_scores(256, seed=0).split(64)
model = GroupVAE(ExamScoresDecoder())
guide = make_guide(x_dim=1, u_dim=2, v_dim=1, hidden=(16,))
pen = set_penalty(x_dim=1, v_dim=1, hidden=(8,))
h = fit(model, guide, train, epochs=2, batch_size=64, seed=0, penalties=[pen], progress=False)
print(repr(h["loss"][-1]), repr(float(sum(p.sum() for p in guide.parameters()))))
"""


def test_the_documented_pattern_gives_the_same_numbers_in_two_fresh_processes():
    import subprocess
    import sys

    outs = [subprocess.run([sys.executable, "-c", README_PATTERN], capture_output=True, text=True,
                           timeout=120) for _ in range(2)]
    assert all(o.returncode == 0 for o in outs), outs[0].stderr[-2000:]
    assert outs[0].stdout == outs[1].stdout and outs[0].stdout.strip()


@pytest.mark.parametrize("kwargs, error, match", [
    ({"clip_norm": -1}, ValueError, "clip_norm must be > 0"),
    ({"clip_norm": 0}, ValueError, "clip_norm must be > 0"),
    ({"epochs": -1}, ValueError, "epochs must be an integer >= 0"),
    ({"epochs": 2.5}, ValueError, "epochs must be an integer"),
    ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1"),
    ({"num_particles": 0}, ValueError, "num_particles must be an integer >= 1"),
    ({"lr": 0.0}, ValueError, "lr must be > 0"),
    ({"lr": float("nan")}, ValueError, "lr must be a finite number"),
    ({"device": "meta"}, ValueError, "holds no data"),
    ({"device": "banana"}, ValueError, "not a device torch knows"),
])
def test_bad_arguments_are_refused_before_anything_moves(exam, kwargs, error, match):
    model, guide = GroupVAE(ExamScoresDecoder()), make_guide(1, 2, 1, hidden=(8,))
    before = params_of(model, guide)
    with pytest.raises(error, match=match):
        fit(model, guide, exam, progress=False, **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(before, params_of(model, guide)))
    assert all(p.device.type == "cpu" for p in guide.parameters())
