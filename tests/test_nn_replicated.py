"""stack_modules / ReplicatedLinear: replicate r computes what module r computes; state moves
both ways; modules that cannot be stacked are named."""
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from pyro_groups import make_guide
from pyro_groups.models import MLPDecoder
from pyro_groups.nn import MLP, DeepSets
from pyro_groups.nn_replicated import (
    ReplicatedLinear,
    optimizer_state_slice,
    stack_modules,
    stack_optimizer_states,
    unstack_into,
)


def copies(make, n=3):
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        out.append(make())
    return out


@pytest.mark.parametrize("bias", [True, False])
def test_replicated_linear_applies_each_copy_to_its_slice(bias):
    layers = copies(lambda: nn.Linear(4, 3, bias=bias))
    stacked = ReplicatedLinear.stack(layers)
    x = torch.randn(3, 2, 5, 4)
    assert_close(stacked(x), torch.stack([l(x[r]) for r, l in enumerate(layers)]))
    with pytest.raises(ValueError, match=r"needs input \[3, \.\.\., 4\]"):
        stacked(x[:2])


@pytest.mark.parametrize("bias, relu", [(True, False), (False, False), (True, True)])
def test_replicated_linear_gradients(bias, relu):
    layer = ReplicatedLinear(torch.randn(2, 3, 4, dtype=torch.double),
                             torch.randn(2, 3, dtype=torch.double) if bias else None, relu=relu)
    x = torch.randn(2, 5, 4, dtype=torch.double, requires_grad=True)
    params = [p for p in layer.parameters()]
    assert torch.autograd.gradcheck(
        lambda x, *ps: torch.func.functional_call(layer, dict(zip(["weight", "bias"], ps)), (x,)),
        (x, *params),
    )


def test_stacked_networks_and_guides_equal_their_copies():
    nets = copies(lambda: DeepSets(MLP(2, (8, 8), 6), MLP(6, 8, 3)))
    x, mask = torch.randn(3, 5, 4, 2), torch.rand(3, 5, 4) < 0.7
    assert_close(stack_modules(nets)(x, mask),
                 torch.stack([n(x[r], mask[r]) for r, n in enumerate(nets)]))
    guides = copies(lambda: make_guide(1, 2, 1, group="deepsets", hidden=(8,)))
    stacked = stack_modules(guides)
    assert stacked._pyro_name != guides[0]._pyro_name
    mask[..., 0] = True
    x = torch.randn(3, 5, 4, 1)
    qu = stacked.group_posterior(x, mask)
    for r, g in enumerate(guides):
        assert_close(qu.mean[r], g.group_posterior(x[r], mask[r]).mean)


def test_unstack_into_round_trip():
    nets = copies(lambda: MLP(3, (5,), 2))
    stacked = stack_modules(nets)
    with torch.no_grad():
        for p in stacked.parameters():
            p.add_(1.0)
    solo = MLP(3, (5,), 2)
    unstack_into(stacked, 2, solo)
    x = torch.randn(7, 3)
    assert_close(solo(x), stacked(x.expand(3, 7, 3))[2])


def test_optimizer_states_stack_and_slice():
    nets = copies(lambda: nn.Linear(3, 2))
    opts = [torch.optim.Adam(n.parameters(), lr=0.1) for n in nets]
    for n, o in zip(nets, opts):
        n(torch.randn(4, 3)).sum().backward()
        o.step()
    state = stack_optimizer_states([o.state_dict() for o in opts])
    assert_close(optimizer_state_slice(state, 1)["state"][0]["exp_avg"],
                 opts[1].state_dict()["state"][0]["exp_avg"])
    opts[0].step()
    with pytest.raises(ValueError, match="same number of steps"):
        stack_optimizer_states([o.state_dict() for o in opts])


def test_modules_that_cannot_be_stacked_are_named():
    with pytest.raises(ValueError, match="at least one"):
        stack_modules([])
    with pytest.raises(ValueError, match="replicate 1 .* differs"):
        stack_modules([MLP(3, 4, 2), MLP(3, 5, 2)])
    with pytest.raises(ValueError, match="replicate 1 .* differs"):  # same shapes, other settings
        stack_modules([make_guide(1, 2, 1, group="average"), make_guide(1, 2, 1, group="product")])
    with pytest.raises(ValueError, match="outside nn.Linear.*raw_scale"):
        stack_modules([MLPDecoder(2, 1, 3), MLPDecoder(2, 1, 3)])
