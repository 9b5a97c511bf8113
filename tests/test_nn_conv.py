import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from torch import nn

from pyro_groups.data.factors import group_by_factors
from pyro_groups.data.sprites import Sprites
from pyro_groups.guides import make_guide
from pyro_groups.models import GroupVAE
from pyro_groups.nn_conv import ConvDecoder, ConvDecoderNet, ConvEncoder, conv_body, conv_sizes


def test_literature_architecture_at_64():
    enc = ConvEncoder(channels=1)
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    dense = [m for m in enc.modules() if isinstance(m, nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [(1024, 256)]
    dec = ConvDecoderNet(10, channels=3)
    dense = [m for m in dec.modules() if isinstance(m, nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [(10, 256), (256, 1024)]
    deconvs = [m for m in dec.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [d.out_channels for d in deconvs] == [64, 32, 32, 3]


@pytest.mark.parametrize(
    "size,layers", [(64, 4), (32, 3), (28, 2), (16, 2), (8, 1), (5, 0), ((28, 20), 2)]
)
def test_shapes_for_image_sizes(size, layers):
    hw = (size, size) if isinstance(size, int) else size
    assert len(conv_sizes(size)) - 1 == layers
    enc, dec = ConvEncoder(3, size), ConvDecoderNet(6, 3, size)
    x = torch.rand(2, 4, 3, *hw)
    assert enc(x).shape == (2, 4, 256)
    assert enc(x[0]).shape == (4, 256)
    assert dec(torch.randn(2, 4, 6)).shape == (2, 4, 3, *hw)


def test_explicit_layers_and_grey_input():
    assert ConvEncoder(1, 64, out_dim=32, num_layers=0)(torch.rand(5, 64, 64)).shape == (5, 32)
    assert ConvDecoderNet(4, 1, 32, num_layers=4)(torch.randn(3, 4)).shape == (3, 1, 32, 32)
    with pytest.raises(ValueError):
        conv_sizes(64, num_layers=5)


def test_conv_decoder_interface():
    dec = ConvDecoder(u_dim=3, v_dim=2, channels=1, image_size=16)
    assert dec.event_shape == (1, 16, 16) and dec.u_dim == 3 and dec.v_dim == 2
    u, v = torch.randn(4, 1, 3), torch.randn(4, 5, 2)
    d = dec(u, v)
    assert d.batch_shape == (4, 5) and d.event_shape == (1, 16, 16)
    grey = torch.rand(4, 5, 1, 16, 16)  # non-binary targets are scored (cross-entropy)
    assert torch.isfinite(d.log_prob(grey)).all() and d.log_prob(grey).shape == (4, 5)
    m = dec.mean(u, v)
    assert m.shape == (4, 5, 1, 16, 16) and m.min() >= 0 and m.max() <= 1
    particles = dec(torch.randn(7, 4, 1, 3), torch.randn(7, 4, 5, 2))
    assert particles.batch_shape == (7, 4, 5)


def test_conv_decoder_normal_likelihood():
    dec = ConvDecoder(2, 2, channels=3, likelihood="normal", image_size=8)
    d = dec(torch.randn(2, 1, 2), torch.randn(2, 3, 2))
    assert d.batch_shape == (2, 3) and d.event_shape == (3, 8, 8)
    assert isinstance(dec.raw_scale, nn.Parameter)
    fixed = ConvDecoder(2, 2, channels=3, likelihood="normal", image_size=8, scale=0.1)
    assert fixed.raw_scale is None and torch.allclose(fixed.scale(), torch.full((3, 1, 1), 0.1))
    with pytest.raises(ValueError):
        ConvDecoder(2, 2, likelihood="poisson")


@pytest.mark.parametrize("group", ["average", "deepsets"])
def test_group_vae_with_conv_nets_trains_on_sprites(group):
    data = group_by_factors(Sprites(), ["shape", "scale"], 6, (2, 4), rng=0)
    batch = data[torch.arange(6)]
    model = GroupVAE(ConvDecoder(u_dim=3, v_dim=4, channels=1))
    guide = make_guide(256, 3, 4, group=group, body=conv_body(channels=1, image_size=64))
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    losses = [svi.step(batch.x, batch.mask, num_groups=100) for _ in range(12)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) < sum(losses[:3])
    u, v = guide(batch.x, batch.mask)
    assert u.shape == (6, 1, 3) and v.shape == (6, batch.mask.shape[1], 4)
    assert model.decoder.mean(u, v).shape == batch.x.shape
