"""The compile benchmark runs in smoke mode and writes DESIGN.md's JSON with paired ratios."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_run_writes_json(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYRO_GROUPS_SMOKE")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "compile.py"), "--smoke-test", "--out",
         str(tmp_path), "--cases", "cxvae"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["benchmark"] == "compile"
    assert set(result["environment"]) == {"torch", "pyro", "device", "threads"}
    assert result["config"]["smoke_test"] is True
    assert [(r["case"], r["penalised"]) for r in result["results"]] == [("cxvae", True)]
    for row in result["results"]:
        assert row["ratio"] > 0 and row["eager_seconds_per_step"] > 0
        assert row["ratio_range"][0] <= row["ratio"] <= row["ratio_range"][1]
    assert result["cpu_seconds"] > 0
