r"""Amortised encoders: group encoders :math:`q(u \mid x_{1:K})` and instance encoders
:math:`q(v_k \mid \cdot)`.

Group encoders return a distribution with batch shape ``[G, 1]`` and event ``[u_dim]``; instance
encoders one with batch shape ``[G, K]`` and event ``[v_dim]``. An optional ``body`` maps one
observation ``[B, *event]`` to features ``[B, F]`` (a convolutional network for images);
without it observations are flattened.
"""
from __future__ import annotations

from typing import Optional, Sequence

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn.functional import softplus

from pyro_groups.data.batch import GroupDataError
from pyro_groups.guides.aggregators import average_of_normals, product_of_normals
from pyro_groups.guides.mixture import UniformMixtureOfNormals
from pyro_groups.nn import MLP, DeepSets

MIN_SCALE = 1e-4


def features(
    x: torch.Tensor,
    body: Optional[nn.Module],
    expected: Optional[int] = None,
    batch_dims: int = 2,
) -> torch.Tensor:
    """Per-observation features ``[G, K, F]`` of ``x`` ``[G, K, *event]`` (``[*R, G, K, F]`` of a
    stacked ``x`` ``[*R, G, K, *event]`` with ``batch_dims = len(R) + 2``).

    :param expected: the encoder's input size ``x_dim``; a mismatch raises
        :class:`~pyro_groups.data.GroupDataError` naming both sizes (instead of a matrix-shape
        error from inside torch).
    """
    if body is None:
        h = x.flatten(batch_dims)
        if expected is not None and h.shape[-1] != expected:
            raise GroupDataError(
                f"the guide was built for x_dim={expected} features per observation, but x "
                f"{list(x.shape)} has {h.shape[-1]} (its event {list(x.shape[batch_dims:])} "
                f"flattened); build it with x_dim={h.shape[-1]}"
            )
        return h
    h = body(x.flatten(0, batch_dims - 1)).unflatten(0, x.shape[:batch_dims])
    if expected is not None and h.shape[-1] != expected:
        raise GroupDataError(
            f"the guide was built for x_dim={expected}, but its body {type(body).__name__} "
            f"gives {h.shape[-1]} features; x_dim must be the body's output size"
        )
    return h


def normal_params(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split network output ``[..., 2d]`` into a location and a positive scale."""
    loc, raw = out.chunk(2, -1)
    return loc, softplus(raw) + MIN_SCALE


class PerObservationGroupEncoder(nn.Module):
    r"""Encode each observation to :math:`\mathcal{N}(\mu_k, \sigma_k^2)` and aggregate over the
    group.

    :param aggregator: ``"average"`` (GVAE, Hosoya 2019), ``"product"`` (ML-VAE, Bouchacourt
        et al. 2018) or ``"mixture"`` (ML-VAE supplement: equally weighted mixture).
    """

    def __init__(
        self,
        x_dim: int,
        u_dim: int,
        hidden: Sequence[int] = (64, 64),
        aggregator: str = "average",
        body: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        if aggregator not in ("average", "product", "mixture"):
            raise ValueError(
                f"aggregator must be 'average', 'product' or 'mixture', got {aggregator!r}"
            )
        self.aggregator = aggregator
        self.body = body
        self.net = MLP(x_dim, hidden, 2 * u_dim)

    def observation_posteriors(
        self, x: torch.Tensor, batch_dims: int = 2
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-observation ``(loc, scale)`` ``[G, K, u_dim]``."""
        return normal_params(self.net(features(x, self.body, self.net.in_dim, batch_dims)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> dist.TorchDistribution:
        loc, scale = self.observation_posteriors(x, mask.dim())
        if self.aggregator == "mixture":
            return UniformMixtureOfNormals(
                loc.unsqueeze(-3), scale.unsqueeze(-3), mask.unsqueeze(-2)
            )
        combine = average_of_normals if self.aggregator == "average" else product_of_normals
        loc, scale = combine(loc, scale, mask)
        return dist.Normal(loc, scale).to_event(1)


class DeepSetsGroupEncoder(nn.Module):
    r"""CxVAE's group encoder: a DeepSets network over the whole group.

    .. math:: (\mu, \sigma) = E_u^B\Big(\sum_{k=1}^{K} E_u^A(x_k)\Big)

    :math:`E_u^A` maps an observation to ``set_dim`` features and :math:`E_u^B` maps the pooled
    features to the posterior's parameters; both are MLPs with ``hidden`` layers (affine when
    ``hidden`` is empty).
    """

    def __init__(
        self,
        x_dim: int,
        u_dim: int,
        hidden: Sequence[int] = (64, 64),
        pooling: str = "sum",
        set_dim: int = 64,
        body: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        self.body = body
        self.x_dim = x_dim
        self.net = DeepSets(MLP(x_dim, hidden, set_dim), MLP(set_dim, hidden, 2 * u_dim), pooling)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> dist.TorchDistribution:
        h = features(x, self.body, self.x_dim, mask.dim())
        loc, scale = normal_params(self.net(h, mask))
        return dist.Normal(loc.unsqueeze(-2), scale.unsqueeze(-2)).to_event(1)


class InstanceEncoder(nn.Module):
    r"""Instance encoder, unconditional :math:`q(v_k \mid x_k)` or context-conditioned
    :math:`q(v_k \mid x_k, u)`.

    With ``u_dim > 0`` the sampled group code is concatenated to each observation's features
    (CxVAE; Li & Mandt 2018), letting the encoder tell apart equal observations from different
    groups.
    """

    def __init__(
        self,
        x_dim: int,
        v_dim: int,
        u_dim: int = 0,
        hidden: Sequence[int] = (64, 64),
        body: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        self.u_dim = u_dim
        self.body = body
        self.net = MLP(x_dim + u_dim, hidden, 2 * v_dim)

    @property
    def conditional(self) -> bool:
        return self.u_dim > 0

    def forward(
        self, x: torch.Tensor, u: Optional[torch.Tensor] = None, *, batch_dims: int = 2
    ) -> dist.TorchDistribution:
        """:math:`q(v_k \\mid x_k[, u])` of ``x`` ``[G, K, *event]`` (``batch_dims`` leading
        dimensions of ``x`` are batch dimensions: 3 for a stacked ``[R, G, K, *event]``)."""
        h = features(x, self.body, self.net.in_dim - self.u_dim, batch_dims)
        if self.conditional:
            if u is None:
                raise ValueError("a conditional instance encoder needs the group code u")
            h = torch.cat(
                [
                    h.expand(*u.shape[:-2], *h.shape[-2:]),
                    u.expand(*u.shape[:-2], h.shape[-2], u.shape[-1]),
                ],
                -1,
            )
        loc, scale = normal_params(self.net(h))
        return dist.Normal(loc, scale).to_event(1)
