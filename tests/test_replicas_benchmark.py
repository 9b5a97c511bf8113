"""The replicated-seeds benchmark runs in smoke mode and writes DESIGN.md's JSON."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_run_writes_json(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYRO_GROUPS_SMOKE")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "replicas.py"), "--smoke-test",
         "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["benchmark"] == "replicas" and result["config"]["smoke_test"] is True
    assert set(result["environment"]) == {"torch", "pyro", "device", "threads"}
    assert [(r["row"], r["replicas"]) for r in result["results"]] == [
        ("cxvae", 1), ("cxvae", 2), ("gvae", 1), ("gvae", 2)
    ]
    for r in result["results"]:
        assert r["ratio"] > 0 and r["solo_seconds_per_step"] > 0
        assert r["replicated_cpu_seconds_per_step"] > 0 and r["groups"] == 32
    assert (tmp_path / "replicas.png").stat().st_size > 0
