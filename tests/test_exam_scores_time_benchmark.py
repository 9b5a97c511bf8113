"""The exam-scores time estimate runs in smoke mode and writes DESIGN.md's JSON."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark_scripts import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
makespan = load_benchmark("exam_scores_time").makespan


@pytest.mark.parametrize("seconds, cores, expected", [
    ([5.0, 4.0, 3.0, 3.0], 2, 8.0),  # 5 + 3 | 4 + 3: each job goes to the first free worker
    ([5.0, 4.0, 3.0], 1, 12.0),
    ([2.0], 4, 2.0),
])
def test_makespan_schedules_jobs_in_order_on_free_workers(seconds, cores, expected):
    assert makespan(seconds, cores) == expected


def test_smoke_run_writes_json(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYRO_GROUPS_SMOKE")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "exam_scores_time.py"), "--smoke-test",
         "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["benchmark"] == "exam_scores_time" and result["config"]["smoke_test"] is True
    assert set(result["environment"]) == {"torch", "pyro", "device", "threads"}
    replicated, solo = result["results"]
    assert (replicated["variant"], solo["variant"]) == ("replicated", "solo")
    assert sorted(len(j["runs"]) for j in replicated["jobs"]) == [2, 2]
    assert solo["job_count"] == 4 and len(solo["jobs"]) == 2  # 2 rows timed, 2 seeds each
    for r in (replicated, solo):
        assert 0 < r["lower_bound_minutes"] <= r["minutes"] <= r["cpu_seconds"] / 60
        assert all(j["epoch_cpu_seconds"] > j["callback_cpu_seconds_per_epoch"] > 0
                   for j in r["jobs"])
