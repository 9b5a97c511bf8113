r"""Scores of a representation that need no ground truth (Locatello et al. 2019, Sec. 5.1).

Locatello et al. fit a Gaussian to a representation and report its total correlation, for the
*mean* representation (posterior means, what the metrics score) and for the *sampled* one (draws
from the encoder, what the regularisers act on), against the regularisation strength (their
Fig. 1); they also use such scores for unsupervised model selection (Sec. 5.4).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from pyro_groups.evaluation.disentanglement.utils import as_array

__all__ = ["gaussian_total_correlation"]


def gaussian_total_correlation(codes: Any, *, min_std: float = 0.0) -> float:
    r"""Total correlation (nats) of the Gaussian fitted to ``codes`` ``[N, D]``.

    With :math:`\Sigma` the sample covariance and :math:`R` the correlation matrix,

    .. math::
        \mathrm{TC} = \mathrm{KL}\Big(\mathcal{N}(\mu, \Sigma) \,\Big\|\,
        \prod_j \mathcal{N}(\mu_j, \Sigma_{jj})\Big)
        = \frac12 \Big(\sum_j \log \Sigma_{jj} - \log\det \Sigma\Big) = -\frac12 \log\det R,

    as ``gaussian_total_correlation`` of ``disentanglement_lib`` (Locatello et al. 2019,
    Appendix C). Choices: dimensions whose standard deviation is at most ``min_std`` (exactly
    constant ones by default) are left out, since a constant has no correlation; a singular
    correlation matrix (e.g. a duplicated dimension) gives ``inf``; fewer than two dimensions
    give 0.

    :param codes: ``[N, D]`` representation (``N >= 2``).
    :param min_std: dimensions with a smaller or equal standard deviation are left out.
    :returns: the total correlation, ``>= 0``.
    """
    arr = as_array(codes, name="codes").astype(np.float64)
    if arr.shape[0] < 2:
        raise ValueError(f"need at least two rows to fit a covariance, got {arr.shape[0]}")
    arr = arr[:, arr.std(axis=0) > min_std]
    if arr.shape[1] < 2:
        return 0.0
    corr = np.corrcoef(arr, rowvar=False)
    sign, logdet = np.linalg.slogdet(corr)
    if sign <= 0 or not np.isfinite(logdet):
        return float("inf")
    return max(float(-0.5 * logdet), 0.0)
