"""The group-tcVAE benchmark runs in smoke mode and writes DESIGN.md's JSON and its figures."""
import json

from pyro_groups.experiments.group_tcvae import METRICS

from benchmark_scripts import load_benchmark


def test_smoke_run_writes_json_and_figures(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYRO_GROUPS_SMOKE", "1")
    script = load_benchmark("group_tcvae")
    assert script.main(["--out", str(tmp_path), "--no-progress"]) == 0
    out = json.loads((tmp_path / "results.json").read_text())
    assert out["benchmark"] == "group_tcvae"
    assert set(out["environment"]) == {"torch", "pyro", "device", "threads"}
    config = out["config"]
    assert config["levels"] == ["inter"] and config["betas"] == [10.0]
    assert config["gammas"] == [8.0] and config["baseline_betas"] == [1.0]
    assert {r["model"] for r in out["results"]} == {"gvae", "mlvae", "group_tcvae_inter"}
    for row in out["results"]:
        assert row["dataset"] in ("sprites", "shapes3d")
        for metric in METRICS:
            assert set(row[metric]) == {"mean", "std", "n"} and row[metric]["n"] == 1
            assert -1.0 <= row[metric]["mean"] <= 1.0
    tc = [r for r in out["results"] if r["model"] == "group_tcvae_inter"][0]
    assert (tc["level"], tc["beta"], tc["gamma"]) == ("inter", 10.0, 8.0)
    run = [r for r in out["runs"] if r["model"] == "group_tcvae"][0]
    assert len(run["mi"]) == 5 + 2 and len(run["mi"][0]) == 5  # [u, v] dims x sprites factors
    assert {r["group_size"] for r in out["sensitivity"]} == {2, 4}
    assert out["findings"] and all("claim" in f for f in out["findings"])
    assert out["cpu_seconds"] > 0
    for name in ["distributions.png", "collapse.png", "content_vs_rest.png", "sensitivity.png"]:
        assert name in out["figures"]
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert len(list((tmp_path / "runs").glob("*.json"))) == len(out["runs"])
    assert "group-tcVAE" in capsys.readouterr().out
