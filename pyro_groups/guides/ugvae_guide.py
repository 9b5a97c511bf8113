r"""UG-VAE's guide :math:`q(\mathbf{Z} \mid \mathbf{X})\, q(\mathbf{d} \mid \mathbf{Z})\,
q(\beta \mid \mathbf{X}, \mathbf{Z})` (Sec. 3.2, eqs. 5-9).

In the package's site names (:math:`\beta` = ``"u"``, :math:`z_i` = ``"v"``, :math:`d_i` =
``"d"``; see :mod:`pyro_groups.models.ugvae`), for a group of :math:`B` observations:

.. math::

    q(z_i \mid x_i) = \mathcal{N}\big(\mu_{\phi_z}(x_i), \operatorname{diag}\sigma_{\phi_z}(x_i)^2
        \big), \qquad
    q(d_i \mid z_i) = \mathrm{Cat}\big(\pi_{\phi_d}(z_i)\big),

    q(\beta \mid \mathbf{X}, \mathbf{Z}) \propto \prod_{i=1}^{B}
        \mathcal{N}\big(\mu_{\phi_\beta}([x_i, \pi_{\phi_d}(z_i)]),
        \operatorname{diag}\sigma_{\phi_\beta}([x_i, \pi_{\phi_d}(z_i)])^2\big),

the product taken with :func:`~pyro_groups.guides.aggregators.product_of_normals` (eq. 9:
precisions add, means are precision-weighted; no prior factor, as in the paper). The guide samples
:math:`z`, then :math:`\beta`, which depends on the cluster *probabilities*
:math:`\pi(z_i)`, not on :math:`d_i`, then :math:`d` (marked
``infer={"enumerate": "parallel"}``, so that ``TraceEnum_ELBO`` sums over it; sampling the global
:math:`\beta` after a local enumerated site would break Pyro's plate-independence requirement).

With ``enumerate_in="guide"`` (default; **the paper's**) ``TraceEnum_ELBO(max_plate_nesting=2)``
computes eqs. 10-11,

.. math::

    \mathcal{L} = \mathbb{E}_{q(\beta)} \Big[ \sum_{i=1}^{B} \mathbb{E}_{q(z_i \mid x_i)}
        \log p(x_i \mid z_i, \beta)
        - \mathbb{E}_{q(d_i \mid z_i)} \mathrm{KL}\big(q(z_i \mid x_i) \,\|\,
            p(z_i \mid d_i, \beta)\big)
        - \mathrm{KL}\big(q(d_i \mid z_i) \,\|\, p(d_i)\big) \Big]
        - \mathrm{KL}\big(q(\beta \mid \mathbf{X}, \mathbf{Z}) \,\|\, p(\beta)\big),

with the expectations over :math:`d_i` exact sums and the Gaussian terms estimated from one draw
of :math:`z` and :math:`\beta` (the paper does not say how it evaluates them).

With ``enumerate_in="model"`` the guide has no ``"d"`` site: the model's enumeration
marginalises :math:`d` out of :math:`p(z_i \mid \beta)` exactly, which gives a bound at least as
tight (equal when :math:`q(d \mid z)` is the exact posterior :math:`p(d \mid z, \beta)`), and
:math:`\pi_{\phi_d}` is then only a learned feature of :math:`q(\beta)`; cluster assignments come
from the model (:func:`pyro_groups.evaluation.clusters.cluster_assignments` with
``method="model"``).

Padded slots are masked at ``"v"`` and ``"d"`` and never reach :math:`q(\beta)`.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer.util import is_validation_enabled
from pyro.nn import PyroModule
from pyro.nn.module import to_pyro_module_
from torch import nn

from pyro_groups._naming import unique_name
from pyro_groups.data.batch import check_group_inputs, zero_padding
from pyro_groups.guides.aggregators import product_of_normals
from pyro_groups.guides.encoders import InstanceEncoder, features, normal_params
from pyro_groups.models.group_vae import group_plates
from pyro_groups.nn import MLP
from pyro_groups.validation import ArgumentError, check_choice, check_int

__all__ = ["ENUMERATE_IN", "UGVAEGuide"]

ENUMERATE_IN = ("guide", "model")


class UGVAEGuide(PyroModule):
    """UG-VAE's amortised guide with the model's call signature ``(x, mask, *, num_groups=None)``.

    Sites ``"v"`` (:math:`z`) ``[G, K, v_dim]`` and ``"d"`` ``[G, K]`` in the ``"instances"``
    plate, ``"u"`` (:math:`\\beta`) ``[G, 1, u_dim]`` in ``"groups"``.

    :param x_dim: observation size (or the ``body``'s output size).
    :param u_dim: size of :math:`\\beta`.
    :param v_dim: size of :math:`z`.
    :param num_clusters: :math:`C >= 1` clusters (must match the model's).
    :param hidden: hidden widths of the :math:`z` and :math:`\\beta` encoders.
    :param cluster_hidden: hidden widths of :math:`\\pi_{\\phi_d}`.
    :param body: a factory of a per-observation feature network (e.g.
        :func:`~pyro_groups.nn_conv.conv_body`), called once for each of the two encoders.
    :param enumerate_in: ``"guide"`` (the paper's) or ``"model"`` (see the module docstring).
    :param name: Pyro name; unique by default.
    """

    def __init__(
        self,
        x_dim: int,
        u_dim: int,
        v_dim: int,
        num_clusters: int,
        *,
        hidden: Sequence[int] = (64, 64),
        cluster_hidden: Sequence[int] = (64,),
        body: Optional[Callable[[], nn.Module]] = None,
        enumerate_in: str = "guide",
        name: Optional[str] = None,
    ) -> None:
        num_clusters = check_int(num_clusters, "num_clusters", min=1)
        check_choice(enumerate_in, "enumerate_in", ENUMERATE_IN)
        super().__init__(unique_name("ugvae_guide", name))
        make_body: Callable[[], Optional[nn.Module]] = body or (lambda: None)
        self.u_dim, self.v_dim, self.num_clusters = u_dim, v_dim, int(num_clusters)
        self.enumerate_in = enumerate_in
        self.instance_encoder = InstanceEncoder(x_dim, v_dim, 0, hidden, body=make_body())
        self.cluster_net = MLP(v_dim, cluster_hidden, self.num_clusters)
        self.group_body = make_body()
        self.group_net = MLP(x_dim + self.num_clusters, hidden, 2 * u_dim)
        to_pyro_module_(self)

    def instance_posterior(
        self, x: torch.Tensor, u: Optional[torch.Tensor] = None
    ) -> dist.TorchDistribution:
        """:math:`q(z_i \\mid x_i)` with batch shape ``[G, K]`` (``u`` is not used)."""
        return self.instance_encoder(x)

    def cluster_logits(self, v: torch.Tensor) -> torch.Tensor:
        """Logits of :math:`q(d_i \\mid z_i)` ``[..., C]`` of ``v`` ``[..., v_dim]``."""
        if v.shape[-1] != self.v_dim:
            raise ArgumentError(
                f"the cluster network takes v_dim={self.v_dim}, got {list(v.shape)}"
            )
        return self.cluster_net(v)

    def cluster_posterior(self, v: torch.Tensor) -> dist.Categorical:
        """:math:`q(d_i \\mid z_i)` (eq. 7) for codes ``v`` ``[..., v_dim]``."""
        return dist.Categorical(logits=self.cluster_logits(v))

    def group_posterior(
        self, x: torch.Tensor, mask: torch.Tensor, v: Optional[torch.Tensor] = None
    ) -> dist.TorchDistribution:
        """:math:`q(\\beta \\mid \\mathbf{X}, \\mathbf{Z})` (eqs. 8-9), batch shape ``[G, 1]``.

        ``v`` are the codes :math:`z` ``[G, K, v_dim]``; without them the means of
        :math:`q(z \\mid x)` are used (as :func:`pyro_groups.evaluation.encode` does).
        """
        if v is None:
            v = self.instance_posterior(x).mean
        return self._group_posterior(x, mask, self.cluster_logits(v))

    def _group_posterior(
        self, x: torch.Tensor, mask: torch.Tensor, logits: torch.Tensor
    ) -> dist.TorchDistribution:
        h = torch.cat([features(x, self.group_body), logits.softmax(-1)], -1)
        loc, scale = normal_params(self.group_net(h))
        loc, scale = product_of_normals(loc, scale, mask)
        return dist.Normal(loc, scale).to_event(1)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        *,
        num_groups: Optional[int] = None,
        **plate_kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        check_group_inputs(x, mask, values=is_validation_enabled())
        x = zero_padding(x, mask)
        groups, instances = group_plates(mask, num_groups, **plate_kwargs)
        with groups:
            with instances, poutine.mask(mask=mask):
                v = pyro.sample("v", self.instance_posterior(x))
            logits = self.cluster_logits(v)
            u = pyro.sample("u", self._group_posterior(x, mask, logits))
            if self.enumerate_in == "guide":
                with instances, poutine.mask(mask=mask):
                    q_d = dist.Categorical(logits=logits)
                    pyro.sample("d", q_d, infer={"enumerate": "parallel"})
        return u, v
