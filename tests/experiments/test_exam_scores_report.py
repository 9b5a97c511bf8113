"""The report of ``pyro-groups exam-scores``: findings and tables from given rows."""
from __future__ import annotations

from typing import Any

import pytest

from pyro_groups.experiments.exam_scores_report import (
    METRICS,
    PAPER,
    describe,
    findings,
    format_rst,
    format_table,
)


def _rows(scale: dict[str, float]) -> list[dict[str, Any]]:
    """Rows whose every metric is the paper's mean times ``scale[name]`` (std 0.1)."""
    rows = []
    for name, factor in scale.items():
        row: dict[str, Any] = {"model": name}
        for m in METRICS:
            row[m] = {"mean": PAPER[name][m][0] * factor, "std": 0.1}
        row["paper"] = {m: {"mean": v[0], "std": v[1], "n": 7} for m, v in PAPER[name].items()}
        rows.append(row)
    return rows


def test_findings_reproduce_on_the_papers_own_numbers() -> None:
    out = findings(_rows({name: 1.0 for name in PAPER}))
    claims = {f["claim"]: f["reproduced"] for f in out}
    assert len(claims) == 10
    assert claims["Németh's penalty lowers GVAE's trans_err"]
    assert claims["the set-based penalty lowers CxVAE's trans_err (vs. no regulariser)"]
    assert all(claims.values())


def test_findings_fail_when_cxvae_is_no_better() -> None:
    scale = {name: 1.0 for name in PAPER}
    scale["cxvae"] = 4.0
    claims = {f["claim"]: f["reproduced"] for f in findings(_rows(scale))}
    assert not claims["CxVAE has a lower trans_err than GVAE and ML-VAE"]
    assert not claims["CxVAE's trans_err is at most half of GVAE's and ML-VAE's"]
    assert not claims["the set-based penalty lowers CxVAE's trans_err (vs. no regulariser)"]
    assert claims["the unconditional instance encoder is the ablation that loses most (trans_err)"]


def test_probe_finding_and_column_appear_only_when_measured() -> None:
    rows = _rows({"cxvae": 1.0, "cxvae-reg-none": 1.0})
    assert not any("probe" in f["claim"] for f in findings(rows))
    assert "I(x_-k; v_k)" not in format_rst(rows)
    for r, leak in zip(rows, (0.01, 0.2)):
        r["v_leak"] = {"mean": leak, "std": 0.0}
    probe = [f for f in findings(rows) if "probe" in f["claim"]]
    assert len(probe) == 1 and probe[0]["reproduced"]
    assert "I(x_-k; v_k)" in format_rst(rows) and "0.200 ± 0.000" in format_table(rows)
    rows[0]["v_leak"]["mean"] = 0.3
    assert not [f for f in findings(rows) if "probe" in f["claim"]][0]["reproduced"]


def test_findings_skip_claims_whose_rows_are_missing() -> None:
    assert findings(_rows({"cxvae": 1.0})) == []


@pytest.mark.parametrize("fmt", [format_rst, format_table])
def test_tables_hold_every_row_and_the_papers_numbers(fmt: Any) -> None:
    text = fmt(_rows({name: 0.5 for name in PAPER}))
    for name in PAPER:
        assert name in text
    assert "219.5" in text and "109.750" in text


def test_rst_table_is_well_formed() -> None:
    text = format_rst(_rows({"cxvae": 1.0, "gvae": 1.0}), labels={"cxvae": "CxVAE (set penalty)"})
    lines = text.splitlines()
    rule = lines[0]
    assert lines[2] == rule and lines[-1] == rule and len(lines) == 6
    columns = [len(c) for c in rule.split("  ")]
    assert len(columns) == 6
    starts = [sum(columns[:i]) + 2 * i for i in range(6)]
    for line in lines[1:-1]:
        for s in starts[1:]:
            assert line[s - 2 : s] == "  " and line[s] != " "
    assert lines[3].startswith("CxVAE (set penalty)")
    assert lines[3].endswith("52.1 / 219.5 / 53.3 / 30.2")


def _two(cx: tuple[float, float], none: tuple[float, float], n: int = 3) -> list[dict[str, Any]]:
    rows = _rows({"cxvae": 1.0, "cxvae-reg-none": 1.0})
    for r, (mean, std) in zip(rows, (cx, none)):
        r["trans_err"] = {"mean": mean, "std": std, "n": n}
    return rows


@pytest.mark.parametrize(
    "cx, none, n, reproduced, beyond",
    [
        ((4.0, 0.1), (5.0, 0.1), 3, True, True),  # 1.0 apart, 2 se = 0.16
        ((4.0, 1.0), (5.0, 1.0), 3, True, False),  # 2 se = 1.63
        ((5.0, 0.1), (4.0, 0.1), 3, False, True),
        ((4.9, 1.0), (4.8, 0.8), 3, False, False),
        ((4.0, 0.0), (5.0, 0.0), 1, True, None),  # one seed: no noise estimate
    ],
)
def test_findings_tell_noise_from_effect(
    cx: tuple[float, float], none: tuple[float, float], n: int, reproduced: bool, beyond: Any
) -> None:
    (f,) = [f for f in findings(_two(cx, none, n)) if "vs. no regulariser" in f["claim"]]
    assert f["reproduced"] is reproduced and f["beyond_noise"] is beyond
    text = describe(f)
    assert text.startswith("reproduced" if reproduced else "NOT reproduced")
    assert ("within seed noise" in text) is (beyond is False)
