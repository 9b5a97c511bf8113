r"""The convolutional encoder and decoder of the disentanglement literature, and an image decoder.

Architecture of Higgins et al. (2017) / Locatello et al. (2019, Table 1) for 64x64 images:

* encoder: 4 convolutions with 32, 32, 64, 64 channels (kernel 4, stride 2, padding 1, ReLU),
  then a dense layer of 256 units (ReLU): features ``[B, 256]``;
* decoder: dense 256 (ReLU), dense 1024 = 64x4x4 (ReLU), then 4 transposed convolutions with 64,
  32, 32 and ``C`` channels (kernel 4, stride 2, ReLU between) back to 64x64 logits.

Other image sizes use fewer stride-2 layers: sizes are halved while they are at least 8, at most
four times (32 -> 3 layers, 16 -> 2, 28 (MNIST) -> 2 ending at 7x7, 8 (digits) -> 1); the decoder
mirrors the encoder exactly (``output_padding`` restores odd sizes). Images smaller than 8 pixels,
or ``num_layers=0``, give the dense-only (MLP) fallback. Nothing here calls ``pyro.sample``.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn.functional import softplus

Size = Union[int, tuple[int, int]]
CHANNELS = (32, 32, 64, 64)


def conv_sizes(image_size: Size, num_layers: Optional[int] = None) -> list[tuple[int, int]]:
    """Spatial sizes ``[(H, W), ...]`` before and after each stride-2 layer of the encoder."""
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    sizes = [(int(h), int(w))]
    limit = len(CHANNELS) if num_layers is None else int(num_layers)
    if not 0 <= limit <= len(CHANNELS):
        raise ValueError(f"num_layers must be in [0, {len(CHANNELS)}], got {num_layers}")
    while len(sizes) <= limit and (num_layers is not None or min(sizes[-1]) >= 8):
        sizes.append((sizes[-1][0] // 2, sizes[-1][1] // 2))
    if min(sizes[-1]) < 1:
        raise ValueError(f"image size {image_size} is too small for {len(sizes) - 1} layers")
    return sizes


class ConvEncoder(nn.Module):
    """Images ``[..., C, H, W]`` -> features ``[..., out_dim]`` (a ``body`` for the encoders).

    :param channels: image channels ``C``.
    :param image_size: ``H = W`` or ``(H, W)``.
    :param out_dim: width of the final dense layer (256 in the literature).
    :param num_layers: stride-2 convolutions (default: as many as the size allows, at most 4).
    """

    def __init__(self, channels: int = 1, image_size: Size = 64, out_dim: int = 256,
                 num_layers: Optional[int] = None) -> None:
        super().__init__()
        self.sizes = conv_sizes(image_size, num_layers)
        self.channels, self.out_dim = channels, out_dim
        layers: list[nn.Module] = []
        c_in = channels
        for c_out in CHANNELS[: len(self.sizes) - 1]:
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
            c_in = c_out
        h, w = self.sizes[-1]
        self.convs = nn.Sequential(*layers)
        self.dense = nn.Sequential(nn.Flatten(), nn.Linear(c_in * h * w, out_dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3 and self.channels == 1:
            x = x.unsqueeze(-3)
        batch = x.shape[:-3]
        h = self.dense(self.convs(x.reshape(-1, *x.shape[-3:])))
        return h.reshape(*batch, self.out_dim)


class ConvDecoderNet(nn.Module):
    """Codes ``[..., in_dim]`` -> logits ``[..., C, H, W]``, mirroring :class:`ConvEncoder`."""

    def __init__(self, in_dim: int, channels: int = 1, image_size: Size = 64, hidden: int = 256,
                 num_layers: Optional[int] = None) -> None:
        super().__init__()
        self.sizes = conv_sizes(image_size, num_layers)
        self.channels = channels
        n = len(self.sizes) - 1
        chans = [*reversed(CHANNELS[:n]), channels]
        h, w = self.sizes[-1]
        self.start = (chans[0], h, w)
        self.dense = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, chans[0] * h * w)
        )
        layers: list[nn.Module] = [nn.ReLU()] if n else []
        for i in range(n):
            (th, tw), (sh, sw) = self.sizes[n - 1 - i], self.sizes[n - i]
            pad = (th - 2 * sh, tw - 2 * sw)
            layers.append(
                nn.ConvTranspose2d(chans[i], chans[i + 1], 4, 2, padding=1, output_padding=pad)
            )
            if i < n - 1:
                layers.append(nn.ReLU())
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch = z.shape[:-1]
        h = self.dense(z.reshape(-1, z.shape[-1])).reshape(-1, *self.start)
        out = self.deconvs(h)
        return out.reshape(*batch, *out.shape[1:])


class ConvDecoder(nn.Module):
    r"""Image decoder :math:`p(x_k \mid u, v_k)` following the decoder interface of
    :mod:`pyro_groups.models.decoders`: ``u`` ``[..., G, 1, u_dim]`` is broadcast over the ``K``
    observations of ``v`` ``[..., G, K, v_dim]``, the codes are concatenated and decoded by
    :class:`ConvDecoderNet`; the distribution has batch ``[..., G, K]`` and event ``[C, H, W]``.

    :param likelihood: ``"bernoulli"`` (logits; as in the literature it also scores grey or colour
        pixels in ``[0, 1]``, i.e. a cross-entropy, so its support is not validated) or ``"normal"``
        (per-channel scale: learned, or fixed by ``scale``).
    """

    def __init__(
        self,
        u_dim: int,
        v_dim: int,
        channels: int = 1,
        likelihood: str = "bernoulli",
        image_size: Size = 64,
        *,
        scale: Optional[float] = None,
        num_layers: Optional[int] = None,
    ) -> None:
        super().__init__()
        if likelihood not in ("bernoulli", "normal"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'normal', got {likelihood!r}")
        self.u_dim, self.v_dim, self.likelihood = u_dim, v_dim, likelihood
        self.net = ConvDecoderNet(u_dim + v_dim, channels, image_size, num_layers=num_layers)
        self.event_shape = torch.Size([channels, *self.net.sizes[0]])
        self.fixed_scale = scale
        learned = likelihood == "normal" and scale is None
        self.raw_scale = nn.Parameter(torch.zeros(channels)) if learned else None

    def _logits(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        shape = torch.broadcast_shapes(u.shape[:-1], v.shape[:-1])
        z = torch.cat([u.expand(*shape, u.shape[-1]), v.expand(*shape, v.shape[-1])], -1)
        return self.net(z)

    def mean(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = self._logits(u, v)
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    def scale(self) -> torch.Tensor:
        """The normal likelihood's per-channel standard deviation ``[C, 1, 1]``."""
        if self.raw_scale is None:
            return torch.full((self.event_shape[0], 1, 1), float(self.fixed_scale or 1.0))
        return (softplus(self.raw_scale) + 1e-3).view(-1, 1, 1)

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> dist.TorchDistribution:
        out = self._logits(u, v)
        if self.likelihood == "bernoulli":
            base = dist.Bernoulli(logits=out, validate_args=False)
            return dist.Independent(base, 3, validate_args=False)
        return dist.Normal(out, self.scale().to(out).expand_as(out)).to_event(3)


def conv_body(channels: int = 1, image_size: Size = 64, out_dim: int = 256,
              num_layers: Optional[int] = None) -> Callable[[], ConvEncoder]:
    """A factory of :class:`ConvEncoder` for ``make_guide(out_dim, ..., body=conv_body(...))``."""
    return lambda: ConvEncoder(channels, image_size, out_dim, num_layers)


__all__: Sequence[str] = ["ConvDecoder", "ConvDecoderNet", "ConvEncoder", "conv_body", "conv_sizes"]
