r"""Posterior predictive checks and information criteria through ArviZ.

For hold-out groups, each of ``S`` draws runs the guide, :math:`(u, \mathbf{v}) \sim q(\cdot \mid
\mathbf{x})`, replays the model on those codes, and from the model's observation site ``"x"``
takes a replicate :math:`\mathbf{x}^{rep} \sim p(\mathbf{x} \mid u, \mathbf{v})` and the pointwise
log-likelihood of the data :math:`\log p(x_{ik} \mid u_i, v_{ik})`. The latent sites are
*discovered* from the guide's trace, so every model family works: ``GroupVAE`` (``"u"``,
``"v"``), ``PairedVAE`` (per-member ``"u"``), ``IIDVAE`` (``"z"``), or any model whose guide
samples other sites. Sites only the model samples (e.g. a discrete site summed out by
enumeration during training) are not part of the posterior and are not reported.

:func:`to_inference_data` turns the draws into an ``arviz.InferenceData`` (one chain of ``S``
independent draws) with ``posterior`` (every latent site), ``posterior_predictive``,
``log_likelihood`` and ``observed_data``, so that ``az.plot_ppc``, ``az.summary``, ``az.loo`` and
``az.waic`` run on it. :func:`ppc_summary` compares test statistics :math:`T` of replicated and
observed groups by their posterior predictive tail probability

.. math:: p_T = \Pr\big(T(\mathbf{x}^{rep}) \ge T(\mathbf{x}) \mid \mathbf{x}\big),

for :math:`T` the within-group mean and the within-group standard deviation. Values near 0 or 1
flag groups the fitted model does not reproduce.

**Which likelihood LOO / WAIC see.** The ``log_likelihood`` group holds the *conditional*
likelihood :math:`\log p(x_{ik} \mid u_i^{(s)}, v_{ik}^{(s)})` of each valid observation at each
draw :math:`s` from the amortised guide :math:`q`, not the marginal
:math:`\log p(x_{ik} \mid \mathbf{x}_{-ik})`. Two approximations follow, and ArviZ's numbers should
be read as a diagnostic and for comparing guides or decoders on the same data, not as an exact
expected log predictive density: (1) the draws come from :math:`q`, not the exact posterior, so
PSIS importance-weights draws of an approximation (ArviZ's Pareto :math:`\hat k` says where
this fails); (2) each instance code :math:`v_{ik}` is informed by its own observation only, so
leaving :math:`x_{ik}` out changes :math:`v_{ik}`'s posterior completely, and leave-one-out on
the conditional likelihood is optimistic with large :math:`\hat k`. ``pointwise="group"`` sums
the log-likelihood over each group's observations (leave-one-*group*-out), where the second
issue affects the group code :math:`u_i` instead.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Mapping

import numpy as np
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from torch import nn

from pyro_groups.data.batch import GroupBatch
from pyro_groups.data.dataset import GroupedData
from pyro_groups.validation import ArgumentError, ArgumentTypeError, check_choice, check_int

__all__ = [
    "PosteriorDraws",
    "plot_ppc",
    "posterior_predictive",
    "ppc_summary",
    "to_inference_data",
]

OBSERVED = "x"
LOG_LIKELIHOOD = "log_likelihood"


def _arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az
    return az


class PosteriorDraws(dict):
    """Draws keyed by site name, each tensor with a leading sample dimension ``S``.

    Besides the latent sites (e.g. ``"u"`` ``[S, G, u_dim]``, ``"v"`` ``[S, G, K, v_dim]``) it
    holds ``"x"`` (replicates ``[S, G, K, *event]``) and ``"log_likelihood"`` (``[S, G, K]``,
    zero in padded slots). ``levels[name]`` says where a latent site lives: ``"group"`` (one
    value per group: ``[S, G, *event]``), ``"instance"`` (one per observation:
    ``[S, G, K, *event]``) or ``"global"``.
    """

    def __init__(self, *args: Any, levels: Mapping[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.levels: dict[str, str] = dict(levels or {})


def _as_batch(batch: GroupBatch | GroupedData) -> GroupBatch:
    if isinstance(batch, GroupedData):
        return batch[torch.arange(len(batch))]
    if not isinstance(batch, GroupBatch):
        raise ArgumentTypeError(
            f"batch must be a GroupBatch or a GroupedData, got {type(batch).__name__}"
        )
    return batch


def _latent_sites(trace: Any) -> dict[str, dict[str, Any]]:
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample"
        and not site["is_observed"]
        and not site_is_subsample(site)
        and not site["infer"].get("is_auxiliary", False)
    }


def _level(site: dict[str, Any]) -> str:
    plates = {frame.name for frame in site["cond_indep_stack"]}
    if "instances" in plates:
        return "instance"
    return "group" if "groups" in plates else "global"


def _group_value(value: torch.Tensor, event_dim: int) -> torch.Tensor:
    """``[G, 1, *event]`` -> ``[G, *event]`` (the instance plate's broadcast dimension)."""
    dim = value.dim() - event_dim - 1
    if dim >= 1 and value.shape[dim] == 1:
        return value.squeeze(dim)
    return value


@torch.no_grad()
def posterior_predictive(
    model: nn.Module,
    guide: nn.Module,
    batch: GroupBatch | GroupedData,
    *,
    num_samples: int = 100,
    **kwargs: Any,
) -> PosteriorDraws:
    """Draw ``num_samples`` times: latent codes from the guide, then replicates and the pointwise
    log-likelihood of the data from the model given those codes.

    :param model: a model with the package's signature ``(x, mask)`` and an observed site
        ``"x"``.
    :param guide: its guide; the latent sites it samples are discovered from its trace.
    :param batch: the groups to check (a :class:`GroupBatch`, or a whole :class:`GroupedData`).
    :param kwargs: keyword arguments of both the guide and the model call, e.g.
        ``num_groups=len(data), group_index=batch.index`` for a guide with per-group parameters
        (:class:`~pyro_groups.guides.auto.GroupAutoGuide`), so that it reads those groups'
        parameters. They do not change the log-likelihood (which is never scaled).
    :returns: a :class:`PosteriorDraws`: each latent site with a leading ``S`` (group-level
        sites ``[S, G, *event]``, instance-level ``[S, G, K, *event]``), ``"x"``
        ``[S, G, K, *event]`` and ``"log_likelihood"`` ``[S, G, K]``.
    :raises ArgumentError: for ``num_samples < 1``, or a model without an observed ``"x"``.
    """
    num_samples = check_int(num_samples, "num_samples", min=1)
    batch = _as_batch(batch)
    x, mask = batch.x, batch.mask
    samples: dict[str, list[torch.Tensor]] = {}
    levels: dict[str, str] = {}
    for _ in range(num_samples):
        guide_trace = poutine.trace(guide).get_trace(x, mask, **kwargs)
        replayed = poutine.replay(model, trace=guide_trace)
        model_trace = poutine.trace(replayed).get_trace(x, mask, **kwargs)
        site = model_trace.nodes.get(OBSERVED)
        if site is None or site["type"] != "sample" or not site["is_observed"]:
            raise ArgumentError(
                f"the model has no observed site {OBSERVED!r}; posterior predictive checks need "
                "the model to observe x with pyro.sample('x', ..., obs=x)"
            )
        for name, latent in _latent_sites(guide_trace).items():
            level = levels.setdefault(name, _level(latent))
            value = latent["value"]
            if level == "group":
                value = _group_value(value, latent["fn"].event_dim)
            samples.setdefault(name, []).append(value)
        fn: Any = site["fn"]
        samples.setdefault(OBSERVED, []).append(fn.sample())
        log_lik = fn.log_prob(x).expand(mask.shape)
        samples.setdefault(LOG_LIKELIHOOD, []).append(log_lik.masked_fill(~mask, 0.0))
    return PosteriorDraws({k: torch.stack(v) for k, v in samples.items()}, levels=levels)


def _guess_level(value: torch.Tensor, mask: torch.Tensor) -> str:
    if value.dim() >= 3 and tuple(value.shape[1:3]) == tuple(mask.shape):
        return "instance"
    return "group" if value.dim() >= 2 and value.shape[1] == mask.shape[0] else "global"


def to_inference_data(
    batch: GroupBatch | GroupedData,
    draws: Mapping[str, torch.Tensor],
    *,
    pointwise: str = "observation",
) -> Any:
    """An ``arviz.InferenceData`` of the draws of :func:`posterior_predictive` (one chain).

    - ``posterior``: every latent site; group-level sites on a ``group`` dimension (e.g. ``u``
      ``[chain, draw, group, u_dim]``), instance-level ones (``v``, ``z``) on the ``obs``
      dimension of the valid observations (e.g. ``v`` ``[chain, draw, obs, v_dim]``);
    - ``posterior_predictive`` and ``observed_data``: ``x`` over the valid observations
      (``obs``, with a ``group_of_obs`` coordinate; a ``feature`` dimension for vector data);
    - ``log_likelihood``: ``x``, the conditional log-likelihood (see the module docstring for
      what LOO / WAIC on it mean) per observation (``pointwise="observation"``, dimension
      ``obs``) or summed per group (``pointwise="group"``, dimension ``group``).

    :raises ArgumentError: if ``draws`` has no ``"x"`` or its shape does not match ``batch``.
    """
    az = _arviz()
    check_choice(pointwise, "pointwise", ("observation", "group"))
    batch = _as_batch(batch)
    mask = batch.mask.cpu()
    x_draws = _checked_replicates(batch, draws)
    x_obs = batch.x.cpu()[mask].flatten(1).numpy()
    x_rep = x_draws[:, mask].flatten(2).numpy()
    group_of_obs = torch.arange(batch.num_groups).unsqueeze(-1).expand_as(mask)[mask].numpy()
    squeeze = x_obs.shape[-1] == 1
    dims: dict[str, list[str]] = {"x": ["obs"] if squeeze else ["obs", "feature"]}
    posterior: dict[str, np.ndarray] = {}
    levels = getattr(draws, "levels", {})
    for name, value in draws.items():
        if name in (OBSERVED, LOG_LIKELIHOOD):
            continue
        value = value.detach().cpu()
        level = levels.get(name) or _guess_level(value, mask)
        if level == "instance":
            value, first = value[:, mask], "obs"
        elif level == "group":
            first = "group"
        else:
            posterior[name] = value.numpy()[None]
            continue
        if value.dim() > 3:
            value = value.flatten(2)
        posterior[name] = value.numpy()[None]
        dims[name] = [first] + ([f"{name}_dim"] if value.dim() == 3 else [])
    groups: dict[str, Any] = {
        "posterior": posterior,
        "posterior_predictive": {"x": (x_rep[..., 0] if squeeze else x_rep)[None]},
        "observed_data": {"x": x_obs[..., 0] if squeeze else x_obs},
    }
    coords = {"obs": np.arange(len(x_obs)), "group": np.arange(batch.num_groups)}
    idata = az.from_dict(**groups, coords=coords, dims=dims)
    if LOG_LIKELIHOOD in draws:
        log_lik = draws[LOG_LIKELIHOOD].detach().cpu().double()
        if pointwise == "observation":
            values, dim = log_lik[:, mask], "obs"
        else:
            values, dim = (log_lik * mask).sum(-1), "group"
        ds = az.dict_to_dataset(
            {"x": values.numpy()[None]}, coords={dim: coords[dim]}, dims={"x": [dim]}
        )
        idata.add_groups(log_likelihood=ds)
    # from_dict drops non-dimension coordinates: attach each observation's group afterwards
    for name in ("posterior_predictive", "observed_data"):
        setattr(idata, name, getattr(idata, name).assign_coords(group_of_obs=("obs", group_of_obs)))
    return idata


def _checked_replicates(batch: GroupBatch, draws: Mapping[str, torch.Tensor]) -> torch.Tensor:
    if OBSERVED not in draws:
        raise ArgumentError(
            f"draws must hold replicates {OBSERVED!r} [S, G, K, *event]; got keys {sorted(draws)}"
        )
    rep = draws[OBSERVED].detach().cpu()
    if rep.dim() != batch.x.dim() + 1 or tuple(rep.shape[1:]) != tuple(batch.x.shape):
        raise ArgumentError(
            f"draws['x'] must have shape [S, *{list(batch.x.shape)}] to match the batch, got "
            f"{list(rep.shape)}"
        )
    return rep


def _group_stats(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = mask.to(x.dtype).unsqueeze(-1)
    flat = x.flatten(mask.dim()).mean(-1, keepdim=True) if x.dim() > mask.dim() + 1 else x
    n = w.sum(-2)
    mean = (flat * w).sum(-2) / n
    var = ((flat - mean.unsqueeze(-2)).pow(2) * w).sum(-2) / (n - 1).clamp(min=1)
    return mean.squeeze(-1), var.sqrt().squeeze(-1)


def ppc_summary(
    batch: GroupBatch | GroupedData, draws: Mapping[str, torch.Tensor]
) -> dict[str, Any]:
    """Tail probabilities ``p_T`` per group of the within-group mean and standard deviation,
    and the fraction of groups whose ``p_T`` lies in the central 95 % (ideally about 0.95 or
    more)."""
    batch = _as_batch(batch)
    mask = batch.mask.cpu()
    rep = _checked_replicates(batch, draws)
    obs_mean, obs_std = _group_stats(batch.x.cpu(), mask)
    rep_mean, rep_std = _group_stats(rep, mask.expand(rep.shape[0], *mask.shape))
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
    saved to ``path``. Drawn on a figure of its own: pyplot's state and backend are untouched."""
    from pyro_groups.plots import new_figure, save_figure

    az = _arviz()
    num_pp_samples = check_int(num_pp_samples, "num_pp_samples", min=1)
    num_pp_samples = min(num_pp_samples, int(idata.posterior_predictive.sizes["draw"]))
    fig = new_figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    with warnings.catch_warnings():
        # arviz 0.23 calls a matplotlib API that matplotlib 3.11 deprecates; nothing to act on here.
        warnings.filterwarnings("ignore", message=".*deprecated.*", category=DeprecationWarning)
        az.plot_ppc(idata, num_pp_samples=num_pp_samples, random_seed=0, ax=ax)
    return save_figure(fig, path)
