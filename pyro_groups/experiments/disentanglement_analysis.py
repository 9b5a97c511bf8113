r"""The analyses of the Locatello study, as pure functions of the runs.

A run is a row of ``results.json``'s ``"runs"``: ``model`` (the objective), ``value`` (its
hyper-parameter), ``seed`` and ``metrics`` (every score of
:func:`~pyro_groups.experiments.disentanglement_scores.score` plus ``elbo``,
``reconstruction_nll``, ``kl``). The functions here

- summarise runs per configuration and per model;
- regress each metric on the objective, on objective x hyper-parameter and on the seed
  (:func:`variance_explained`, the paper's Table 4, with adjusted :math:`R^2` and permutation
  tests, since a 16-cell one-hot fit of 48 runs explains 32 % of pure noise);
- rank-correlate metrics with each other, with unsupervised scores (model selection) and with
  downstream accuracy and efficiency, with a Fisher-z interval on every Spearman correlation;
- compare the total correlation of the sampled and mean representations at the weakest and the
  strongest regularisation of each objective.
"""
from __future__ import annotations

import math
from typing import Any, Hashable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from pyro_groups.experiments.environment import summarize

__all__ = [
    "DOWNSTREAM_TARGETS",
    "SELECTION_SCORES",
    "TC_MODELS",
    "analyse",
    "downstream_agreement",
    "model_selection",
    "permutation_p",
    "r2_by_groups",
    "rank_correlation",
    "spearman_matrix",
    "summarize_runs",
    "tc_trend",
    "variance_explained",
]

# Unsupervised scores for model selection, as (metric key, sign): larger sign * value is better.
SELECTION_SCORES = {"elbo": ("elbo", 1.0), "reconstruction": ("reconstruction_nll", -1.0),
                    "tc_sampled": ("tc_sampled", -1.0), "tc_mean": ("tc_mean", -1.0)}
SELECTION_TARGETS = ("mig", "dci_disentanglement")
DOWNSTREAM_TARGETS = ("logistic_large", "gbt_large", "logistic_efficiency", "gbt_efficiency")
# Objectives whose hyper-parameter grows with the regularisation (Locatello et al.'s Fig. 1
# leaves out AnnealedVAE, whose capacity works the other way).
TC_MODELS = ("beta_vae", "factor_vae", "beta_tcvae", "dip_vae_i", "dip_vae_ii")


