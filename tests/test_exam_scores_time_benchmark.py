"""The exam-scores time estimate runs in smoke mode and writes DESIGN.md's JSON."""
import pytest

from benchmark_scripts import load_benchmark, run_smoke

makespan = load_benchmark("exam_scores_time").makespan


@pytest.mark.parametrize("seconds, cores, expected", [
    ([5.0, 4.0, 3.0, 3.0], 2, 8.0),  # 5 + 3 | 4 + 3: each job goes to the first free worker
    ([5.0, 4.0, 3.0], 1, 12.0),
    ([2.0], 4, 2.0),
])
def test_makespan_schedules_jobs_in_order_on_free_workers(seconds, cores, expected):
    assert makespan(seconds, cores) == expected


def test_smoke_run_writes_json(tmp_path):
    result = run_smoke("exam_scores_time", tmp_path)
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
