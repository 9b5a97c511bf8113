r"""The non-amortised baseline of the ML-VAE paper: stochastic variational inference (SVI) with
free variational parameters for every group and every observation (Hoffman et al. 2013; ML-VAE
supplement, Secs. 2.1 and 7).

.. math::
    q(u_i, \mathbf{v}_i) = \mathcal{N}\big(u_i;\, m_i, \operatorname{diag} s_i^2\big)
    \prod_{k=1}^{K_i} \mathcal{N}\big(v_{ik};\, m_{ik}, \operatorname{diag} s_{ik}^2\big)

The parameters belong to the groups of one data set (the paper's "embedding layer mapping each
sample to its non-shared parameters"). Nothing is shared between groups, so new groups need
inference of their own: build a guide for them and fit it with the decoder frozen (the paper's
"test-time inference"; :func:`pyro_groups.experiments.mlvae` does this).

The same family trains as ``GroupAutoGuide(AutoNormal, model)``
(:mod:`pyro_groups.guides.auto`), which needs every call to carry the batch's indices in the data
set (``group_index``). This guide takes ``group_index`` too, but does not need it: it recognises
each group by its observations (the key of a group is the bytes of its padded row with trailing
all-zero observations removed, which does not depend on how wide a batch is padded). That is what
lets it answer ``group_posterior(x, mask)`` / ``instance_posterior(x, u)`` like an amortised guide,
so that every function of :mod:`pyro_groups.evaluation` (which pass no index) works on the groups
it knows (whole groups only: a single observation of a group is a different group to it), and
what lets it train under :func:`~pyro_groups.training.fit` and in a plain ``pyro.infer.SVI`` loop
without indices. Two groups with identical observations cannot be told apart and are rejected at
construction; an unknown group raises :class:`~pyro_groups.data.GroupDataError`.
"""
from __future__ import annotations

import math
from typing import Optional

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule
from pyro.nn.module import to_pyro_module_
from torch import nn
from torch.nn.functional import softplus

from pyro_groups._naming import unique_name
from pyro_groups.data.batch import GroupDataError, zero_padding
from pyro_groups.data.dataset import GroupedData
from pyro_groups.guides.encoders import MIN_SCALE
from pyro_groups.models.group_vae import guide_inputs
from pyro_groups.validation import ArgumentTypeError, check_float, check_int

__all__ = ["NonAmortisedGuide"]


def _keys(x: torch.Tensor) -> list[bytes]:
    """One key per group of a zero-padded batch ``x`` ``[G, K, *event]``: its observations up to
    the last one that is not all zeros."""
    flat = x.detach().flatten(2).cpu()
    nonzero = (flat != 0).any(-1)  # [G, K]
    slots = torch.arange(1, flat.shape[1] + 1)
    last = (nonzero * slots).max(-1).values  # number of slots up to the last non-zero one
    return [flat[g, : int(n)].numpy().tobytes() for g, n in enumerate(last.tolist())]


