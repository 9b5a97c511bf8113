"""The report of the Exam-Scores comparison: the paper's numbers, its claims checked on ours, and
tables (plain text for the console, reStructuredText for the README).

A row is ``{"model": name, metric: {"mean", "std", "n"}, ..., "paper": {...}}`` as written to
``results.json`` by :func:`pyro_groups.experiments.exam_scores.run`.
"""
from __future__ import annotations

import math
from typing import Any, Optional

__all__ = [
    "ABLATIONS",
    "EXTRA_METRICS",
    "METRICS",
    "PAPER",
    "describe",
    "findings",
    "format_rst",
    "format_table",
]

METRICS = ("rec_err", "trans_err", "u_pred_err", "v_pred_err")
EXTRA_METRICS = ("rec_err_mean", "trans_err_mean", "u_pred_err_abs")

# Tables 1 and 2 of the CxVAE paper, 7 runs: (mean, std) of REC, TRANS, u-PRED and v-PRED ERR.
_PAPER_ROWS: dict[str, tuple[tuple[float, float], ...]] = {
    "cxvae": ((52.1, 0.6), (219.5, 4.7), (53.3, 1.2), (30.2, 0.3)),
    "mlvae": ((69.8, 1.6), (738.8, 13.6), (63.4, 1.0), (63.0, 0.3)),
    "gvae": ((71.9, 4.3), (742.9, 14.4), (63.1, 0.9), (63.0, 0.4)),
    "gvae-reg": ((70.0, 1.4), (735.3, 13.0), (63.8, 1.1), (63.0, 0.5)),
    "cxvae-u-average": ((53.6, 2.2), (224.7, 10.0), (53.4, 1.1), (30.9, 1.1)),
    "cxvae-u-product": ((54.9, 2.8), (229.2, 7.8), (53.4, 0.9), (31.4, 1.0)),
    "cxvae-v-unconditional": ((72.3, 3.6), (729.0, 15.1), (63.6, 1.2), (63.0, 0.3)),
    "cxvae-reg-none": ((54.1, 1.9), (235.5, 16.5), (53.6, 1.4), (31.6, 1.5)),
    "cxvae-reg-unconditional": ((53.7, 1.2), (225.7, 5.7), (53.5, 1.1), (30.8, 0.6)),
}
PAPER: dict[str, dict[str, tuple[float, float]]] = {
    name: dict(zip(METRICS, values)) for name, values in _PAPER_ROWS.items()
}

# Table 2's rows: each replaces one CxVAE component and keeps the others.
ABLATIONS = (
    "cxvae-u-average",
    "cxvae-u-product",
    "cxvae-v-unconditional",
    "cxvae-reg-none",
    "cxvae-reg-unconditional",
)


def _lower(
    a: dict[str, Any], b: dict[str, Any], factor: float = 1.0
) -> tuple[bool, Optional[bool]]:
    """Is ``a`` (a ``summarize`` dict) below ``factor * b``, and by more than two standard errors
    of the difference (``None`` when either has fewer than two seeds)?"""
    diff = factor * b["mean"] - a["mean"]
    na, nb = int(a.get("n", 1)), int(b.get("n", 1))
    if min(na, nb) < 2:
        return diff > 0, None
    se = math.sqrt(a["std"] ** 2 / na + (factor * b["std"]) ** 2 / nb)
    return diff > 0, abs(diff) > 2.0 * se


