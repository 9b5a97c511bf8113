"""The disentanglement benchmark's smoke mode writes DESIGN.md's JSON and its figures."""
import json
import math

from pyro_groups.experiments.disentanglement import METRICS, smoke_config

from benchmark_scripts import load_benchmark


def test_smoke_run_writes_json_and_figures(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYRO_GROUPS_SMOKE", "1")
    script = load_benchmark("disentanglement")
    assert script.smoke_requested(False)
    assert script.main(["--out", str(tmp_path), "--no-progress"]) == 0
    out = json.loads((tmp_path / "results.json").read_text())
    assert out["benchmark"] == "disentanglement"
    assert set(out["environment"]) >= {"torch", "pyro", "device", "threads"}
    assert out["config"]["image_size"] == 16 and out["config"]["seeds"] == 2
    models = smoke_config().models
    assert [r["model"] for r in out["models"]] == list(models)
    assert {r["model"] for r in out["results"]} == set(models)
    rows = [(r, 2) for r in out["results"]] + [(r, 4) for r in out["models"]]
    for row, n in rows:  # 2 seeds per value; 2 values x 2 seeds per model
        assert len(row["hyperparameter"]) == 1
        for m in METRICS + ("reconstruction_nll", "kl", "elbo", "tc_sampled", "tc_mean"):
            cell = row[m]
            assert set(cell) == {"mean", "std", "n"} and cell["n"] == n
            assert cell["mean"] is None or math.isfinite(cell["mean"])
        assert 0.0 <= row["beta_vae_score"]["mean"] <= 1.0
        assert row["reconstruction_nll"]["mean"] > 0
    assert len(out["runs"]) == len(models) * 2 * 2
    assert len(list((tmp_path / "runs").glob("*.json"))) == len(out["runs"])  # resumable
    rho = out["rank_correlation"]["spearman"]
    assert out["rank_correlation"]["metrics"] == list(METRICS) and len(rho) == len(METRICS)
    assert all(rho[i][i] == 1.0 for i in range(len(METRICS)))
    for group in ("unsupervised", "all_models"):
        assert set(out["r2"][group]) == set(METRICS)
        keys = out["r2"][group]["mig"]
        assert {"r2_objective", "r2_objective_x_hyperparameter", "r2_seed",
                "r2_seed_within_configuration"} <= set(keys)
    assert {r["model"] for r in out["tc"]} == {"beta_vae", "beta_tcvae"}
    scores = {s["score"] for s in out["model_selection"]}
    assert scores == {"elbo", "reconstruction", "tc_sampled", "tc_mean"}
    assert out["downstream"] and out["findings"]
    assert out["cpu_seconds"] > 0
    for name in [
        "rank_correlation.png",
        "scores_by_seed.png",
        "tc_by_regularisation.png",
        "model_selection.png",
        "downstream.png",
        "reconstructions.png",
        "traversal_beta_vae.png",
    ]:
        assert name in out["figures"]
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert "beta_vae" in capsys.readouterr().out
    assert script.main(["--out", str(tmp_path), "--no-progress", "--seeds", "1",
                        "--no-figures"]) == 0  # another grid: seed 0's runs are reused
    again = json.loads((tmp_path / "results.json").read_text())
    assert again["resumed_runs"] == len(again["runs"]) == len(models) * 2
    first = {(r["model"], r["value"]): r["metrics"]["mig"] for r in out["runs"] if r["seed"] == 0}
    assert {(r["model"], r["value"]): r["metrics"]["mig"] for r in again["runs"]} == first
