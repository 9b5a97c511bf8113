r"""Variational lower bounds on mutual information, as pure functions of critic scores.

Every bound here estimates :math:`I(X; Y) = \mathrm{KL}[p(x, y) \,\|\, p(x) p(y)]` from the
scores :math:`T(x, y)` of a critic on *joint* samples :math:`(x, y) \sim p(x, y)` and on
*marginal* samples :math:`(x, y') \sim p(x) p(y)`. The critic is trained by maximising the bound;
the bound at the trained critic is the estimate. The functions neither own parameters nor keep
state: the moving average of :func:`mine_bound` is passed in and returned.

Masks and weights: each scores tensor may come with a ``mask`` of the same (or a broadcastable)
shape, either boolean or non-negative float weights. An expectation becomes the weighted mean
:math:`\sum_n w_n s_n / \sum_n w_n`, and entries with :math:`w_n = 0` (or ``False``) never
contribute, whatever their value (``inf`` and ``nan`` included), and receive a zero gradient.
An expectation over no valid entry is taken as zero, so a bound with no evidence is ``0``, not
``nan``.

References:

- Belghazi et al. 2018, *Mutual Information Neural Estimation* (MINE), ICML.
- Nguyen, Wainwright and Jordan 2010, *Estimating divergence functionals and the likelihood ratio
  by convex risk minimization*, IEEE Trans. Inf. Theory; Nowozin et al. 2016, *f-GAN*.
- van den Oord, Li and Vinyals 2018, *Representation learning with contrastive predictive
  coding* (InfoNCE); Poole et al. 2019, *On variational bounds of mutual information*, ICML.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
from torch import Tensor

__all__ = [
    "MineResult",
    "dv_bound",
    "infonce_bound",
    "mine_bound",
    "mine_ema_init",
    "nwj_bound",
    "weighted_logmeanexp",
    "weighted_mean",
]


def _weights(scores: Tensor, mask: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    """Return ``(valid, w)`` broadcast to ``scores``: a boolean validity mask and float weights."""
    if mask is None:
        return torch.ones_like(scores, dtype=torch.bool), torch.ones_like(scores)
    mask = torch.broadcast_to(mask, scores.shape)
    if mask.dtype == torch.bool:
        return mask, mask.to(scores.dtype)
    valid = mask > 0
    return valid, torch.where(valid, mask.to(scores.dtype), torch.zeros_like(scores))


def weighted_mean(scores: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    r"""Weighted mean over all entries, :math:`\sum_n w_n s_n / \sum_n w_n` (``0`` if empty).

    :param scores: any shape.
    :param mask: boolean or non-negative float weights broadcastable to ``scores``.
    :return: scalar tensor.
    """
    valid, w = _weights(scores, mask)
    s = torch.where(valid, scores, torch.zeros_like(scores))
    return (w * s).sum() / w.sum().clamp(min=torch.finfo(scores.dtype).tiny)


def weighted_logmeanexp(scores: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    r"""Stable :math:`\log\big(\sum_n w_n e^{s_n} / \sum_n w_n\big)` over all entries.

    Returns ``0`` when no entry is valid.

    :param scores: any shape.
    :param mask: boolean or non-negative float weights broadcastable to ``scores``.
    :return: scalar tensor.
    """
    valid, w = _weights(scores, mask)
    any_valid = valid.any()
    zeros = torch.zeros_like(scores)
    s = torch.where(valid, scores, zeros) + torch.where(valid, w, torch.ones_like(w)).log()
    s = torch.where(valid, s, torch.full_like(scores, -math.inf))
    s = torch.where(any_valid, s, zeros)
    lse = torch.logsumexp(s.reshape(-1), dim=0)
    total = w.sum()
    log_total = torch.where(any_valid, total, torch.ones_like(total)).log()
    return torch.where(any_valid, lse - log_total, torch.zeros_like(lse))


def dv_bound(
    joint_scores: Tensor,
    marginal_scores: Tensor,
    joint_mask: Optional[Tensor] = None,
    marginal_mask: Optional[Tensor] = None,
) -> Tensor:
    r"""Donsker-Varadhan lower bound (the MINE objective, Belghazi et al. 2018, eq. 10).

    .. math::
        I(X; Y) \ge \mathbb{E}_{p(x,y)}[T] - \log \mathbb{E}_{p(x)p(y)}\big[e^{T}\big]

    Tight at :math:`T^* = \log \frac{p(x,y)}{p(x)p(y)} + c` for any constant :math:`c`. The
    mini-batch estimate of the second term is biased (the log of a mean); see :func:`mine_bound`
    for the gradient correction.

    :param joint_scores: critic scores on joint samples, any shape.
    :param marginal_scores: critic scores on marginal samples, any shape.
    :param joint_mask: optional boolean mask or weights for ``joint_scores``.
    :param marginal_mask: optional boolean mask or weights for ``marginal_scores``.
    :return: scalar estimate in nats.
    """
    return weighted_mean(joint_scores, joint_mask) - weighted_logmeanexp(
        marginal_scores, marginal_mask
    )


class MineResult(NamedTuple):
    """Output of :func:`mine_bound`.

    :ivar bound: the Donsker-Varadhan value of this batch (same as :func:`dv_bound`).
    :ivar surrogate: equal to ``bound`` in value; its gradient is the bias-corrected one.
        Maximise it in the critic step.
    :ivar ema_state: the updated moving-average state, to pass to the next call.
    """

    bound: Tensor
    surrogate: Tensor
    ema_state: Tensor


def mine_ema_init(
    device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None
) -> Tensor:
    r"""Fresh moving-average state for :func:`mine_bound`: ``tensor([0., 0.])``.

    The state is ``[log m_t, c_t]``: :math:`m_t` the exponential moving average of
    :math:`\mathbb{E}_{p(x)p(y)}[e^T]` started at zero, :math:`c_t = 1 - \text{decay}^t` its
    bias correction (as in Adam), so the estimate is :math:`m_t / c_t`. It is a plain tensor so a
    module can hold it with ``register_buffer`` and checkpoint it with its ``state_dict``.
    """
    return torch.zeros(2, device=device, dtype=dtype if dtype is not None else torch.float32)


def mine_bound(
    joint_scores: Tensor,
    marginal_scores: Tensor,
    ema_state: Tensor,
    decay: float = 0.99,
    joint_mask: Optional[Tensor] = None,
    marginal_mask: Optional[Tensor] = None,
) -> MineResult:
    r"""MINE: the Donsker-Varadhan bound with a moving-average gradient correction.

    The gradient of :func:`dv_bound` with respect to the critic parameters :math:`\theta` is

    .. math::
        \mathbb{E}_{p(x,y)}[\nabla_\theta T]
        - \frac{\mathbb{E}_{p(x)p(y)}[e^{T} \nabla_\theta T]}{\mathbb{E}_{p(x)p(y)}[e^{T}]},

    and replacing both expectations by one mini-batch makes it biased. Belghazi et al. (2018,
    Sec. 3.2) replace the denominator by an exponential moving average :math:`\bar m` of the
    mini-batch values of :math:`\mathbb{E}[e^T]`. This function first updates the average with the
    current batch,

    .. math::
        m_t = \text{decay}\, m_{t-1} + (1 - \text{decay})\, \widehat{\mathbb{E}}[e^{T}], \quad
        \bar m = m_t / (1 - \text{decay}^t),

    (kept in log space), then returns a surrogate whose value equals the DV bound and whose
    gradient is :math:`\widehat{\mathbb{E}}_{p(x,y)}[\nabla T] -
    \widehat{\mathbb{E}}_{p(x)p(y)}[e^{T}\nabla T] / \bar m`.

    The critic step maximises ``surrogate``; a penalty on the encoder uses ``bound`` (the
    correction concerns the critic's gradient only).

    :param joint_scores: critic scores on joint samples, any shape.
    :param marginal_scores: critic scores on marginal samples, any shape.
    :param ema_state: state from :func:`mine_ema_init` or the previous call; owned by the caller
        and never modified in place.
    :param decay: moving-average decay in ``[0, 1)``; ``0`` recovers :func:`dv_bound` exactly.
    :param joint_mask: optional boolean mask or weights for ``joint_scores``.
    :param marginal_mask: optional boolean mask or weights for ``marginal_scores``.
    :return: :class:`MineResult` ``(bound, surrogate, ema_state)``.
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay}")
    joint_term = weighted_mean(joint_scores, joint_mask)
    log_mean_exp = weighted_logmeanexp(marginal_scores, marginal_mask)
    lme = log_mean_exp.detach().to(ema_state.dtype)
    log_m, c = ema_state[0], ema_state[1]
    fresh = math.log1p(-decay) + lme
    updated = torch.logaddexp(math.log(decay) + log_m, fresh) if decay > 0 else fresh
    new_log_m = torch.where(c > 0, updated, fresh)
    new_c = 1.0 - decay * (1.0 - c)
    log_ema = (new_log_m - new_c.log()).to(log_mean_exp.dtype)
    ratio = torch.exp(log_mean_exp - log_ema)
    corrected = ratio - ratio.detach() + log_mean_exp.detach()
    return MineResult(
        bound=joint_term - log_mean_exp,
        surrogate=joint_term - corrected,
        ema_state=torch.stack([new_log_m, new_c]),
    )


