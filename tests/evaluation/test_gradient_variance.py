"""ELBO-gradient variance: known answers for the estimator, and the two content-sampling modes."""
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from pyro_groups.data import GroupBatch
from pyro_groups.evaluation import elbo_gradient_variance
from pyro_groups.evaluation.gradient_variance import parameter_blocks
from pyro_groups.guides import content_samples, make_guide
from pyro_groups.models import GroupVAE, MLPDecoder


class Holder(nn.Module):
    def __init__(self, *shapes) -> None:
        super().__init__()
        self.params = nn.ParameterList([nn.Parameter(torch.ones(s)) for s in shapes])


class Guide(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = Holder((3,), (2, 2))


def noisy_loss(scale: float):
    """A loss whose gradient is ``mean + scale * eps`` with eps ~ N(0, I), per parameter."""

    def loss(model, guide, x, mask, num_groups=None):
        total = 0.0
        for p in [*model.parameters(), *guide.parameters()]:
            total = total + (p * (0.5 + scale * torch.randn_like(p))).sum()
        return total

    return loss


def test_known_variance_and_mean():
    torch.manual_seed(0)
    model, guide = Holder((4,)), Guide()
    batch = GroupBatch(x=torch.zeros(1, 1, 1), mask=torch.ones(1, 1, dtype=torch.bool))
    out = elbo_gradient_variance(model, guide, batch, loss=noisy_loss(2.0), draws=4000)
    assert set(out) == {"model", "encoder", "all", "loss"}
    assert out["model"]["params"] == 4 and out["encoder"]["params"] == 7
    for block, n in (("model", 4), ("encoder", 7), ("all", 11)):
        assert out[block]["variance"] == pytest.approx(4.0 * n, rel=0.08)  # tr(4 I_n)
        assert out[block]["mean_sq_norm"] == pytest.approx(0.25 * n, abs=0.05 * n)
    exact = elbo_gradient_variance(model, guide, batch, loss=noisy_loss(0.0), draws=3)
    assert exact["all"]["variance"] == pytest.approx(0.0, abs=1e-12)
    assert exact["all"]["mean_sq_norm"] == pytest.approx(0.25 * 11)
    with pytest.raises(ValueError, match="draws"):
        elbo_gradient_variance(model, guide, batch, draws=1)


def test_blocks_of_a_group_guide_and_both_sampling_modes():
    model = GroupVAE(MLPDecoder(2, 3, 4, hidden=(8,)))
    guide = make_guide(4, 2, 3, group="product", instance="unconditional", hidden=(8,))
    x = torch.randn(6, 5, 4)
    mask = torch.arange(5) < torch.tensor([5, 3, 5, 2, 4, 5])[:, None]
    batch = GroupBatch(x=x.masked_fill(~mask[..., None], 0.0), mask=mask)
    blocks = parameter_blocks(model, guide)
    assert list(blocks) == ["model", "group_encoder", "instance_encoder"]
    out = {}
    for mode in ("group", "observation"):
        with content_samples(model, guide, mode):
            out[mode] = elbo_gradient_variance(model, guide, batch, draws=20, num_groups=60)
    for mode in out.values():
        assert mode["all"]["variance"] == pytest.approx(
            sum(mode[b]["variance"] for b in blocks))
        assert all(mode[b]["variance"] > 0 for b in blocks)
    # the same ELBO: mean losses agree within the draws' noise
    g, o = out["group"]["loss"], out["observation"]["loss"]
    assert_close(torch.tensor(g["mean"]), torch.tensor(o["mean"]),
                 atol=4 * (g["std"] ** 2 / 20 + o["std"] ** 2 / 20) ** 0.5, rtol=0)
