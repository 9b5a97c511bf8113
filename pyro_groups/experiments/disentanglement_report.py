"""The report of the Locatello study: the paper's claims checked on our runs, and tables.

Each finding is ``{"claim", "reproduced", "beyond_noise", "detail"}``: ``beyond_noise`` tells a
difference or correlation from seed noise (two standard errors of a difference of seed means,
a Fisher-z interval of a rank correlation excluding 0, or a permutation p-value below 0.05);
``None`` where the claim is an absence (no correlation) that noise cannot confirm, or with
fewer than two seeds. ``detail`` gives the numbers.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from pyro_groups.experiments.exam_scores_report import _lower, describe

__all__ = ["LABELS", "describe", "findings", "format_r2_rst", "format_rst", "format_table"]

LABELS = {
    "beta_vae_score": "BetaVAE", "factor_vae_score": "FactorVAE", "mig": "MIG",
    "dci_disentanglement": "DCI", "sap": "SAP", "modularity": "Modul.", "group_mig": "g-MIG",
    "reconstruction_nll": "NLL", "beta_vae": "beta-VAE", "annealed_vae": "AnnealedVAE",
    "factor_vae": "FactorVAE", "beta_tcvae": "beta-TCVAE", "dip_vae_i": "DIP-VAE-I",
    "dip_vae_ii": "DIP-VAE-II", "gvae": "GVAE", "mlvae": "ML-VAE",
}


def _rho(c: dict[str, Any]) -> str:
    return f"{c['rho']:.2f} [{c['low']:.2f}, {c['high']:.2f}]"


def findings(runs: list[dict], analysis: dict[str, Any], cfg: Any) -> list[dict[str, Any]]:
    """Locatello et al.'s claims (Sec. 5.1-5.5) on our runs; see the module docstring."""
    out: list[dict[str, Any]] = []

    def add(claim: str, ok: bool, beyond: Optional[bool], detail: str) -> None:
        if "nan" in detail:
            return  # not measured (e.g. a score constant over the runs)
        out.append({"claim": claim, "reproduced": bool(ok), "beyond_noise": beyond,
                    "detail": detail})

    for row in analysis["tc"]:
        name = LABELS.get(row["model"], row["model"])
        ok, beyond = _lower(row["tc_sampled_strong"], row["tc_sampled_weak"])
        add(f"{name}: the sampled representation's TC falls as the regularisation grows "
            f"({row['weak']:g} -> {row['strong']:g})", ok, beyond,
            f"{row['tc_sampled_weak']['mean']:.3f} -> {row['tc_sampled_strong']['mean']:.3f}")
        ok, beyond = _lower(row["tc_mean_weak"], row["tc_mean_strong"])
        add(f"{name}: the mean representation's TC rises as the regularisation grows", ok,
            beyond, f"{row['tc_mean_weak']['mean']:.3f} -> {row['tc_mean_strong']['mean']:.3f}")

    pairs = {(c["a"], c["b"]): c for c in analysis["metric_agreement"]}

    def pair(a: str, b: str) -> Optional[dict]:
        return pairs.get((a, b)) or pairs.get((b, a))

    agreements = (("mig", "dci_disentanglement", "MIG and DCI Disentanglement agree"),
                  ("beta_vae_score", "factor_vae_score", "the BetaVAE and FactorVAE scores agree"))
    for a, b, text in agreements:
        c = pair(a, b)
        if c and c["n"] > 3:
            add(f"{text} (positive rank correlation)", c["rho"] > 0, c["beyond_noise"], _rho(c))
    others = [m for m in analysis["rank_correlation"]["metrics"]
              if m not in ("modularity", "group_mig")]
    mod = [c for c in (pair("modularity", m) for m in others) if c is not None and c["n"] > 3]
    if mod:
        ok = not any(c["beyond_noise"] and c["rho"] > 0 for c in mod)
        add("modularity does not agree with the other metrics (no positive rank correlation "
            "beyond noise)", ok, None,
            ", ".join(f"{LABELS.get(c['b'] if c['a'] == 'modularity' else c['a'])} {_rho(c)}"
                      for c in mod))

    r2 = analysis["r2"]["unsupervised"]
    for m, v in r2.items():
        name = LABELS.get(m, m)
        add(f"{name}: the objective alone explains less than half of the variance",
            v["r2_objective"] < 0.5, None,
            f"R^2 {v['r2_objective']:.2f} (adjusted {v['r2_objective_adjusted']:.2f}, "
            f"permutation p {v['p_objective']:.3f})")
        add(f"{name}: the hyper-parameter within the objective explains more",
            v["r2_hyperparameter_within_objective"] > 0,
            v["p_hyperparameter_within_objective"] < 0.05,
            f"+{v['r2_hyperparameter_within_objective']:.2f} (p "
            f"{v['p_hyperparameter_within_objective']:.3f})")
        add(f"{name}: the seed leaves a substantial share (over 20 %) of the variance",
            v["r2_seed_within_configuration"] > 0.2, None,
            f"{v['r2_seed_within_configuration']:.2f}")

    for s in analysis["model_selection"]:
        c = s["pooled"]
        good = c["rho"] > 0 and c["beyond_noise"]
        add(f"the {s['score']} does not reliably pick the runs with the best "
            f"{LABELS.get(s['target'], s['target'])} (no positive rank correlation beyond noise)",
            not good, None, f"rho {_rho(c)}, within objectives "
            f"{s['within_objective_mean_rho']:.2f}, picked run in the top half for "
            f"{s['top_half_rate']:.0%} of objectives")

    down = {(c["metric"], c["target"]): c for c in analysis["downstream"]}
    for m in ("mig", "dci_disentanglement", "factor_vae_score"):
        for t in ("logistic_efficiency", "gbt_efficiency"):
            c = down.get((m, t))
            if c and c["n"] > 3:
                add(f"a higher {LABELS[m]} does not give a higher sample efficiency ({t})",
                    not (c["rho"] > 0 and c["beyond_noise"]), None, _rho(c))
        c = down.get((m, "logistic_large"))
        if c and c["n"] > 3:
            add(f"a higher {LABELS[m]} goes with a higher downstream accuracy (logistic, many "
                "labels)", c["rho"] > 0, c["beyond_noise"], _rho(c))
    return out


