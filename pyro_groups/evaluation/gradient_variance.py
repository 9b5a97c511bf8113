r"""The variance of a stochastic ELBO gradient at fixed parameters.

For parameters :math:`\theta` and an unbiased one-draw estimate :math:`\hat g` of
:math:`\nabla_\theta \mathrm{ELBO}`, :func:`elbo_gradient_variance` draws ``draws`` estimates on
one batch and reports, per parameter block, the total variance
:math:`\operatorname{tr}\operatorname{Cov}[\hat g] = \sum_j \operatorname{Var}[\hat g_j]` and the
squared norm of the mean gradient :math:`\lVert \mathbb{E}\hat g \rVert^2`. Comparing two
estimators of the same ELBO on the same parameters (e.g. one content draw per group against one
per observation, ML-VAE's Algorithm 1: :func:`pyro_groups.guides.content_samples`) tells which
needs fewer draws for the same precision; their means must agree.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from pyro.infer import ELBO, Trace_ELBO
from torch import nn

from pyro_groups.data.batch import GroupBatch
from pyro_groups.validation import ArgumentError

__all__ = ["elbo_gradient_variance", "parameter_blocks"]


def parameter_blocks(model: nn.Module, guide: nn.Module) -> dict[str, list[nn.Parameter]]:
    """The parameters of ``model`` (``"model"``) and of each direct child of ``guide`` (e.g.
    ``"group_encoder"``, ``"instance_encoder"``; parameters held by the guide itself:
    ``"guide"``), each once."""
    seen: set[int] = set()
    blocks: dict[str, list[nn.Parameter]] = {}

    def add(name: str, params) -> None:
        fresh = [p for p in params if p.requires_grad and id(p) not in seen]
        seen.update(id(p) for p in fresh)
        if fresh:
            blocks.setdefault(name, []).extend(fresh)

    add("model", model.parameters())
    for name, child in guide.named_children():
        add(name, child.parameters())
    add("guide", guide.parameters())
    return blocks


def elbo_gradient_variance(
    model: nn.Module,
    guide: nn.Module,
    batch: GroupBatch,
    *,
    loss: Optional[ELBO | Callable[..., torch.Tensor]] = None,
    draws: int = 64,
    num_groups: Optional[int] = None,
) -> dict[str, dict[str, Any]]:
    """Gradient statistics of ``loss`` (default ``Trace_ELBO``) over ``draws`` independent draws
    on ``batch``, per block of :func:`parameter_blocks` and in total (``"all"``).

    :returns: ``{block: {"variance": tr Cov, "mean_sq_norm": ||mean||^2, "params": count}}`` and
        ``"loss": {"mean", "std"}`` of the loss itself. Gradients are of the negative ELBO (the
        sign does not change a variance).
    """
    if draws < 2:
        raise ArgumentError(f"draws must be >= 2, got {draws}")
    loss = loss if loss is not None else Trace_ELBO()
    fn = loss.differentiable_loss if isinstance(loss, ELBO) else loss
    blocks = parameter_blocks(model, guide)
    params = [p for ps in blocks.values() for p in ps]
    sums = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    squares = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    values = []
    for _ in range(draws):
        value = fn(model, guide, batch.x, batch.mask, num_groups=num_groups)
        grads = torch.autograd.grad(value, params, allow_unused=True)
        values.append(float(value.detach()))
        for s, q, g in zip(sums, squares, grads):
            if g is not None:
                g = g.detach().double()
                s += g
                q += g * g
    out: dict[str, dict[str, Any]] = {}
    i = 0
    total = {"variance": 0.0, "mean_sq_norm": 0.0, "params": 0}
    for name, ps in blocks.items():
        var = msq = 0.0
        for s, q in zip(sums[i : i + len(ps)], squares[i : i + len(ps)]):
            mean = s / draws
            var += float(((q - draws * mean * mean) / (draws - 1)).clamp_min(0).sum())
            msq += float((mean * mean).sum())
        count = sum(p.numel() for p in ps)
        out[name] = {"variance": var, "mean_sq_norm": msq, "params": count}
        total = {"variance": total["variance"] + var, "mean_sq_norm": total["mean_sq_norm"] + msq,
                 "params": total["params"] + count}
        i += len(ps)
    out["all"] = total
    v = torch.tensor(values, dtype=torch.float64)
    out["loss"] = {"mean": float(v.mean()), "std": float(v.std())}
    return out
