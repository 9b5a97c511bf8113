r"""UG-VAE: a global latent over random batches and a mixture prior on the local latent.

After "Unsupervised learning of global factors in deep generative models" (UG-VAE; Sec. 3.1,
eqs. 1-4). A *group* is a batch of :math:`B` observations, a random minibatch or a given group.
The paper's names are on the left, this package's site names on the right:

=====================  ==============  ================================================
paper                  site            shape
=====================  ==============  ================================================
global :math:`\beta`   ``"u"``         ``[G, 1, u_dim]`` in the ``"groups"`` plate
cluster :math:`d_i`    ``"d"``         ``[G, K]`` in ``"instances"`` (enumerated)
local :math:`z_i`      ``"v"``         ``[G, K, v_dim]`` in ``"instances"``
observation            ``"x"``         ``[G, K, *event]``
=====================  ==============  ================================================

so that every function of :mod:`pyro_groups.evaluation` works on it unchanged. Per group,

.. math::

    \beta \sim \mathcal{N}(0, I), \qquad
    d_i \sim \mathrm{Cat}(1/C), \qquad
    z_i \mid d_i, \beta \sim \mathcal{N}\big(\mu^{(d_i)}(\beta),
        \operatorname{diag} \sigma^{(d_i)}(\beta)^2\big), \qquad
    x_i \sim p_\theta(x \mid z_i, \beta),

with :math:`C` clusters (the paper's :math:`K`; ``K`` is the group size in this package),
:math:`C` component networks :math:`\beta \mapsto (\mu^{(c)}, \sigma^{(c)})` run as one batched
module (:class:`~pyro_groups.nn.ParallelMLP`), and a decoder on :math:`[z_i, \beta]`: the
package's decoder convention ``decoder(u, v)``, so :class:`~pyro_groups.models.MLPDecoder` and
:class:`~pyro_groups.nn_conv.ConvDecoder` work as they are (Gaussian or Bernoulli).

The site ``"d"`` is marked ``infer={"enumerate": "parallel"}``: train with
``TraceEnum_ELBO(max_plate_nesting=2)``, which sums over it exactly, either in the guide
(:class:`~pyro_groups.guides.UGVAEGuide` with ``enumerate_in="guide"``: the paper's
:math:`q(d_i \mid z_i)`, eqs. 10-11) or in this model (``enumerate_in="model"``: the guide has no
``"d"`` and :math:`p(z_i \mid \beta) = \frac{1}{C}\sum_c \mathcal{N}(z_i; \mu^{(c)}, \sigma^{(c)})`
is used as it is). The model checks this: trained against a guide by an ELBO that samples ``"d"``
(``Trace_ELBO`` and relatives, with gradients on) it raises ``ValueError``; forward sampling,
``Predictive``, ``infer_discrete`` and evaluation under ``torch.no_grad()`` (posterior predictive
checks replay guide draws of ``"d"``) are unaffected.

Padded slots (``mask`` false) are masked at ``"d"``, ``"v"`` and ``"x"`` and contribute exactly
zero, whether ``"d"`` is enumerated in the guide or in the model.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn.module import to_pyro_module_
from pyro.ops.indexing import Vindex
from pyro.poutine.block_messenger import BlockMessenger
from pyro.poutine.replay_messenger import ReplayMessenger
from pyro.poutine.runtime import _PYRO_STACK
from torch import nn
from torch.nn.functional import softplus

from pyro_groups._naming import unique_name
from pyro_groups.models.group_vae import GroupVAE, check_likelihood, prepare_inputs
from pyro_groups.nn import ParallelMLP
from pyro_groups.validation import ArgumentError, check_int

__all__ = ["ClusterComponents", "UGVAE"]

MIN_SCALE = 1e-4


class ClusterComponents(nn.Module):
    r"""The :math:`C` component networks :math:`\beta \mapsto (\mu^{(c)}(\beta),
    \sigma^{(c)}(\beta))` of eq. 3, as one batched module (independent weights per component).

    Maps ``u`` ``[..., u_dim]`` to ``(loc, scale)`` ``[..., C, v_dim]``.
    """

    def __init__(
        self, u_dim: int, v_dim: int, num_clusters: int, hidden: Sequence[int] = (64,)
    ) -> None:
        super().__init__()
        self.u_dim, self.v_dim, self.num_clusters = u_dim, v_dim, num_clusters
        self.net = ParallelMLP(u_dim, hidden, 2 * v_dim, copies=num_clusters)

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if u.shape[-1] != self.u_dim:
            raise ArgumentError(f"the components take u_dim={self.u_dim}, got u {list(u.shape)}")
        loc, raw = self.net(u).chunk(2, -1)
        return loc, softplus(raw) + MIN_SCALE


class UGVAE(GroupVAE):
    """UG-VAE's generative model (eqs. 1-4) in the package's nested plates.

    :param decoder: ``decoder(u, v)`` with ``u`` = :math:`\\beta` ``[..., G, 1, u_dim]`` and
        ``v`` = :math:`z` ``[..., G, K, v_dim]`` (e.g. ``MLPDecoder``, ``ConvDecoder``).
    :param num_clusters: :math:`C >= 1` mixture components (the paper's :math:`K`).
    :param u_dim: size of :math:`\\beta` (default ``decoder.u_dim``; must equal it).
    :param v_dim: size of :math:`z` (default ``decoder.v_dim``; must equal it).
    :param hidden: hidden widths of each component network.
    :param strict_enumeration: raise when an ELBO samples ``"d"`` instead of enumerating it.
        ``False`` allows a sampled ``"d"`` (a score-function estimate; the tests use it to compare
        with the exact sum).
    :param name: Pyro name; unique by default.
    :raises ArgumentError: (a ``ValueError``) for ``num_clusters < 1`` or sizes that do not
        match the decoder.
    """

    def __init__(
        self,
        decoder: nn.Module,
        num_clusters: int,
        u_dim: Optional[int] = None,
        v_dim: Optional[int] = None,
        *,
        hidden: Sequence[int] = (64,),
        strict_enumeration: bool = True,
        name: Optional[str] = None,
    ) -> None:
        num_clusters = check_int(num_clusters, "num_clusters", min=1)
        for key, given in (("u_dim", u_dim), ("v_dim", v_dim)):
            have = getattr(decoder, key, None)
            if given is not None and have is not None and int(given) != int(have):
                raise ArgumentError(
                    f"{key}={given} does not match the decoder's {key}={have} (the decoder "
                    f"takes [z, beta] = [v, u])"
                )
        super().__init__(decoder, u_dim, v_dim, name=unique_name("ugvae", name))
        self.num_clusters = num_clusters
        self.strict_enumeration = strict_enumeration
        self.components = ClusterComponents(self.u_dim, self.v_dim, self.num_clusters, hidden)
        to_pyro_module_(self)

    def mixture(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Component parameters :math:`(\mu^{(c)}(\beta), \sigma^{(c)}(\beta))`
        ``[..., C, v_dim]`` of ``u`` ``[..., u_dim]``."""
        return self.components(u)

    def forward(
        self,
        x: Optional[torch.Tensor],
        mask: torch.Tensor,
        *,
        num_groups: Optional[int] = None,
        **plate_kwargs: Any,
    ) -> torch.Tensor:
        """Run the model on ``x`` ``[G, K, *event]`` (or sample it when ``x`` is ``None``).

        :param num_groups: size ``N`` of the data set this batch of groups was drawn from.
        :param plate_kwargs: passed on to the shared plate helper.
        :returns: the observations (``x`` itself when given).
        """
        x, groups, instances, ref = prepare_inputs(x, mask, num_groups, **plate_kwargs)
        with groups:
            u = pyro.sample("u", self.prior(self.u_dim, ref))
            _check_size(u, self.u_dim, "u (beta)")
            loc, scale = self.mixture(u)
            with instances, poutine.mask(mask=mask):
                d = self._sample_cluster(ref)
                z_fn = dist.Normal(Vindex(loc)[..., d, :], Vindex(scale)[..., d, :])
                v = pyro.sample("v", z_fn.to_event(1))
                _check_size(v, self.v_dim, "v (z)")
                px = self.decoder(u, v)
                check_likelihood(px, x, mask)
                return pyro.sample("x", px, obs=x)

    def _sample_cluster(self, ref: torch.Tensor) -> torch.Tensor:
        prior = dist.Categorical(logits=ref.new_zeros(self.num_clusters))
        with poutine.trace() as tape:
            d = pyro.sample("d", prior, infer={"enumerate": "parallel"})
        site = tape.trace.nodes["d"]
        enum_dim = (site["infer"] or {}).get("_enumerate_dim")
        if enum_dim is not None and d.dim() >= -enum_dim and d.shape[enum_dim] != self.num_clusters:
            raise ArgumentError(
                f"'d' is enumerated over {d.shape[enum_dim]} values but the model has "
                f"num_clusters={self.num_clusters}: the guide and the model disagree"
            )
        if (
            self.strict_enumeration
            and enum_dim is None
            and not site["is_observed"]
            and _under_elbo()
        ):
            raise ArgumentError(
                "UG-VAE's cluster site 'd' was sampled, not enumerated, while the model ran "
                "against a guide: this ELBO cannot enumerate. Train with "
                "TraceEnum_ELBO(max_plate_nesting=2), which sums over 'd' exactly (eqs. 10-11), "
                "or build the model with strict_enumeration=False to accept a sampled 'd'."
            )
        return d


def _under_elbo() -> bool:
    """Whether the model is being trained against a guide: replayed against a guide trace (how
    Pyro's ELBOs run it) with gradients on, outside a blocked structural probe such as
    ``ELBO._guess_max_plate_nesting``. Evaluation under ``torch.no_grad()`` (e.g.
    :func:`~pyro_groups.evaluation.posterior_predictive`, which replays guide draws that include a
    sampled ``"d"``) passes. Reads Pyro's handler stack, ``pyro.poutine.runtime._PYRO_STACK``,
    which has no public accessor."""
    if not torch.is_grad_enabled():
        return False
    replaying = any(isinstance(m, ReplayMessenger) for m in _PYRO_STACK)
    return replaying and not any(isinstance(m, BlockMessenger) for m in _PYRO_STACK)


def _check_size(value: torch.Tensor, size: int, what: str) -> None:
    if value.shape[-1] != size:
        raise ArgumentError(
            f"{what} has size {value.shape[-1]} ({list(value.shape)}), but the model's is {size}: "
            "the guide and the model disagree"
        )