def summarize_runs(runs: list[dict[str, Any]], cfg: Any, keys: Sequence[str]
                   ) -> tuple[list[dict], list[dict]]:
    """Per (model, hyper-parameter) row and per model (all values and seeds pooled):
    ``{"mean", "std", "n"}`` of every key over runs."""
    rows, pooled = [], []
    for name in cfg.models:
        mine = [r for r in runs if r["model"] == name]
        if not mine:
            continue
        param, values = cfg.grid[name]
        for value in values:
            sel = sorted((r for r in mine if r["value"] == value), key=lambda r: r["seed"])
            row: dict[str, Any] = {"model": name, "hyperparameter": {param: value}}
            row.update({m: summarize([r["metrics"][m] for r in sel]) for m in keys})
            row["train_cpu_seconds"] = summarize([r["train_cpu_seconds"] for r in sel])
            rows.append(row)
        row = {"model": name, "hyperparameter": {param: list(values)}}
        row.update({m: summarize([r["metrics"][m] for r in mine]) for m in keys})
        pooled.append(row)
    return rows, pooled


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if ok.sum() < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def rank_correlation(a: ArrayLike, b: ArrayLike) -> dict[str, Any]:
    r"""Spearman's :math:`\rho` of two samples (pairwise complete) with an approximate 95 %
    interval: :math:`\tanh(\operatorname{atanh}\rho \pm 2\,\sigma_z)`,
    :math:`\sigma_z = \sqrt{1.06 / (n - 3)}` (Fieller, Hartley & Pearson 1957).
    ``beyond_noise`` is true when the interval excludes 0."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = int((np.isfinite(x) & np.isfinite(y)).sum())
    rho = _spearman(x, y)
    if not math.isfinite(rho) or n < 4:
        return {"rho": rho, "low": float("nan"), "high": float("nan"), "n": n,
                "beyond_noise": None}
    z, half = math.atanh(max(min(rho, 0.999999), -0.999999)), 2.0 * math.sqrt(1.06 / (n - 3))
    low, high = math.tanh(z - half), math.tanh(z + half)
    return {"rho": rho, "low": low, "high": high, "n": n, "beyond_noise": low > 0 or high < 0}


def _column(runs: list[dict], key: str) -> np.ndarray:
    return np.array([r["metrics"].get(key, float("nan")) for r in runs], dtype=float)


def spearman_matrix(runs: list[dict[str, Any]], metrics: Sequence[str]) -> np.ndarray:
    """Spearman rank correlation between metrics over the runs (pairwise complete)."""
    cols = [_column(runs, m) for m in metrics]
    out = np.eye(len(metrics))
    for i in range(len(metrics)):
        for j in range(i + 1, len(metrics)):
            out[i, j] = out[j, i] = _spearman(cols[i], cols[j])
    return out


def r2_by_groups(values: ArrayLike, labels: Sequence[Hashable]) -> float:
    r""":math:`R^2` of the least-squares regression of ``values`` on the one-hot ``labels``:

    .. math::
        R^2 = 1 - \frac{\sum_i (y_i - \bar y_{g(i)})^2}{\sum_i (y_i - \bar y)^2},

    the share of the variance between the groups' means. Non-finite values are left out; a
    constant response gives ``nan``.
    """
    y = np.asarray(values, dtype=float)
    ok = np.isfinite(y)
    y, lab = y[ok], [label for label, keep in zip(labels, ok) if keep]
    total = float(np.sum((y - y.mean()) ** 2)) if y.size else 0.0
    if total <= 0:
        return float("nan")
    groups: dict[Hashable, list[float]] = {}
    for v, label in zip(y, lab):
        groups.setdefault(label, []).append(v)
    within = sum(float(np.sum((np.array(g) - np.mean(g)) ** 2)) for g in groups.values())
    return 1.0 - within / total


def _adjusted(r2: float, n: int, k: int) -> float:
    return 1.0 - (1.0 - r2) * (n - 1) / (n - k) if n > k and math.isfinite(r2) else float("nan")


def permutation_p(values: ArrayLike, labels: Sequence[Hashable],
                  blocks: Sequence[Hashable] | None = None, *, rng: int = 0,
                  num: int = 999) -> float:
    """One-sided permutation p-value of :func:`r2_by_groups`: labels shuffled (within each of
    ``blocks`` when given, which tests the labels beyond the blocks), ``(1 + #{R^2_perm >=
    R^2}) / (1 + num)``."""
    gen = np.random.default_rng(rng)
    labels = list(labels)
    observed = r2_by_groups(values, labels)
    if not math.isfinite(observed):
        return float("nan")
    idx_by_block: dict[Hashable, list[int]] = {}
    for i, b in enumerate(blocks if blocks is not None else [0] * len(labels)):
        idx_by_block.setdefault(b, []).append(i)
    hits = 0
    for _ in range(num):
        perm = list(labels)
        for idx in idx_by_block.values():
            shuffled = gen.permutation(idx)
            for i, j in zip(idx, shuffled):
                perm[i] = labels[j]
        hits += r2_by_groups(values, perm) >= observed - 1e-12
    return (1 + hits) / (1 + num)


def variance_explained(runs: list[dict[str, Any]], metrics: Sequence[str], *, rng: int = 0,
                       num_permutations: int = 999) -> dict[str, dict[str, float]]:
    r"""Per metric, the :math:`R^2` of regressing it on (Locatello et al. 2019, Table 4):

    - ``r2_objective``: the objective (model) alone (their Table 4a);
    - ``r2_objective_x_hyperparameter``: each (objective, hyper-parameter value) its own cell
      (their Table 4b);
    - ``r2_hyperparameter_within_objective``: the difference of the two;
    - ``r2_seed_within_configuration``: :math:`1 -` ``r2_objective_x_hyperparameter``, the share
      left to the seed (and to everything a seed changes);
    - ``r2_seed``: the seed index alone (one seed number is not one model across objectives; a
      check that no seed is better for all of them).

    ``*_adjusted`` corrects for the number of cells, :math:`1 - (1 - R^2)(n - 1)/(n - k)`, and
    ``p_*`` are permutation p-values (objective and seed labels shuffled over all runs, values
    shuffled within each objective).
    """
    objective = [r["model"] for r in runs]
    config = [(r["model"], r["value"]) for r in runs]
    seed = [r["seed"] for r in runs]
    n = len(runs)
    out = {}
    for m in metrics:
        y = _column(runs, m)
        r_obj, r_cfg, r_seed = (r2_by_groups(y, lab) for lab in (objective, config, seed))
        out[m] = {
            "r2_objective": r_obj,
            "r2_objective_x_hyperparameter": r_cfg,
            "r2_hyperparameter_within_objective": r_cfg - r_obj,
            "r2_seed_within_configuration": 1.0 - r_cfg,
            "r2_seed": r_seed,
            "r2_objective_adjusted": _adjusted(r_obj, n, len(set(objective))),
            "r2_objective_x_hyperparameter_adjusted": _adjusted(r_cfg, n, len(set(config))),
            "p_objective": permutation_p(y, objective, rng=rng, num=num_permutations),
            "p_hyperparameter_within_objective": permutation_p(
                y, config, objective, rng=rng, num=num_permutations),
            "p_seed": permutation_p(y, seed, rng=rng, num=num_permutations),
            "n": n,
        }
    return out


def tc_trend(runs: list[dict[str, Any]], models: Sequence[str] = TC_MODELS
             ) -> list[dict[str, Any]]:
    """Per objective: the sampled and mean representations' Gaussian TC at its weakest and
    strongest regularisation (first and last value of its grid), over seeds."""
    out = []
    for name in models:
        mine = [r for r in runs if r["model"] == name]
        values = sorted({r["value"] for r in mine})
        if len(values) < 2:
            continue
        row: dict[str, Any] = {"model": name, "weak": values[0], "strong": values[-1]}
        for key in ("tc_sampled", "tc_mean"):
            for end, value in (("weak", values[0]), ("strong", values[-1])):
                row[f"{key}_{end}"] = summarize(
                    [r["metrics"][key] for r in mine if r["value"] == value])
        out.append(row)
    return out


def model_selection(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Can an unsupervised score pick the runs with the best MIG / DCI? For each score and
    target: the rank correlation over all runs, the mean of the per-objective correlations, and
    the share of objectives whose run picked by the score lies in the top half of that
    objective's runs by the target (0.5 for a random pick)."""
    out = []
    names = list(dict.fromkeys(r["model"] for r in runs))
    for score, (key, sign) in SELECTION_SCORES.items():
        for target in SELECTION_TARGETS:
            pooled = rank_correlation(sign * _column(runs, key), _column(runs, target))
            within, hits = [], []
            for name in names:
                mine = [r for r in runs if r["model"] == name]
                s, t = sign * _column(mine, key), _column(mine, target)
                within.append(_spearman(s, t))
                if np.isfinite(s).any() and len(mine) > 1:
                    picked = t[int(np.nanargmax(s))]
                    hits.append(float(np.mean(t < picked) + 0.5 * np.mean(t == picked) >= 0.5))
            out.append({"score": score, "target": target, "pooled": pooled,
                        "within_objective_mean_rho": float(np.nanmean(within))
                        if np.isfinite(within).any() else float("nan"),
                        "top_half_rate": float(np.mean(hits)) if hits else float("nan")})
    return out


