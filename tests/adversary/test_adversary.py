from __future__ import annotations

import math
from typing import Any, Callable, Optional

import pytest
import torch
from torch import Tensor, nn
from torch.testing import assert_close

from pyro_groups.data.batch import GroupBatch
from pyro_groups.data.exam_scores import exam_scores
from pyro_groups.guides import make_guide
from pyro_groups.models import ExamScoresDecoder, GroupVAE
from pyro_groups.adversary import (
    AdversarialPenalty,
    FactorVAEPenalty,
    GroupTCVAEPenalty,
    MIPenalty,
    PairKLPenalty,
    Penalty,
    PenalizedLoss,
    detached_call,
    nemeth_penalty,
    set_penalty,
)
from pyro_groups.training import fit


class _Quadratic(AdversarialPenalty):
    """Adversary ``a`` maximises ``-(a - mean x)^2``; the penalty is ``a * mean x``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(1, 1, bias=False)
        self.own_optimizer(self.net, lr=0.1)

    def critic_step(
        self,
        model: Callable,
        guide: Callable,
        batch: GroupBatch,
        *,
        num_groups: Optional[int] = None,
    ) -> dict[str, float]:
        target = batch.x.mean().detach()
        loss = (self.net.weight.sum() - target) ** 2
        self.update(loss)
        return {"quadratic": float(loss.detach())}

    def forward(
        self,
        model: Callable,
        guide: Callable,
        batch: GroupBatch,
        *,
        num_groups: Optional[int] = None,
    ) -> Tensor:
        return detached_call(self.net, None, batch.x.mean().reshape(1, 1)).sum()


def _batch() -> GroupBatch:
    return GroupBatch(torch.full((2, 3, 1), 2.0), torch.ones(2, 3, dtype=torch.bool))


def test_detached_call_passes_gradients_to_inputs_only() -> None:
    net = nn.Linear(3, 1)
    x = torch.randn(5, 3, requires_grad=True)
    out = detached_call(net, None, x)
    assert_close(out, net(x))
    out.sum().backward()
    assert net.weight.grad is None and net.bias.grad is None
    assert_close(x.grad, net.weight.detach().expand(5, 3))


def test_detached_call_with_a_method() -> None:
    net = nn.Linear(2, 2)
    x = torch.randn(4, 2, requires_grad=True)
    out = detached_call(net, lambda n, a: n(a).pow(2).sum(), x)
    out.backward()
    assert net.weight.grad is None and x.grad is not None


def test_base_penalty_has_nothing_to_train() -> None:
    assert Penalty().critic_step(None, None, _batch()) == {}  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError):
        Penalty()(None, None, _batch())  # type: ignore[arg-type]


def test_update_moves_the_adversary_towards_its_optimum_and_leaves_no_grads() -> None:
    pen = _Quadratic()
    for _ in range(300):
        pen.critic_step(None, None, _batch())  # type: ignore[arg-type]
    assert_close(pen.net.weight.sum(), torch.tensor(2.0), atol=1e-2, rtol=0)
    assert pen.net.weight.grad is None


def test_optimizer_state_round_trips_through_state_dict_without_sharing() -> None:
    a, b = _Quadratic(), _Quadratic()
    for _ in range(5):
        a.critic_step(None, None, _batch())  # type: ignore[arg-type]
    b.load_state_dict(a.state_dict())
    for pen in (a, b):
        pen.critic_step(None, None, _batch())  # type: ignore[arg-type]
    assert_close(a.net.weight, b.net.weight)
    steps = [p.optimizer.state_dict()["state"][0]["step"] for p in (a, b)]
    assert_close(steps[0], steps[1])


@pytest.mark.parametrize(
    "make",
    [
        lambda: FactorVAEPenalty(2, hidden=(4,)),
        lambda: set_penalty(x_dim=1, v_dim=1, hidden=(4,), seed=0),
        lambda: PairKLPenalty(),
    ],
)
def test_library_penalties_follow_the_protocol(make: Callable[[], Penalty]) -> None:
    pen = make()
    assert isinstance(pen, Penalty)
    adversarial = isinstance(pen, (FactorVAEPenalty, MIPenalty))
    assert isinstance(pen, AdversarialPenalty) == adversarial
    if adversarial:
        assert "_extra_state" in "".join(pen.state_dict())


def test_penalized_loss_adds_a_user_penalty() -> None:
    pen = _Quadratic()
    loss = PenalizedLoss(lambda *a, **k: torch.tensor(1.0), [pen])
    batch = _batch()
    assert loss.critic_step(None, None, batch)["quadratic"] > 0  # type: ignore[arg-type]
    expected = 1.0 + 2.0 * pen.net.weight.sum()
    assert_close(loss(None, None, batch.x, batch.mask), expected.detach())


_DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
_PENALTIES = {
    "set": lambda: set_penalty(1, 1, hidden=(8,), seed=0),
    "nemeth": lambda: nemeth_penalty(1, 1, hidden=(8,), seed=0),
    "infonce": lambda: set_penalty(1, 1, hidden=(8,), seed=0, estimator="infonce"),
    "factor-vae": lambda: FactorVAEPenalty(3, 1.0, hidden=(8,), sites=("u", "v")),
    "group-tcvae": lambda: GroupTCVAEPenalty(2, 1, 1.0, 1.0, hidden=(8,)),
}


@pytest.mark.parametrize("device", _DEVICES)
@pytest.mark.parametrize("name", list(_PENALTIES))
def test_adversarial_penalties_train_and_resume_on_the_device(
    name: str, device: str, tmp_path: Any
) -> None:
    data = exam_scores(48, seed=0)

    def run(epochs: int, resume: bool) -> tuple[AdversarialPenalty, Any]:
        torch.manual_seed(0)
        model, guide = GroupVAE(ExamScoresDecoder()), make_guide(1, 2, 1, hidden=(8,))
        pen = _PENALTIES[name]()
        history = fit(
            model, guide, data, epochs=epochs, batch_size=16, penalties=[pen], seed=1,
            device=device, progress=False, checkpoint=str(tmp_path / f"{resume}.pt"), resume=resume,
        )
        return pen, history

    pen, history = run(2, False)
    assert all(p.device.type == device for p in pen.parameters())
    for group in pen.optimizer.state_dict()["state"].values():
        assert group["exp_avg"].device.type == device
    assert all(math.isfinite(v) for v in history["penalty_0"])
    first = pen.state_dict()
    (tmp_path / "True.pt").write_bytes((tmp_path / "False.pt").read_bytes())
    resumed, _ = run(3, True)
    straight, _ = run(3, False)
    for k, v in straight.state_dict().items():
        if isinstance(v, torch.Tensor):
            assert_close(resumed.state_dict()[k], v, msg=k)
    assert any(
        not torch.equal(first[k], v) for k, v in straight.state_dict().items()
        if isinstance(v, torch.Tensor)
    )
