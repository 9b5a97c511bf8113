"""The group-tcVAE benchmark runs in smoke mode and writes DESIGN.md's JSON."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_run_writes_json(tmp_path):
    out = tmp_path / "group_tcvae.json"
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYRO_GROUPS_SMOKE")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "group_tcvae.py"), "--smoke-test",
         "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == "group_tcvae"
    assert set(result["environment"]) == {"torch", "pyro", "device", "threads"}
    assert result["config"]["smoke_test"] is True
    assert [r["model"] for r in result["results"]] == ["group_tcvae", "gvae", "mlvae"]
    for row in result["results"]:
        for metric in ("mig", "group_mig", "group_mig_u", "group_mig_v"):
            assert set(row[metric]) == {"mean", "std", "n"} and row[metric]["n"] == 1
            assert -1.0 <= row[metric]["mean"] <= 1.0
    tc_run = result["results"][0]["runs"][0]
    assert {"tc_estimate", "pair_kl_mean", "discriminator_loss_last_epoch"} <= set(tc_run)
