"""The README tables of the Locatello study, from its ``results.json``.

:func:`readme_tables` prints every table of README "The study" from one result, so that the
numbers there can be checked against a run: variance explained (with the paper's dSprites
figures beside ours), metric agreement, total correlation by regularisation, unsupervised model
selection, and downstream accuracy and its rank correlations. Rank correlations carry ``*`` when
their 95 % Fisher-z interval excludes 0.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from pyro_groups.experiments.disentanglement_report import LABELS, _rst

__all__ = [
    "PAPER_R2", "format_agreement_rst", "format_downstream_rst", "format_downstream_rank_rst",
    "format_selection_rst", "format_tc_rst", "format_variance_rst", "readme_tables",
]

# Locatello et al. (2019), Table 4, dSprites: R^2 of each metric on the objective, and on the
# objective and its hyper-parameter value.
PAPER_R2: dict[str, tuple[float, float]] = {
    "beta_vae_score": (0.29, 0.59), "factor_vae_score": (0.47, 0.54), "mig": (0.26, 0.72),
    "dci_disentanglement": (0.41, 0.77), "sap": (0.31, 0.56), "modularity": (0.29, 0.39),
}
DOWNSTREAM = ("logistic_small", "logistic_large", "logistic_efficiency", "gbt_small",
              "gbt_large", "gbt_efficiency")
DOWNSTREAM_HEAD = ("LR 100", "LR 10,000", "LR efficiency", "GBT 100", "GBT (DCI rows)",
                   "GBT efficiency")


def _pct(value: float) -> str:
    return f"{100 * value:.0f} %"


def _corr(c: Mapping[str, Any]) -> str:
    star = " *" if c.get("beyond_noise") else ""
    return f"{c['rho']:.2f} [{c['low']:.2f}, {c['high']:.2f}]{star}"


def _ms(s: Mapping[str, float], digits: int = 3) -> str:
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def format_variance_rst(r2: Mapping[str, Mapping[str, float]]) -> str:
    """R^2 per metric: the objective (permutation p), the (objective, hyper-parameter) cells,
    the hyper-parameter's gain within the objective (p), the rest, the seed index (p), and the
    paper's objective / cell R^2."""
    body = []
    for metric, v in r2.items():
        paper = PAPER_R2.get(metric)
        body.append([
            LABELS.get(metric, metric),
            f"{_pct(v['r2_objective'])} (p {v['p_objective']:.2f})",
            _pct(v["r2_objective_x_hyperparameter"]),
            f"+{_pct(v['r2_hyperparameter_within_objective'])} "
            f"(p {v['p_hyperparameter_within_objective']:.2f})",
            _pct(v["r2_seed_within_configuration"]),
            f"{_pct(v['r2_seed'])} (p {v['p_seed']:.2f})",
            f"{_pct(paper[0])} / {_pct(paper[1])}" if paper else "-",
        ])
    return _rst(["metric", "objective", "obj. x hyper-param.", "hyper-param. within obj.",
                 "seed (rest)", "seed index", "paper, dSprites"], body)


def format_agreement_rst(pairs: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> str:
    """The symmetric matrix of the pairwise Spearman correlations ``pairs``."""
    cell = {}
    for c in pairs:
        text = f"{c['rho']:.2f}" + ("*" if c["beyond_noise"] else "")
        cell[c["a"], c["b"]] = cell[c["b"], c["a"]] = text
    body = [[LABELS.get(a, a), *("1" if a == b else cell.get((a, b), "-") for b in metrics)]
            for a in metrics]
    return _rst(["metric", *(LABELS.get(m, m) for m in metrics)], body)


def format_tc_rst(tc: Sequence[Mapping[str, Any]]) -> str:
    """Sampled and mean Gaussian TC at each objective's weaker and stronger setting."""
    body = [[LABELS.get(r["model"], r["model"]), f"{r['weak']:g} -> {r['strong']:g}",
             _ms(r["tc_sampled_weak"]), _ms(r["tc_sampled_strong"]), _ms(r["tc_mean_weak"]),
             _ms(r["tc_mean_strong"])] for r in tc]
    return _rst(["model", "regularisation", "sampled TC, weak", "sampled TC, strong",
                 "mean TC, weak", "mean TC, strong"], body)


def format_selection_rst(rows: Sequence[Mapping[str, Any]]) -> str:
    """Each unsupervised score against each target metric."""
    body = [[r["score"], LABELS.get(r["target"], r["target"]), _corr(r["pooled"]),
             f"{r['within_objective_mean_rho']:.2f}", f"{r['top_half_rate']:.2f}"]
            for r in rows]
    return _rst(["score", "target", "rank corr. [95 %], all runs", "within objectives",
                 "pick in top half"], body)


def format_downstream_rst(models: Sequence[Mapping[str, Any]]) -> str:
    """Downstream accuracy and efficiency per model (mean ± std over its runs)."""
    body = [[LABELS.get(r["model"], r["model"]), *(_ms(r[k]) for k in DOWNSTREAM)]
            for r in models]
    return _rst(["model", *DOWNSTREAM_HEAD], body)


def format_downstream_rank_rst(rows: Sequence[Mapping[str, Any]]) -> str:
    """Spearman of each metric with each downstream target."""
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    targets = sorted({r["target"] for r in rows})
    cell = {(r["metric"], r["target"]): _corr(r) for r in rows}
    body = [[LABELS.get(m, m), *(cell.get((m, t), "-") for t in targets)] for m in metrics]
    return _rst(["metric", *targets], body)


def readme_tables(result: Mapping[str, Any], metrics: Sequence[str]) -> str:
    """Every README table of the study, with a title line each."""
    parts = [
        ("Variance explained (unsupervised runs)",
         format_variance_rst(result["r2"]["unsupervised"])),
        ("Metric agreement (Spearman, unsupervised runs)",
         format_agreement_rst(result["metric_agreement"], metrics)),
        ("Total correlation by regularisation", format_tc_rst(result["tc"])),
        ("Unsupervised model selection", format_selection_rst(result["model_selection"])),
        ("Downstream accuracy", format_downstream_rst(result["models"])),
        ("Downstream rank correlations", format_downstream_rank_rst(result["downstream"])),
    ]
    return "\n\n".join(f"{title}:\n{table}" for title, table in parts)
