"""The replicated-seeds benchmark runs in smoke mode and writes DESIGN.md's JSON."""
from benchmark_scripts import run_smoke


def test_smoke_run_writes_json(tmp_path):
    result = run_smoke("replicas", tmp_path)
    assert result["benchmark"] == "replicas" and result["config"]["smoke_test"] is True
    assert set(result["environment"]) == {"torch", "pyro", "device", "threads"}
    assert [(r["row"], r["replicas"]) for r in result["results"]] == [
        ("cxvae", 1), ("cxvae", 2), ("gvae", 1), ("gvae", 2)
    ]
    for r in result["results"]:
        assert r["ratio"] > 0 and r["solo_seconds_per_step"] > 0
        assert r["replicated_cpu_seconds_per_step"] > 0 and r["groups"] == 32
    assert (tmp_path / "replicas.png").stat().st_size > 0
