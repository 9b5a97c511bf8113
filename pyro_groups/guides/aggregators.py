r"""Pure functions that combine per-observation normal posteriors into a group posterior.

Each takes per-observation locations and scales ``[G, K, d]`` and a ``mask`` ``[G, K]`` and returns
the group posterior's location and scale ``[G, 1, d]``. Padded slots never contribute.
"""
from __future__ import annotations

import torch


def _weights(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.unsqueeze(-1).to(like.dtype)


def average_of_normals(
    loc: torch.Tensor, scale: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""GVAE (Hosoya 2019): average the means and the variances over the group.

    .. math:: \mu = \frac{1}{K}\sum_k \mu_k, \qquad \sigma^2 = \frac{1}{K}\sum_k \sigma_k^2
    """
    w = _weights(mask, loc)
    n = w.sum(-2, keepdim=True).clamp(min=1.0)
    mean = (loc * w).sum(-2, keepdim=True) / n
    var = (scale.pow(2) * w).sum(-2, keepdim=True) / n
    return mean, var.sqrt()


def product_of_normals(
    loc: torch.Tensor, scale: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""ML-VAE (Bouchacourt et al. 2018): the normalised product of the normals, accumulating
    evidence.

    .. math:: \Sigma^{-1} = \sum_k \Sigma_k^{-1}, \qquad \Sigma^{-1}\mu = \sum_k \Sigma_k^{-1}\mu_k
    """
    w = _weights(mask, loc)
    precision = scale.pow(-2) * w
    total = precision.sum(-2, keepdim=True)
    mean = (precision * loc).sum(-2, keepdim=True) / total
    return mean, total.rsqrt()