def downstream_agreement(runs: list[dict[str, Any]], metrics: Sequence[str]
                         ) -> list[dict[str, Any]]:
    """Rank correlation of every disentanglement metric with downstream accuracy (many labels)
    and sample efficiency (accuracy from few labels over accuracy from many), per predictor."""
    return [{"metric": m, "target": t, **rank_correlation(_column(runs, m), _column(runs, t))}
            for m in metrics for t in DOWNSTREAM_TARGETS]


def analyse(runs: list[dict[str, Any]], metrics: Sequence[str],
            unsupervised: Sequence[str]) -> dict[str, Any]:
    """Every analysis of the study: the unsupervised objectives' runs (the paper's population)
    for the regressions and correlations, all runs for a second regression and matrix."""
    unsup = [r for r in runs if r["model"] in unsupervised]
    return {
        "rank_correlation": {"metrics": list(metrics), "runs": "unsupervised",
                             "spearman": spearman_matrix(unsup, metrics).tolist()},
        "rank_correlation_all_models": {"metrics": list(metrics),
                                        "spearman": spearman_matrix(runs, metrics).tolist()},
        "metric_agreement": [
            {"a": a, "b": b, **rank_correlation(_column(unsup, a), _column(unsup, b))}
            for i, a in enumerate(metrics) for b in metrics[i + 1:]
        ],
        "r2": {"unsupervised": variance_explained(unsup, metrics),
               "all_models": variance_explained(runs, metrics)},
        "tc": tc_trend(runs),
        "model_selection": model_selection(unsup),
        "downstream": downstream_agreement(unsup, metrics),
    }