def nwj_bound(
    joint_scores: Tensor,
    marginal_scores: Tensor,
    joint_mask: Optional[Tensor] = None,
    marginal_mask: Optional[Tensor] = None,
) -> Tensor:
    r"""Nguyen-Wainwright-Jordan lower bound (f-GAN KL bound; Poole et al. 2019, eq. 6).

    .. math::
        I(X; Y) \ge \mathbb{E}_{p(x,y)}[T] - e^{-1}\, \mathbb{E}_{p(x)p(y)}\big[e^{T}\big]

    This is the f-divergence bound :math:`\mathbb{E}_p[T] - \mathbb{E}_q[e^{T-1}]` with the
    :math:`e^{-1}` shift, tight at :math:`T^* = 1 + \log \frac{p(x,y)}{p(x)p(y)}`. Unlike
    :func:`dv_bound` it is a plain mean, so its mini-batch gradient is unbiased, at the price of
    a higher variance.

    :param joint_scores: critic scores on joint samples, any shape.
    :param marginal_scores: critic scores on marginal samples, any shape.
    :param joint_mask: optional boolean mask or weights for ``joint_scores``.
    :param marginal_mask: optional boolean mask or weights for ``marginal_scores``.
    :return: scalar estimate in nats.
    """
    log_mean_exp = weighted_logmeanexp(marginal_scores, marginal_mask)
    valid, _ = _weights(marginal_scores, marginal_mask)
    second = torch.where(valid.any(), torch.exp(log_mean_exp - 1.0), torch.zeros_like(log_mean_exp))
    return weighted_mean(joint_scores, joint_mask) - second


