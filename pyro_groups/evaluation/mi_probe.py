r"""A post-hoc probe of the group information left in the instance codes.

The penalties of :mod:`~pyro_groups.adversary.mi_penalty` estimate a mutual information *during*
training, with a critic that plays against the encoder. :func:`mi_probe` measures the same
quantity *after* training, for any trained guide, whether or not it was trained with a penalty:
a fresh critic is trained to maximise the Donsker-Varadhan bound on one half of the groups, with
the guide frozen, and the bound is then evaluated on the other half,

.. math::
    \hat I(\mathbf{x}_{-k}; v_k) = \mathbb{E}_{p(\mathbf{x}_{-k}, v_k)}[T]
    - \log \mathbb{E}_{p(\mathbf{x}_{-k}) p(v_k)}[e^{T}] \quad (\text{set form, CxVAE Sec. 4}),

or :math:`\hat I(x_l; v_k)`, :math:`l \ne k`, for the one-observation form (Németh 2020). The
codes are draws :math:`v_k \sim q(v_k \mid x_k[, u])` (what the penalties see). A held-out
estimate cannot profit from a critic that has memorised its training pairs, so a guide whose
codes carry no group information scores about 0 (up to sampling noise, either sign), and a
positive value is information that a critic of this size can find.

Choices (none is given by the papers): a (32, 32) critic, 400 Adam steps (lr 3e-3) on
minibatches of 256 groups with MINE's moving-average correction, and the bound averaged over
10 re-draws of codes and pairs on the held-out half.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from pyro import poutine

from pyro_groups.data.batch import GroupBatch
from pyro_groups.data.dataset import GroupedData
from pyro_groups.adversary.mi_penalty import MIPenalty, nemeth_penalty, set_penalty

__all__ = ["mi_probe"]

_FORMS: dict[str, Callable[..., MIPenalty]] = {"set": set_penalty, "pair": nemeth_penalty}


def mi_probe(
    guide: Callable,
    data: GroupedData,
    *,
    form: str = "set",
    v_dim: int | None = None,
    hidden: Sequence[int] = (32, 32),
    steps: int = 400,
    batch_size: int = 256,
    lr: float = 3e-3,
    draws: int = 10,
    seed: int = 0,
    site: str = "v",
) -> dict[str, float]:
    """Held-out estimate (nats per observation) of the group information in the codes ``v``.

    :param guide: a trained guide ``guide(x, mask, num_groups=...)`` with an instance site.
    :param data: groups to probe (at least four groups with two or more observations); split in
        half by groups: the critic trains on one half and is scored on the other.
    :param form: ``"set"`` for :math:`I(\\mathbf{x}_{-k}; v_k)` or ``"pair"`` for
        :math:`I(x_l; v_k)`.
    :param v_dim: instance-code size (default: read from one draw of the guide).
    :param hidden: the critic's hidden widths.
    :param steps: critic training steps.
    :param batch_size: groups per critic step.
    :param lr: the critic's Adam learning rate.
    :param draws: re-draws of codes and pairs averaged on the held-out half.
    :param seed: seeds the split, the critic, the minibatches, the pairs and the code draws (the
        global RNG is left as it was).
    :param site: the guide's instance-code site.
    :returns: ``{"held_out": estimate, "train": the bound on the training half}``.
    """
    if form not in _FORMS:
        raise ValueError(f"form must be one of {sorted(_FORMS)}, got {form!r}")
    eligible = int((data.mask.sum(-1) >= 2).sum())
    if eligible < 4:
        raise ValueError(
            f"mi_probe needs at least 4 groups with two or more observations, got {eligible}"
        )
    device = data.mask.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        train, test = data.split(len(data) // 2, seed=seed)
        x_dim = int(torch.tensor(data.event_shape).prod()) if data.event_shape else 1
        if v_dim is None:
            with torch.no_grad():
                v_dim = _code_dim(guide, test[torch.arange(1)], site)
        pen = _FORMS[form](x_dim, v_dim, hidden=hidden, seed=seed, critic_lr=lr, site=site)
        pen.to(device)
        generator = torch.Generator().manual_seed(seed)
        done = 0
        while done < steps:
            for batch in train.batches(batch_size, generator=generator):
                pen.critic_step(None, guide, batch.to(device))
                done += 1
                if done == steps:
                    break
        return {"held_out": _score(pen, guide, test, draws), "train": _score(pen, guide, train, 1)}


def _code_dim(guide: Callable, batch: GroupBatch, site: str) -> int:
    trace = poutine.trace(guide).get_trace(batch.x, batch.mask)
    return int(trace.nodes[site]["value"].shape[-1])


def _score(pen: MIPenalty, guide: Callable, data: GroupedData, draws: int) -> float:
    batch = data[torch.arange(len(data))]
    x = batch.x.flatten(2)
    values = []
    with torch.no_grad():
        for _ in range(draws):
            v = pen.codes(guide, batch)
            values.append(float(pen.bound(x, batch.mask, v)))
    return sum(values) / len(values)
