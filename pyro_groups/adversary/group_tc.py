r"""group-tcVAE (Tran et al.): total correlation of each member's code and a KL tying the pair.

For a pair :math:`(x, x')` sharing the group factors :math:`c`, with codes
:math:`z = [u, v]` and :math:`z' = [u', v']` (:math:`u = z_c`, :math:`v = z_{\setminus c}`,
:class:`~pyro_groups.models.paired.PairedVAE` and :class:`~pyro_groups.guides.paired.PairedGuide`),
the paper's Eq. (3) maximises

.. math::
    \mathcal{L} = \sum_{\tilde x \in \{x, x'\}} \Big(\mathbb{E}_{q}[\log p_\theta(\tilde x \mid
    \tilde u, \tilde v)] - \mathrm{KL}\big(q(\tilde u, \tilde v \mid \tilde x) \,\|\, p(z)\big)\Big)
    - \beta \sum_{\tilde z \in \{z, z'\}} \mathrm{TC}(\tilde u, \tilde v)
    - \gamma\, \mathrm{KL}_{\mathrm{pair}}(q(u \mid x), q(u' \mid x')).

The first sum is the model's ELBO (``Trace_ELBO`` / ``fit``'s loss); :class:`GroupTCVAEPenalty`
returns the rest, negated, as the differentiable term ``fit(..., penalties=[pen])`` adds:

* :math:`\mathrm{TC}(u, v) = \mathrm{KL}(q(u, v) \,\|\, \bar q(u, v))` of the aggregate posterior of
  one member's code, estimated by a density-ratio discriminator
  (:mod:`pyro_groups.adversary.tc`, Kim & Mnih 2018) at one of three factorisations
  (:func:`~pyro_groups.adversary.tc.tc_blocks`): ``"inter"``
  :math:`\bar q = q(u)\, q(v)`, ``"inter_intra"`` :math:`\bar q = q(u) \prod_j q(v_j)`, ``"full"``
  :math:`\bar q = \prod_d q(z_d)` (FactorVAE);
* :math:`\mathrm{KL}_{\mathrm{pair}}` (:func:`pair_kl`), analytic for normal posteriors.

Choices where the paper is vague or inconsistent:

- Eq. (3) prints :math:`-\sum_{\tilde z}(\beta\,\mathrm{TC} - \gamma\,\mathrm{KL})`, which would
  *reward* the KL; the text ("a KL-based regularization" making the members' group codes agree)
  means it is minimised, as here.
- The KL sits inside the sum over the two members, so it is counted once per member; we give each
  member its own direction: :math:`\mathrm{KL}_{\mathrm{pair}} = \mathrm{KL}(q_1 \| q_2) +
  \mathrm{KL}(q_2 \| q_1)` (``symmetric=True``, invariant to the pair's order);
  ``symmetric=False`` is :math:`\mathrm{KL}(q_1 \| q_2)`. Groups of :math:`K > 2` use the mean over
  the other members, so each member still contributes one KL per direction (see :func:`pair_kl`).
- One discriminator serves both members: the codes of all valid members of the batch are pooled
  and permuted together (both are draws of the same aggregate posterior). As in
  :class:`~pyro_groups.adversary.factor_vae.FactorVAEPenalty` (whose discriminator, optimizer,
  ``critic_step`` and checkpointing this module inherits), the permuted codes come from the same
  minibatch and the discriminator takes one step per VAE step, on the same codes.
- Scale: ELBO, TC and KL are per observation / per pair in the paper; on the data-set scale of
  Pyro's ELBO the TC is multiplied by the estimated number of observations and the KL by
  :math:`N / G` (see :func:`~pyro_groups.objectives.elbo_terms.observation_scale`).
- The paper's grid: :math:`\beta \in \{10, 20, 30, 40, 50, 100\}`, the KL weight (called
  :math:`\lambda` there) in :math:`\{1, 8, 16, 32, 64\}`, 32 pairs per batch.

A practical note (measured in ``benchmarks/group_tcvae.py``): Eq. (3) makes the members' group
codes agree but does not reward putting the shared factors in :math:`u` rather than :math:`v`;
when :math:`v` has room for every factor, the per-member :math:`u` may collapse to the prior
(pair KL near 0). Give :math:`v` no more dimensions than the non-shared factors need.

In a plain SVI loop (``PenalizedLoss`` adds the penalty to any ELBO):

.. code-block:: python

    pen = GroupTCVAEPenalty(u_dim=5, v_dim=5, beta=10.0, gamma=8.0, level="inter")
    loss = PenalizedLoss(Trace_ELBO(), [pen])
    model, guide = PairedVAE(decoder), pair_guide("group_tcvae", ...)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-4}), loss)
    for batch in pairs.batches(32):
        svi.step(batch.x, batch.mask, num_groups=len(pairs))  # the VAE's step (one guide pass)
        loss.step_critics()                                   # the discriminator's, same codes

Reference: L. Tran, S. Asgari Taghanaki, A. H. Khasahmadi, A. Sanghi, "Weakly-supervised group
disentanglement using total correlation" (Autodesk AI Lab), Sec. 3, Eq. (2)-(3).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from pyro.poutine import Trace
from torch import Tensor

from pyro_groups.data.batch import GroupBatch
from pyro_groups.adversary.base import Penalty
from pyro_groups.adversary.base import guide_trace as _guide_trace
from pyro_groups.objectives.elbo_terms import _normal_params, observation_scale, posterior_codes
from pyro_groups.adversary.factor_vae import FactorVAEPenalty
from pyro_groups.adversary.tc import tc_blocks

__all__ = ["GroupTCVAEPenalty", "PairKLPenalty", "normal_kl", "pair_kl", "site_normal"]


def normal_kl(loc_p: Tensor, scale_p: Tensor, loc_q: Tensor, scale_q: Tensor) -> Tensor:
    r"""Closed-form KL between diagonal normals, summed over the last dimension.

    .. math::
        \mathrm{KL}(\mathcal{N}(\mu_p, \sigma_p^2) \,\|\, \mathcal{N}(\mu_q, \sigma_q^2))
        = \sum_d \Big(\log \frac{\sigma_{q,d}}{\sigma_{p,d}}
        + \frac{\sigma_{p,d}^2 + (\mu_{p,d} - \mu_{q,d})^2}{2 \sigma_{q,d}^2} - \frac12\Big)
    """
    ratio = (scale_p / scale_q).pow(2)
    return 0.5 * (ratio + ((loc_p - loc_q) / scale_q).pow(2) - 1.0 - ratio.log()).sum(-1)


def pair_kl(loc: Tensor, scale: Tensor, mask: Tensor, *, symmetric: bool = True) -> Tensor:
    r"""KL between the group posteriors of the members of each group, ``[G]``.

    With :math:`q_k = \mathcal{N}(\mu_k, \operatorname{diag}\sigma_k^2)` the posterior of member
    :math:`k` and :math:`n` valid members,

    .. math::
        \mathrm{KL}_{\mathrm{pair}} = \frac{1}{n - 1} \sum_{j \ne k} \mathrm{KL}(q_j \| q_k)
        \quad (\text{symmetric}), \qquad
        \frac{1}{n - 1} \sum_{j < k} \mathrm{KL}(q_j \| q_k) \quad (\text{not}),

    so for a pair it is :math:`\mathrm{KL}(q_1 \| q_2) + \mathrm{KL}(q_2 \| q_1)`, resp.
    :math:`\mathrm{KL}(q_1 \| q_2)`, and a group of one gives 0. Padded slots never count.

    :param loc: ``[G, K, d]`` posterior means (``[G, 1, d]`` is broadcast: the KL is then 0).
    :param scale: ``[G, K, d]`` posterior standard deviations.
    :param mask: ``[G, K]`` bool.
    :param symmetric: both directions (default) or only :math:`j < k`.
    """
    g, k = mask.shape
    loc, scale = loc.expand(g, k, loc.shape[-1]), scale.expand(g, k, scale.shape[-1])
    kl = normal_kl(loc[:, :, None], scale[:, :, None], loc[:, None], scale[:, None])  # [G, K, K]
    valid = mask[:, :, None] & mask[:, None, :]
    idx = torch.arange(k, device=mask.device)
    j, i = torch.meshgrid(idx, idx, indexing="ij")
    keep = valid & ((j != i) if symmetric else (j < i))
    total = torch.where(keep, kl, torch.zeros_like(kl)).sum((-1, -2))
    n = mask.sum(-1).to(total.dtype)
    return total / (n - 1).clamp(min=1.0)


def site_normal(trace: Trace, mask: Tensor, site: str = "u") -> tuple[Tensor, Tensor]:
    """The location and scale of a (diagonal) normal guide site, broadcast to ``[G, K, d]``."""
    loc, scale = _normal_params(trace.nodes[site]["fn"])
    g, k = mask.shape
    return loc.expand(g, k, loc.shape[-1]), scale.expand(g, k, scale.shape[-1])


def _pair_scale(mask: Tensor, num_groups: Optional[int]) -> float:
    g = mask.shape[0]
    return (g if num_groups is None else int(num_groups)) / g


class PairKLPenalty(Penalty):
    r"""Penalty module ``pen(model, guide, batch, num_groups=N)`` :math:`= \gamma \frac{N}{G}
    \sum_g \mathrm{KL}_{\mathrm{pair}, g}` (:func:`pair_kl` of the guide's site ``site``).

    Only the KL term of group-tcVAE; :class:`GroupTCVAEPenalty` holds both terms on one guide trace.
    """

    def __init__(self, gamma: float = 8.0, *, symmetric: bool = True, site: str = "u") -> None:
        super().__init__()
        self.gamma, self.symmetric, self.site = float(gamma), bool(symmetric), site

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, symmetric={self.symmetric}, site={self.site!r}"

    def forward(
        self,
        model: Callable,
        guide: Callable,
        batch: GroupBatch,
        *,
        num_groups: Optional[int] = None,
        guide_trace: Optional[Trace] = None,
    ) -> Tensor:
        trace = _guide_trace(guide, batch, num_groups, guide_trace)
        loc, scale = site_normal(trace, batch.mask, self.site)
        kl = pair_kl(loc, scale, batch.mask, symmetric=self.symmetric).sum()
        return self.gamma * _pair_scale(batch.mask, num_groups) * kl


class GroupTCVAEPenalty(FactorVAEPenalty):
    r"""The penalty of group-tcVAE's Eq. (3) on the data-set scale:

    .. math::
        \beta\, \hat N_{\mathrm{obs}}\, \widehat{\mathrm{TC}}(u, v)
        + \gamma\, \frac{N}{G} \sum_{g=1}^{G} \mathrm{KL}_{\mathrm{pair}, g},

    with its own TC discriminator, optimizer and ``critic_step`` (inherited from
    :class:`~pyro_groups.adversary.factor_vae.FactorVAEPenalty`; never in the VAE's optimizer,
    saved in ``state_dict`` with its optimizer, so ``fit`` checkpoints and resumes it).

    :param u_dim: group code size.
    :param v_dim: instance code size.
    :param beta: TC weight (0 turns the TC off in the loss; the discriminator still trains).
    :param gamma: weight of the KL between the members' group posteriors (0: off).
    :param level: ``"inter"``, ``"inter_intra"`` or ``"full"`` (:func:`tc_blocks`).
    :param within: for ``"inter_intra"``, the code split into single dimensions (``"v"``, the
        paper's level 2, or ``"u"``).
    :param symmetric: :func:`pair_kl` in both directions (default) or :math:`\mathrm{KL}(q_1\|q_2)`.
    :param hidden: the discriminator's hidden widths (FactorVAE's 6 x 1000 by default; smaller
        ones are much faster on a CPU).
    :param lr: the discriminator's Adam learning rate.
    :param betas: the discriminator's Adam betas.
    :param sites: the group and instance sites; the code is their concatenation ``[u, v]``.
    """

    def __init__(
        self,
        u_dim: int,
        v_dim: int,
        beta: float = 10.0,
        gamma: float = 8.0,
        level: str = "inter",
        *,
        within: str = "v",
        symmetric: bool = True,
        hidden: Sequence[int] = (1000,) * 6,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.5, 0.9),
        sites: Sequence[str] = ("u", "v"),
    ) -> None:
        super().__init__(u_dim + v_dim, beta, hidden=hidden, lr=lr, betas=betas, sites=sites)
        self.u_dim, self.v_dim, self.level, self.within = int(u_dim), int(v_dim), level, within
        self.blocks = tc_blocks(self.u_dim, self.v_dim, level, within)
        self.beta, self.gamma, self.symmetric = float(beta), float(gamma), bool(symmetric)

    def extra_repr(self) -> str:
        return (f"u_dim={self.u_dim}, v_dim={self.v_dim}, beta={self.beta}, gamma={self.gamma}, "
                f"level={self.level!r}, symmetric={self.symmetric}, sites={self.sites}")

    def terms(
        self,
        guide: Callable,
        batch: GroupBatch,
        *,
        num_groups: Optional[int] = None,
        guide_trace: Optional[Trace] = None,
    ) -> dict[str, Tensor]:
        """Differentiable ``{"tc": mean TC estimate per observation, "pair_kl": [G] per group}``
        from one trace of the guide (``guide_trace``, or a fresh one)."""
        trace = _guide_trace(guide, batch, num_groups, guide_trace)
        z = posterior_codes(trace, batch.mask, self.sites).z
        loc, scale = site_normal(trace, batch.mask, self.sites[0])
        kl = pair_kl(loc, scale, batch.mask, symmetric=self.symmetric)
        return {"tc": self.tc(z), "pair_kl": kl}

    def forward(
        self,
        model: Callable,
        guide: Callable,
        batch: GroupBatch,
        *,
        num_groups: Optional[int] = None,
        guide_trace: Optional[Trace] = None,
    ) -> Tensor:
        t = self.terms(guide, batch, num_groups=num_groups, guide_trace=guide_trace)
        n_obs = observation_scale(batch.mask, num_groups).to(t["tc"])
        return (self.beta * n_obs * t["tc"]
                + self.gamma * _pair_scale(batch.mask, num_groups) * t["pair_kl"].sum())
