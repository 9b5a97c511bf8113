r"""The synthetic Exam-Scores data set of the CxVAE paper
("Disentangling Emergent Groups", Sec. 3.1).

Students' scores grouped by school. For school :math:`i` with :math:`K_i` students,

.. math::

    \mu_i, \sigma_i, v_{ik} \sim \mathcal{N}(0, 1), \qquad
    K_i \sim \mathrm{Poisson}(16) + 8, \qquad
    x_{ik} = 2\mu_i + (\sigma_i^2 + 1)\, v_{ik} + \epsilon_{ik},
    \quad \epsilon_{ik} \sim \mathcal{N}(0, s^2).

The group code is :math:`u_i = (\mu_i, \sigma_i)`, the instance code :math:`v_{ik}`. The paper does
not state the noise level :math:`s`; we take :math:`s = 0.1` by default.
"""
from __future__ import annotations

import torch

from pyro_groups.data.dataset import GroupedData
from pyro_groups.validation import check_float, check_int


def exam_scores_mean(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The noise-free score ``2 mu + (sigma^2 + 1) v`` for ``u`` ``[..., 2]`` and
    ``v`` ``[..., 1]``."""
    mu, sigma = u[..., :1], u[..., 1:2]
    return 2.0 * mu + (sigma**2 + 1.0) * v


def exam_scores(
    num_groups: int = 32_768,
    *,
    seed: int = 0,
    noise: float = 0.1,
    mean_size: float = 16.0,
    min_size: int = 8,
) -> GroupedData:
    """Generate the Exam-Scores data set with its ground truth.

    :param num_groups: number of schools ``N`` (32,768 in the paper).
    :param seed: seeds a private generator; the global RNG is untouched.
    :param noise: standard deviation ``s`` of the observation noise.
    :param mean_size: Poisson rate of the group size beyond ``min_size``.
    :param min_size: the smallest group size.
    :returns: :class:`GroupedData` with ``x`` ``[N, K_max, 1]``, ``u_true`` ``[N, 2]`` (mu, sigma)
        and ``v_true`` ``[N, K_max, 1]``.
    :raises ArgumentError: for a ``num_groups`` or ``min_size`` that is not a positive integer, a
        negative or non-finite ``noise`` or ``mean_size``, or a ``seed`` that is not an integer.
    """
    num_groups = check_int(num_groups, "num_groups", min=1)
    seed = check_int(seed, "seed")
    noise = check_float(noise, "noise", min=0.0)
    mean_size = check_float(mean_size, "mean_size", min=0.0)
    min_size = check_int(min_size, "min_size", min=1)
    g = torch.Generator().manual_seed(seed)
    sizes = (
        torch.poisson(torch.full((num_groups,), float(mean_size)), generator=g).long() + min_size
    )
    k_max = int(sizes.max())
    mask = torch.arange(k_max) < sizes.unsqueeze(-1)
    u = torch.randn(num_groups, 2, generator=g)
    v = torch.randn(num_groups, k_max, 1, generator=g)
    eps = noise * torch.randn(num_groups, k_max, 1, generator=g)
    x = exam_scores_mean(u.unsqueeze(-2), v) + eps
    v = v.masked_fill(~mask.unsqueeze(-1), 0.0)
    return GroupedData(x, mask, u_true=u, v_true=v)