class NonAmortisedGuide(PyroModule):
    """Free normal posteriors for the groups of ``data``: ``u`` ``[N, u_dim]`` and ``v``
    ``[N, K_max, v_dim]`` locations and (softplus) scales.

    Sites as :class:`~pyro_groups.guides.GroupGuide`: ``"u"`` ``[G, 1, u_dim]`` in the
    ``"groups"`` plate and ``"v"`` ``[G, K, v_dim]`` in the nested ``"instances"`` plate, masked.
    ``group_posterior`` / ``instance_posterior`` answer for the known groups, so the evaluation
    functions work on them.

    :param data: the groups whose posteriors the guide holds.
    :param u_dim: group code size.
    :param v_dim: instance code size.
    :param init_scale: initial posterior standard deviation (locations start at
        ``init_scale * N(0, 1)`` draws from torch's generator).
    :param name: Pyro name; unique by default.
    :raises GroupDataError: if two groups of ``data`` have identical observations.
    """

    def __init__(
        self,
        data: GroupedData,
        u_dim: int,
        v_dim: int,
        *,
        init_scale: float = 0.1,
        name: Optional[str] = None,
    ) -> None:
        super().__init__(unique_name("non_amortised_guide", name))
        if not isinstance(data, GroupedData):
            raise ArgumentTypeError(
                f"data must be the GroupedData whose groups the guide holds, got "
                f"{type(data).__name__}"
            )
        check_float(init_scale, "init_scale", min=MIN_SCALE, min_open=True)
        keys = _keys(zero_padding(data.x, data.mask))
        self._row = {key: i for i, key in enumerate(keys)}
        if len(self._row) != len(keys):
            raise GroupDataError(
                f"{len(keys) - len(self._row)} group(s) of the data repeat another group's "
                "observations exactly; a non-amortised guide cannot tell them apart"
            )
        self.u_dim, self.v_dim = check_int(u_dim, "u_dim", min=1), check_int(v_dim, "v_dim", min=1)
        n, k = data.mask.shape
        raw = math.log(math.expm1(init_scale - MIN_SCALE))
        self.u_loc = nn.Parameter(init_scale * torch.randn(n, self.u_dim))
        self.u_raw_scale = nn.Parameter(torch.full((n, self.u_dim), raw))
        self.v_loc = nn.Parameter(init_scale * torch.randn(n, k, self.v_dim))
        self.v_raw_scale = nn.Parameter(torch.full((n, k, self.v_dim), raw))
        to_pyro_module_(self)

    def group_index(self, x: torch.Tensor) -> torch.Tensor:
        """The rows ``[G]`` of the data set's groups in a zero-padded batch ``x``.

        :raises GroupDataError: for a group the guide was not built for.
        """
        rows = [self._row.get(key, -1) for key in _keys(x)]
        if -1 in rows:
            raise GroupDataError(
                f"{rows.count(-1)} group(s) of the batch are not groups of the data this "
                "non-amortised guide was built for (it knows whole groups, in their order); "
                "build a NonAmortisedGuide for them and fit it with the model frozen"
            )
        return torch.tensor(rows, device=self.u_loc.device)

    def group_posterior(self, x: torch.Tensor, mask: torch.Tensor) -> dist.TorchDistribution:
        """:math:`q(u_i)` with batch shape ``[G, 1]``."""
        idx = self.group_index(x)
        loc = self.u_loc[idx].unsqueeze(-2)
        scale = softplus(self.u_raw_scale[idx]).unsqueeze(-2) + MIN_SCALE
        return dist.Normal(loc, scale).to_event(1)

    def instance_posterior(
        self, x: torch.Tensor, u: Optional[torch.Tensor] = None
    ) -> dist.TorchDistribution:
        """:math:`q(v_{ik})` with batch shape ``[G, K]`` (``u`` is not used)."""
        idx = self.group_index(x)
        k = x.shape[1]
        loc = self.v_loc[idx, :k]
        scale = softplus(self.v_raw_scale[idx, :k]) + MIN_SCALE
        if loc.shape[1] < k:  # the batch is padded wider than the data set: pad the posterior
            pad = k - loc.shape[1]
            loc = torch.cat([loc, loc.new_zeros(loc.shape[0], pad, self.v_dim)], 1)
            scale = torch.cat([scale, scale.new_ones(scale.shape[0], pad, self.v_dim)], 1)
        return dist.Normal(loc, scale).to_event(1)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        *,
        num_groups: Optional[int] = None,
        group_index: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample ``"u"`` and ``"v"`` for the batch's groups (found by their observations; a
        given ``group_index`` only subsamples the plate, as in the model)."""
        x, groups, instances = guide_inputs(x, mask, num_groups, group_index)
        with groups:
            u = pyro.sample("u", self.group_posterior(x, mask))
            with instances, poutine.mask(mask=mask):
                v = pyro.sample("v", self.instance_posterior(x, u))
        return u, v
