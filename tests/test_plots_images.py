"""Image figures: reconstruction grids and latent traversals are written as PNG files."""
import pytest
import torch
from torch.testing import assert_close

from pyro_groups.data.sprites import Sprites
from pyro_groups.guides.iid_guide import IIDGuide
from pyro_groups.models.iid_vae import IIDVAE
from pyro_groups.nn_conv import ConvDecoder
from pyro_groups.plots_images import latent_traversal_figure, latent_traversals, reconstruction_grid

PNG = b"\x89PNG"


def test_reconstruction_grid_writes_png(tmp_path):
    x = Sprites(16).images([[0, 5, 0, 10, 10], [1, 3, 5, 0, 31], [2, 0, 9, 31, 0]])
    path = reconstruction_grid(x, 1 - x, tmp_path / "rec.png", title="test")
    assert path.endswith("rec.png") and (tmp_path / "rec.png").read_bytes()[:4] == PNG
    colour = torch.rand(5, 3, 8, 8)
    reconstruction_grid(colour, torch.stack([colour, colour]), tmp_path / "rgb.png", columns=3,
                        labels=("data", "mean", "sample"))
    assert (tmp_path / "rgb.png").read_bytes()[:4] == PNG
    with pytest.raises(ValueError, match="do not match"):
        reconstruction_grid(x, x[:2], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="channels"):
        reconstruction_grid(torch.rand(2, 2, 8, 8), torch.rand(2, 2, 8, 8), tmp_path / "bad.png")


def test_latent_traversals_decode_one_dimension_at_a_time(tmp_path):
    model = IIDVAE(ConvDecoder(0, 3, image_size=16))
    guide = IIDGuide(256, 3)
    x = Sprites(16).images([[0, 5, 0, 10, 10]])
    code = guide.posterior(x[None]).mean[0, 0]
    values = torch.linspace(-2, 2, 5)
    images = latent_traversals(
        lambda z: model.decode(z[:, None, :])[:, 0], code, values, dims=[0, 2]
    )
    assert images.shape == (2, 5, 1, 16, 16)
    z = code.clone()
    z[2] = values[1]
    assert_close(images[1, 1], model.decode(z[None, None])[0, 0])
    path = latent_traversal_figure(
        images, tmp_path / "trav.png", values=values.tolist(), row_labels=["z0", "z2"]
    )
    assert (tmp_path / "trav.png").read_bytes()[:4] == PNG and path.endswith("trav.png")
    with pytest.raises(ValueError, match="row labels"):
        latent_traversal_figure(images, tmp_path / "bad.png", row_labels=["a"])
