r"""Posterior predictive checks through ArviZ.

For hold-out groups, draws :math:`u, \mathbf{v} \sim q(\cdot \mid \mathbf{x})` and
:math:`\mathbf{x}^{rep} \sim p(\mathbf{x} \mid u, \mathbf{v})` with :class:`pyro.infer.Predictive`
(the model is ``poutine.uncondition``-ed so that ``"x"`` is resampled), converts them to an
``arviz.InferenceData``, and compares test statistics :math:`T` of replicated and observed groups
by their posterior predictive tail probability

.. math:: p_T = \Pr\big(T(\mathbf{x}^{rep}) \ge T(\mathbf{x}) \mid \mathbf{x}\big),

for :math:`T` the within-group mean and the within-group standard deviation. Values near 0 or 1 flag
groups the fitted model does not reproduce.
"""
from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import torch
from pyro import poutine
from pyro.infer import Predictive
from torch import nn

from pyro_groups.data.batch import GroupBatch


def _arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az
    return az


@torch.no_grad()
def posterior_predictive(
    model: nn.Module, guide: nn.Module, batch: GroupBatch, *, num_samples: int = 100
) -> dict[str, torch.Tensor]:
    """Draws of ``u`` ``[S, G, u_dim]``, ``v`` ``[S, G, K, v_dim]`` and
    ``x`` ``[S, G, K, *event]``."""
    predictive = Predictive(
        poutine.uncondition(model),
        guide=guide,
        num_samples=num_samples,
        return_sites=("u", "v", "x"),
    )
    draws = predictive(batch.x, batch.mask)
    return {"u": draws["u"].squeeze(-2), "v": draws["v"], "x": draws["x"]}


def to_inference_data(batch: GroupBatch, draws: dict[str, torch.Tensor]) -> Any:
    """An ``arviz.InferenceData`` with ``posterior`` (``u``), ``posterior_predictive`` and
    ``observed_data`` (``x`` over the valid observations, flattened to an ``obs`` dimension with a
    ``group_of_obs`` coordinate)."""
    az = _arviz()
    mask = batch.mask.cpu()
    x_obs = batch.x.cpu()[mask].flatten(1).numpy()
    x_rep = draws["x"].cpu()[:, mask].flatten(2).numpy()
    group_of_obs = torch.arange(batch.num_groups).unsqueeze(-1).expand_as(mask)[mask].numpy()
    squeeze = x_obs.shape[-1] == 1
    idata = az.from_dict(
        posterior={"u": draws["u"].cpu().numpy()[None]},
        posterior_predictive={"x": (x_rep[..., 0] if squeeze else x_rep)[None]},
        observed_data={"x": x_obs[..., 0] if squeeze else x_obs},
        coords={"obs": np.arange(len(x_obs)), "group": np.arange(batch.num_groups)},
        dims={"u": ["group", "u_dim"], "x": ["obs"] if squeeze else ["obs", "feature"]},
    )
    # from_dict drops non-dimension coordinates: attach each observation's group afterwards
    for name in ("posterior_predictive", "observed_data"):
        setattr(idata, name, getattr(idata, name).assign_coords(group_of_obs=("obs", group_of_obs)))
    return idata


def _group_stats(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = mask.to(x.dtype).unsqueeze(-1)
    flat = x.flatten(mask.dim()).mean(-1, keepdim=True) if x.dim() > mask.dim() + 1 else x
    n = w.sum(-2)
    mean = (flat * w).sum(-2) / n
    var = ((flat - mean.unsqueeze(-2)).pow(2) * w).sum(-2) / (n - 1).clamp(min=1)
    return mean.squeeze(-1), var.sqrt().squeeze(-1)


def ppc_summary(batch: GroupBatch, draws: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Tail probabilities ``p_T`` per group of the within-group mean and standard deviation,
    and the fraction of groups whose ``p_T`` lies in the central 95 % (ideally about 0.95 or
    more)."""
    mask = batch.mask.cpu()
    obs_mean, obs_std = _group_stats(batch.x.cpu(), mask)
    rep_mean, rep_std = _group_stats(
        draws["x"].cpu(), mask.expand(draws["x"].shape[0], *mask.shape)
    )
    p_mean = (rep_mean >= obs_mean).double().mean(0).numpy()
    p_std = (rep_std >= obs_std).double().mean(0).numpy()

    def central(p: np.ndarray) -> float:
        return float(np.mean((p >= 0.025) & (p <= 0.975)))

    return {
        "p_mean": p_mean,
        "p_std": p_std,
        "central95_mean": central(p_mean),
        "central95_std": central(p_std),
    }


def plot_ppc(idata: Any, path: str | os.PathLike, *, num_pp_samples: int = 50) -> str:
    """ArviZ's posterior predictive density plot of ``x`` (at most ``num_pp_samples`` draws),
    saved to ``path``."""
    az = _arviz()
    num_pp_samples = min(num_pp_samples, int(idata.posterior_predictive.sizes["draw"]))
    from pyro_groups.plots import _pyplot

    plt = _pyplot()
    with warnings.catch_warnings():
        # arviz 0.23 calls a matplotlib API that matplotlib 3.11 deprecates; nothing to act on here.
        warnings.filterwarnings("ignore", message=".*deprecated.*", category=DeprecationWarning)
        ax = az.plot_ppc(idata, num_pp_samples=num_pp_samples, random_seed=0)
    fig = np.asarray(ax).ravel()[0].figure
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