def format_table(rows: list[dict[str, Any]], metrics: Sequence[str]) -> str:
    """A plain-text table (mean ± std over runs) of ``summarize_runs`` rows."""
    head = f"{'model':<14}{'setting':<18}" + "".join(f"{m[:12]:>14}" for m in metrics)
    lines = [head, "-" * len(head)]
    for r in rows:
        (param, value), = r["hyperparameter"].items()
        setting = f"{param}={value}" if not isinstance(value, list) else "all"
        cells = "".join(f"{r[m]['mean']:>8.3f}±{r[m]['std']:<5.2f}" for m in metrics)
        lines.append(f"{r['model']:<14}{setting:<18}{cells}")
    return "\n".join(lines)


def _rst(head: list[str], body: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    rule = "  ".join("=" * w for w in widths)
    lines = [rule, "  ".join(h.rjust(w) if i else h.ljust(w)
                             for i, (h, w) in enumerate(zip(head, widths))).rstrip(), rule]
    lines += ["  ".join(c.rjust(w) if i else c.ljust(w)
                        for i, (c, w) in enumerate(zip(line, widths))).rstrip() for line in body]
    return "\n".join([*lines, rule])


def format_rst(rows: list[dict[str, Any]], metrics: Sequence[str], digits: int = 2) -> str:
    """README table: one row per model (mean ± std over all its runs)."""
    body = [[LABELS.get(r["model"], r["model"]),
             *(f"{r[m]['mean']:.{digits}f} ± {r[m]['std']:.{digits}f}" for m in metrics)]
            for r in rows]
    return _rst(["model", *(LABELS.get(m, m) for m in metrics)], body)


def format_r2_rst(r2: dict[str, dict[str, float]]) -> str:
    """README table of :func:`~.disentanglement_analysis.variance_explained`: percentages."""
    keys = [("r2_objective", "objective"), ("r2_objective_adjusted", "(adjusted)"),
            ("r2_objective_x_hyperparameter", "objective x hyper-param."),
            ("r2_objective_x_hyperparameter_adjusted", "(adjusted)"),
            ("r2_seed_within_configuration", "seed (rest)"), ("r2_seed", "seed index")]
    body = [[LABELS.get(m, m), *(f"{100 * v[k]:.0f} %" for k, _ in keys)] for m, v in r2.items()]
    return _rst(["metric", *(h for _, h in keys)], body)