def findings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check the paper's claims on our numbers.

    Each finding says whether the paper's direction ``reproduced`` and whether that verdict is
    ``beyond_noise``: the differences that decide it are larger than two standard errors of the
    difference of the seed means (a held claim: all its comparisons; a failed one: any failing
    comparison; ``None`` with one seed), so a claim can hold or fail *within* seed noise.
    """
    by = {r["model"]: r for r in rows}
    out: list[dict[str, Any]] = []

    def claim(text: str, checks: list[tuple[bool, Optional[bool]]]) -> None:
        ok = all(c[0] for c in checks)
        # Held: every comparison clears the noise. Failed: some failing comparison does.
        deciding = [c[1] for c in checks if ok or not c[0]]
        beyond = None if None in deciding else (all(deciding) if ok else any(deciding))
        out.append({"claim": text, "reproduced": ok, "beyond_noise": beyond})

    def lower(a: str, b: str, metric: str = "trans_err", factor: float = 1.0) -> Any:
        return _lower(by[a][metric], by[b][metric], factor)

    if {"cxvae", "gvae", "mlvae"} <= by.keys():
        for m in METRICS:
            claim(
                f"CxVAE has a lower {m} than GVAE and ML-VAE",
                [lower("cxvae", o, m) for o in ("gvae", "mlvae")],
            )
        claim(
            "CxVAE's trans_err is at most half of GVAE's and ML-VAE's",
            [lower("cxvae", o, factor=0.5) for o in ("gvae", "mlvae")],
        )
    ablations = [n for n in ABLATIONS if n in by]
    if "cxvae-v-unconditional" in by and len(ablations) > 1:
        claim(
            "the unconditional instance encoder is the ablation that loses most (trans_err)",
            [lower(n, "cxvae-v-unconditional") for n in ablations if n != "cxvae-v-unconditional"],
        )
    if {"cxvae", "gvae-reg"} <= by.keys():
        claim(
            "CxVAE's trans_err is at most half of GVAE + REG's (Németh's penalty does not make up "
            "for the unconditional instance encoder)",
            [lower("cxvae", "gvae-reg", factor=0.5)],
        )
    if {"gvae", "gvae-reg"} <= by.keys():
        claim("Németh's penalty lowers GVAE's trans_err", [lower("gvae-reg", "gvae")])
    if {"cxvae", "cxvae-reg-none"} <= by.keys():
        claim(
            "the set-based penalty lowers CxVAE's trans_err (vs. no regulariser)",
            [lower("cxvae", "cxvae-reg-none")],
        )
    if {"cxvae", "cxvae-reg-none"} <= {n for n, r in by.items() if "v_leak" in r}:
        claim(
            "the set-based penalty lowers the group information left in CxVAE's instance codes "
            "(held-out probe of I(x_-k; v_k), vs. no regulariser)",
            [lower("cxvae", "cxvae-reg-none", "v_leak")],
        )
    if {"cxvae", "cxvae-reg-unconditional"} <= by.keys():
        claim(
            "the set-based penalty gives a lower trans_err than the one-observation penalty in "
            "CxVAE",
            [lower("cxvae", "cxvae-reg-unconditional")],
        )
    return out


def describe(finding: dict[str, Any]) -> str:
    """One line for a finding: ``reproduced`` / ``NOT reproduced``, with a note when the
    difference is within seed noise, and the finding's ``detail`` (its numbers) when it has one."""
    verdict = "reproduced" if finding["reproduced"] else "NOT reproduced"
    if finding.get("beyond_noise") is False:
        verdict += " (within seed noise)"
    detail = f": {finding['detail']}" if finding.get("detail") else ""
    return f"{verdict}: {finding['claim']}{detail}"


def _columns(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """The metrics every row has: ``METRICS``, then ``v_leak`` when it was measured."""
    return METRICS + (("v_leak",) if rows and all("v_leak" in r for r in rows) else ())


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table: ours (mean +- std over seeds) beside the paper's."""
    columns = _columns(rows)
    head = f"{'model':<26}" + "".join(f"{m:>22}" for m in columns)
    lines = [head, "-" * len(head)]
    for r in rows:
        ours = "".join(f"{r[m]['mean']:>13.3f} ± {r[m]['std']:<6.3f}" for m in columns)
        lines.append(f"{r['model']:<26}{ours}")
        if r["paper"]:
            paper = "".join(
                f"{r['paper'][m]['mean']:>13.1f} ± {r['paper'][m]['std']:<6.1f}" for m in METRICS
            )
            lines.append(f"{'  paper':<26}{paper}")
    return "\n".join(lines)


_HEADS = {
    "rec_err": "REC ERR",
    "trans_err": "TRANS ERR",
    "u_pred_err": "u-PRED ERR",
    "v_pred_err": "v-PRED ERR",
    "v_leak": "I(x_-k; v_k)",
}


def format_rst(rows: list[dict[str, Any]], labels: Optional[dict[str, str]] = None) -> str:
    """The README's table (reStructuredText): ours (mean ± std over seeds) and the paper's means.

    :param rows: ``results.json``'s ``"results"``.
    :param labels: display names by row name (default: the row names).
    """
    labels = labels or {}
    columns = _columns(rows)
    body = []
    for r in rows:
        ours = [f"{r[m]['mean']:.3f} ± {r[m]['std']:.3f}" for m in columns]
        paper = " / ".join(f"{r['paper'][m]['mean']:.1f}" for m in METRICS) if r["paper"] else ""
        body.append([labels.get(r["model"], r["model"]), *ours, paper])
    head = ["model", *(_HEADS[m] for m in columns), "paper REC / TRANS / u / v"]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    rule = "  ".join("=" * w for w in widths)
    fmt = [rule, "  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip(), rule]
    fmt += ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in body]
    return "\n".join([*fmt, rule])
