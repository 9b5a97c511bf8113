"""ParallelMLP: every copy is an independent MLP, evaluated in one batched pass."""
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from pyro_groups.nn import ParallelMLP


@pytest.mark.parametrize("hidden", [(), (5,), (5, 7)])
def test_each_copy_is_the_mlp_of_its_own_weights(hidden):
    net = ParallelMLP(3, hidden, 2, copies=4)
    x = torch.randn(6, 1, 3)
    out = net(x)
    assert out.shape == (6, 1, 4, 2)
    for c in range(4):
        layers = []
        for i in range(net.num_layers):
            lin = nn.Linear(*getattr(net, f"weight{i}").shape[1:])
            lin.weight.data = getattr(net, f"weight{i}")[c].T
            lin.bias.data = getattr(net, f"bias{i}")[c]
            layers += [lin, nn.ReLU()]
        assert_close(out[..., c, :], nn.Sequential(*layers[:-1])(x))


def test_copies_do_not_share_weights_and_init_like_linear():
    net = ParallelMLP(50, (40,), 2, copies=3)
    w = net.weight0
    assert not torch.equal(w[0], w[1])
    assert w.abs().max() <= 50**-0.5 and net.weight1.abs().max() <= 40**-0.5
    with pytest.raises(ValueError, match="copies must be >= 1"):
        ParallelMLP(2, (), 2, copies=0)
