r"""The ML-VAE supplement's group posterior: an equally weighted mixture of the observations'
normals."""
from __future__ import annotations

import pyro.distributions as dist
import torch
from pyro.distributions.util import broadcast_shape
from torch.distributions import constraints


class UniformMixtureOfNormals(dist.TorchDistribution):
    r"""Mixture over the valid observations of a group, each weighted :math:`1/K`.

    .. math:: q(u \mid \mathbf{x}) = \frac{1}{K} \sum_{k=1}^{K}
        \mathcal{N}(u;\, \mu_k, \operatorname{diag}\sigma_k^2)

    Sampling picks a component uniformly and reparameterises inside it; since the weights do not
    depend on parameters this gives unbiased pathwise gradients, so ``Trace_ELBO`` estimates the
    KL term by sampling (there is no closed form).

    :param loc: ``[..., K, d]`` component means.
    :param scale: ``[..., K, d]`` component standard deviations.
    :param mask: ``[..., K]`` bool, the valid components. Batch shape is ``[...]``, event ``[d]``.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real_vector
    has_rsample = True

    def __init__(
        self, loc: torch.Tensor, scale: torch.Tensor, mask: torch.Tensor, validate_args=None
    ):
        shape = broadcast_shape(loc.shape, scale.shape)
        self.loc, self.scale = loc.expand(shape), scale.expand(shape)
        self.mask = mask.expand(shape[:-1])
        super().__init__(shape[:-2], shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        k, d = self.loc.shape[-2:]
        return UniformMixtureOfNormals(
            self.loc.expand(*batch_shape, k, d),
            self.scale.expand(*batch_shape, k, d),
            self.mask.expand(*batch_shape, k),
        )

    @property
    def mean(self) -> torch.Tensor:
        w = self.mask.unsqueeze(-1).to(self.loc.dtype)
        return (self.loc * w).sum(-2) / w.sum(-2)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.mask.shape
        weights = self.mask.to(self.loc.dtype).expand(shape)
        k = torch.multinomial(weights.reshape(-1, shape[-1]), 1).reshape(shape[:-1])
        idx = k[..., None, None].expand(*shape[:-1], 1, self.loc.shape[-1])
        loc = self.loc.expand(*shape, self.loc.shape[-1]).gather(-2, idx).squeeze(-2)
        scale = self.scale.expand(*shape, self.loc.shape[-1]).gather(-2, idx).squeeze(-2)
        return loc + scale * torch.randn_like(loc)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        comp = dist.Normal(self.loc, self.scale).log_prob(value.unsqueeze(-2)).sum(-1)
        comp = comp.masked_fill(~self.mask, float("-inf"))
        return comp.logsumexp(-1) - self.mask.sum(-1).to(comp.dtype).log()