def infonce_bound(score_matrix: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    r"""InfoNCE lower bound (van den Oord et al. 2018; Poole et al. 2019, eq. 12).

    For a batch of :math:`B` joint pairs :math:`(x_i, y_i)` and scores
    :math:`S_{ij} = T(x_i, y_j)`, the diagonal holds the joint pairs and row :math:`i`'s
    off-diagonal entries serve as its :math:`B - 1` negatives:

    .. math::
        I(X; Y) \ge \frac{1}{B} \sum_{i=1}^{B} \Big[ S_{ii}
        - \log \frac{1}{B} \sum_{j=1}^{B} e^{S_{ij}} \Big] \le \log B.

    The estimate can never exceed :math:`\log B`: choose :math:`B \gg e^{I}`. With a mask, row
    :math:`i` averages over its :math:`n_i` valid columns (the cap becomes
    :math:`\log n_i`) and only rows whose diagonal entry is valid are averaged.

    :param score_matrix: ``[B, B]`` scores, ``score_matrix[i, j] = T(x_i, y_j)``.
    :param mask: optional boolean mask, either ``[B]`` (valid samples; pair ``(i, j)`` is valid
        when both are) or ``[B, B]`` (valid pairs; row ``i`` is used when ``mask[i, i]``).
        Float weights are not supported here.
    :return: scalar estimate in nats.
    """
    if score_matrix.dim() != 2 or score_matrix.shape[0] != score_matrix.shape[1]:
        raise ValueError(f"score_matrix must be square [B, B], got {tuple(score_matrix.shape)}")
    B = score_matrix.shape[0]
    if mask is None:
        pair = torch.ones_like(score_matrix, dtype=torch.bool)
    elif mask.dtype != torch.bool:
        raise TypeError("infonce_bound takes a boolean mask")
    elif mask.shape == (B,):
        pair = mask[:, None] & mask[None, :]
    elif mask.shape == (B, B):
        pair = mask
    else:
        raise ValueError(f"mask must be [B] or [B, B] with B={B}, got {tuple(mask.shape)}")
    rows = torch.diagonal(pair)
    s = torch.where(pair, score_matrix, torch.full_like(score_matrix, -math.inf))
    s = torch.where(rows[:, None], s, torch.zeros_like(score_matrix))
    n = torch.where(rows, pair.sum(1), torch.ones_like(rows, dtype=torch.long))
    per_row = torch.diagonal(s) - torch.logsumexp(s, dim=1) + n.to(s.dtype).log()
    return weighted_mean(per_row, rows)
