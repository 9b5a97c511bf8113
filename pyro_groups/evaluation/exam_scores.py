r"""The CxVAE paper's four hold-out errors on Exam-Scores (Sec. 5).

All are mean squared errors over valid observations (or groups), so lower is better:

- ``rec_err``: :math:`x` against the decoder's mean at codes *sampled* from the guide,
  :math:`u \sim q(u \mid \mathbf{x})`, :math:`v_k \sim q(v_k \mid x_k[, u])` — the ELBO's
  reconstruction term as an MSE. ``rec_err_mean`` decodes posterior means instead; with the known
  decoder every model reconstructs almost perfectly that way, so it is reported, not ranked by.
- ``trans_err``: translation of each source group to a target group (sampled codes) against the
  ground truth :math:`2\mu_j + (\sigma_j^2 + 1) v_{ik}` (true source instance factor, true target
  group factor, no noise); ``trans_err_mean`` with posterior means.
- ``u_pred_err`` / ``v_pred_err``: a regressor from the inferred code (posterior mean) to the true
  factor, fitted on one half of the hold-out groups and scored on the other. The regressor is a
  cubic polynomial ridge regression (deterministic, fast, stable across scikit-learn versions; the
  paper uses an unspecified regression network). ``u`` is scored against :math:`(\mu, \sigma)`
  (``u_pred_err``) and, since :math:`x` sees only :math:`\sigma^2`, against
  :math:`(\mu, |\sigma|)` (``u_pred_err_abs``).

The paper reports its errors on a different (unstated) scale; we report per-observation MSE.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler
from torch import nn

from pyro_groups.data.dataset import GroupedData
from pyro_groups.data.exam_scores import exam_scores_mean
from pyro_groups.evaluation.codes import encode, reconstruct, translate


def _masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    err = (a - b).pow(2).flatten(2).mean(-1)
    return float(err[mask].mean())


def prediction_error(
    train_codes: np.ndarray,
    train_target: np.ndarray,
    test_codes: np.ndarray,
    test_target: np.ndarray,
    *,
    degree: int = 3,
    alpha: float = 1e-2,
) -> float:
    """MSE on the test rows of a polynomial ridge regressor fitted on the training rows.

    Test codes are clipped to the training codes' range, so that the polynomial never extrapolates.
    """
    if len(train_codes) < 2 or len(test_codes) < 1:
        raise ValueError("need at least 2 training rows and 1 test row to score a regressor")
    reg = make_pipeline(
        StandardScaler(),
        PolynomialFeatures(degree, include_bias=False),
        StandardScaler(),
        Ridge(alpha=alpha, solver="svd"),
    )
    reg.fit(train_codes, train_target)
    test_codes = np.clip(test_codes, train_codes.min(0), train_codes.max(0))
    pred = reg.predict(test_codes).reshape(test_target.shape)
    return float(np.mean((pred - test_target) ** 2))


@torch.no_grad()
def exam_scores_errors(
    model: nn.Module,
    guide: nn.Module,
    holdout: GroupedData,
    *,
    seed: int = 0,
    max_instances: int = 20_000,
) -> dict[str, float]:
    """REC / TRANS / u-PRED / v-PRED errors of a trained model and guide on hold-out groups.

    Translation pairs group ``i`` with group ``perm[i]`` (a seeded random permutation). The
    v-regressor uses at most ``max_instances`` observations (seeded subsample).
    """
    if holdout.u_true is None or holdout.v_true is None:
        raise ValueError(
            "exam_scores_errors needs hold-out data with ground truth u_true and v_true"
        )
    dev = next(iter(guide.parameters())).device
    batch = holdout[torch.arange(len(holdout))].to(dev)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = {
            "rec_err": _masked_mse(
                reconstruct(model, guide, batch, sample=True), batch.x, batch.mask
            ),
            "rec_err_mean": _masked_mse(
                reconstruct(model, guide, batch, sample=False), batch.x, batch.mask
            ),
        }
        perm = torch.randperm(batch.num_groups, generator=gen).to(dev)
        target = holdout[perm.cpu()].to(dev)
        truth = exam_scores_mean(target.u_true.unsqueeze(-2), batch.v_true)
        for name, sample in (("trans_err", True), ("trans_err_mean", False)):
            out[name] = _masked_mse(
                translate(model, guide, batch, target, sample=sample), truth, batch.mask
            )
        u, v = encode(guide, batch, sample=False)
    half = batch.num_groups // 2
    if half < 2:
        raise ValueError(
            f"need at least 4 hold-out groups for the prediction errors, got {batch.num_groups}"
        )
    u_np, u_true = u.cpu().numpy(), batch.u_true.cpu().numpy()
    out["u_pred_err"] = prediction_error(u_np[:half], u_true[:half], u_np[half:], u_true[half:])
    u_abs = np.abs(u_true)
    out["u_pred_err_abs"] = prediction_error(u_np[:half], u_abs[:half], u_np[half:], u_abs[half:])
    rng = np.random.default_rng(seed)
    parts = []
    for rows in (slice(None, half), slice(half, None)):
        mask = batch.mask[rows].cpu()
        codes, truth = v[rows].cpu()[mask].numpy(), batch.v_true[rows].cpu()[mask].numpy()
        if len(codes) > max_instances // 2:
            keep = np.sort(rng.choice(len(codes), max_instances // 2, replace=False))
            codes, truth = codes[keep], truth[keep]
        parts += [codes, truth]
    out["v_pred_err"] = prediction_error(*parts)
    return out
