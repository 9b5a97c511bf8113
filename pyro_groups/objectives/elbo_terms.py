r"""The ELBO split into its reconstruction and KL terms, read off Pyro traces.

The baselines of Locatello et al. (2019) reweight or augment the two terms of

.. math::
    \mathrm{ELBO} = \sum_n \Big(\mathbb{E}_{q(z \mid x_n)}[\log p(x_n \mid z)]
    - \mathrm{KL}\big(q(z \mid x_n) \,\|\, p(z)\big)\Big),

so their losses start from :func:`elbo_terms`: the guide is traced, the model replayed against it
(exactly as :class:`pyro.infer.Trace_ELBO` does, with the same checks), and

- ``log_lik`` is the sum of the observed sites' ``log_prob_sum`` (scaled by subsampling, masked);
- ``kl`` is the sum over latent sites of the analytic :math:`\mathrm{KL}(q \,\|\, p)`
  (``analytic_kl=True``, as :class:`pyro.infer.TraceMeanField_ELBO`; sites without a registered
  KL fall back to the next line) or of the one-sample estimate
  :math:`\log q(z) - \log p(z)` at the drawn code (``analytic_kl=False``, as ``Trace_ELBO``).

So ``-(log_lik - kl)`` equals ``TraceMeanField_ELBO`` (resp. ``Trace_ELBO``)'s
``differentiable_loss`` on the same draws. Latent sites must be reparameterised.

Aggregate-posterior penalties (TC, DIP) need the codes of a batch: :func:`posterior_codes`
reads them off the guide trace, and :func:`observation_scale` gives the factor that puts a
per-observation average on the ELBO's data-set scale. :class:`AggregatePosteriorLoss` is the
loss callable built on them, :math:`-\mathrm{ELBO}` plus a penalty of the batch's codes from the
same draw of the guide; beta-TCVAE and DIP-VAE subclass it.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Callable, NamedTuple, Optional, Sequence

import torch
from pyro.distributions import Independent, Normal
from pyro.distributions.kl import kl_divergence
from pyro.distributions.util import scale_and_mask
from pyro.infer.enum import get_importance_trace
from pyro.poutine import Trace
from torch import nn

__all__ = [
    "AggregatePosteriorLoss",
    "ElboTerms",
    "PosteriorCodes",
    "elbo_terms",
    "observation_scale",
    "posterior_codes",
]


class ElboTerms(NamedTuple):
    """The two terms of a one-sample ELBO and the traces they came from.

    :ivar log_lik: :math:`\\sum \\log p(x \\mid z)`, scalar, on the data-set scale.
    :ivar kl: :math:`\\sum \\mathrm{KL}(q \\,\\|\\, p)` over latent sites, scalar, same scale.
    :ivar model_trace: the replayed model trace (log-probabilities computed).
    :ivar guide_trace: the guide trace (log-probabilities computed).
    """

    log_lik: torch.Tensor
    kl: torch.Tensor
    model_trace: Trace
    guide_trace: Trace

    @property
    def elbo(self) -> torch.Tensor:
        return self.log_lik - self.kl


def _site_kl(model_site: dict, guide_site: dict, analytic: bool) -> torch.Tensor:
    if analytic:
        try:
            kl = kl_divergence(guide_site["fn"], model_site["fn"])
        except NotImplementedError:
            pass
        else:
            kl = scale_and_mask(kl, scale=guide_site["scale"], mask=guide_site["mask"])
            if not torch.is_tensor(kl):
                return torch.as_tensor(kl * math.prod(guide_site["fn"].batch_shape))
            return kl.sum()
    return guide_site["log_prob_sum"] - model_site["log_prob_sum"]


def elbo_terms(
    model: Callable,
    guide: Callable,
    x: torch.Tensor,
    mask: torch.Tensor,
    *,
    num_groups: Optional[int] = None,
    analytic_kl: bool = True,
    max_plate_nesting: int = 2,
) -> ElboTerms:
    """Trace ``guide(x, mask, num_groups=...)``, replay ``model`` and split the ELBO.

    :param analytic_kl: closed-form KL per latent site where registered, else the one-sample
        estimate at the drawn code.
    :param max_plate_nesting: passed to Pyro's trace checks (2: ``"groups"`` and ``"instances"``).
    :raises ValueError: if a latent site of the guide is not reparameterised.
    """
    kwargs = {"num_groups": num_groups}
    model_trace, guide_trace = get_importance_trace(
        "flat", max_plate_nesting, model, guide, (x, mask), kwargs
    )
    log_lik = x.new_zeros(())
    kl = x.new_zeros(())
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample":
            continue
        if site["is_observed"]:
            log_lik = log_lik + site["log_prob_sum"]
            continue
        guide_site = guide_trace.nodes[name]
        if not getattr(guide_site["fn"], "has_rsample", False):
            raise ValueError(f"latent site {name!r} of the guide is not reparameterised")
        kl = kl + _site_kl(site, guide_site, analytic_kl)
    return ElboTerms(log_lik, kl, model_trace, guide_trace)


def observation_scale(mask: torch.Tensor, num_groups: Optional[int] = None) -> torch.Tensor:
    r"""Estimated number of observations in the data set: :math:`\frac{N}{G} \sum_{gk} m_{gk}`.

    Multiplying a per-observation average by this puts it on the scale of the ELBO, which Pyro
    sums over the batch and scales by :math:`N / G` (``N = num_groups`` groups in the data set,
    ``G`` in the batch). With groups of one it is simply ``N``.
    """
    g = mask.shape[0]
    n = g if num_groups is None else int(num_groups)
    return mask.sum().to(torch.get_default_dtype()) * (n / g)


class PosteriorCodes(NamedTuple):
    """Codes of the valid observations of a batch, rows in ``mask`` order (all ``[M, D]``).

    :ivar z: the drawn codes (reparameterised: gradients reach the encoder).
    :ivar loc: the posterior means :math:`\\mu(x_n)`.
    :ivar scale: the posterior standard deviations :math:`\\sigma(x_n)`.
    """

    z: torch.Tensor
    loc: torch.Tensor
    scale: torch.Tensor


def _normal_params(fn) -> tuple[torch.Tensor, torch.Tensor]:
    while isinstance(fn, Independent):
        fn = fn.base_dist
    if not isinstance(fn, Normal):
        raise ValueError(
            "aggregate-posterior penalties need a diagonal normal posterior, got "
            f"{type(fn).__name__}"
        )
    return fn.loc, fn.scale


def posterior_codes(
    guide_trace: Trace, mask: torch.Tensor, sites: Sequence[str] = ("z",)
) -> PosteriorCodes:
    """The valid rows of the guide's codes at ``sites``, concatenated along the last dimension.

    Each site's value, location and scale are broadcast to ``[G, K, D_site]`` (a group code
    ``[G, 1, D]`` is repeated for every member), so the code of observation ``(g, k)`` is
    ``[u_g, v_gk]`` for ``sites=("u", "v")``. Only diagonal normal posteriors are supported.
    """
    zs, locs, scales = [], [], []
    g, k = mask.shape
    for name in sites:
        site = guide_trace.nodes[name]
        loc, scale = _normal_params(site["fn"])
        value = site["value"]
        d = value.shape[-1]
        for t, out in ((value, zs), (loc, locs), (scale, scales)):
            out.append(t.expand(g, k, d))
    sel = mask
    return PosteriorCodes(
        torch.cat(zs, -1)[sel], torch.cat(locs, -1)[sel], torch.cat(scales, -1)[sel]
    )


class AggregatePosteriorLoss(nn.Module, ABC):
    r"""Base of the loss callables that add a penalty of the batch's codes to the negative ELBO:

    .. math::
        \mathcal{L} = -\mathrm{ELBO} + R\big(z_{1..M}, \hat N\big),

    where :math:`z_{1..M}` are the codes of the batch's valid observations
    (:func:`posterior_codes` at ``sites``) from the same draw of the guide as the ELBO
    (:func:`elbo_terms`), and :math:`\hat N` is :func:`observation_scale`. A subclass defines
    :meth:`penalty`, :math:`R` already on the ELBO's data-set scale (typically :math:`\hat N`
    times a per-observation estimate).

    :param sites: latent sites whose concatenation is the code (``("z",)`` for ``IIDVAE``).
    :param analytic_kl: closed-form KL in the ELBO (default).
    """

    def __init__(self, *, sites: Sequence[str] = ("z",), analytic_kl: bool = True) -> None:
        super().__init__()
        self.sites, self.analytic_kl = tuple(sites), analytic_kl

    @abstractmethod
    def penalty(self, codes: PosteriorCodes, n_obs: torch.Tensor) -> torch.Tensor:
        r"""The penalty :math:`R` (a scalar on the ELBO's scale) of ``codes``; ``n_obs`` is
        :math:`\hat N`, a scalar tensor of the ELBO's dtype and device."""

    def forward(
        self,
        model: Callable,
        guide: Callable,
        x: torch.Tensor,
        mask: torch.Tensor,
        *,
        num_groups: Optional[int] = None,
    ) -> torch.Tensor:
        t = elbo_terms(model, guide, x, mask, num_groups=num_groups, analytic_kl=self.analytic_kl)
        codes = posterior_codes(t.guide_trace, mask, self.sites)
        n_obs = observation_scale(mask, num_groups).to(t.kl)
        return -t.elbo + self.penalty(codes, n_obs)
