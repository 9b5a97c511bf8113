"""The disentanglement benchmark's smoke mode writes DESIGN.md's JSON and its figures."""
import importlib.util
import json
import math
from pathlib import Path

from pyro_groups.experiments.disentanglement import METRICS, MODELS

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location(
        "bench_disentanglement", ROOT / "benchmarks" / "disentanglement.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_writes_json_and_figures(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYRO_GROUPS_SMOKE", "1")
    script = load_script()
    assert script.smoke_requested(False)
    assert script.main(["--out", str(tmp_path), "--no-progress"]) == 0
    out = json.loads((tmp_path / "results.json").read_text())
    assert out["benchmark"] == "disentanglement"
    assert set(out["environment"]) >= {"torch", "pyro", "device", "threads"}
    assert out["config"]["image_size"] == 16 and out["config"]["seeds"] == 2
    assert [r["model"] for r in out["models"]] == list(MODELS)
    assert {r["model"] for r in out["results"]} == set(MODELS)
    for row in out["results"] + out["models"]:
        assert len(row["hyperparameter"]) == 1
        for m in METRICS + ("reconstruction_nll", "kl"):
            cell = row[m]
            assert set(cell) == {"mean", "std", "n"} and cell["n"] == 2
            assert cell["mean"] is None or math.isfinite(cell["mean"])
        assert 0.0 <= row["beta_vae_score"]["mean"] <= 1.0
        assert row["reconstruction_nll"]["mean"] > 0
    assert len(out["runs"]) == len(MODELS) * 2
    rho = out["rank_correlation"]["spearman"]
    assert out["rank_correlation"]["metrics"] == list(METRICS) and len(rho) == len(METRICS)
    assert all(rho[i][i] == 1.0 for i in range(len(METRICS)))
    assert set(out["variance"]) == set(METRICS)
    for name in [
        "rank_correlation.png",
        "scores_by_seed.png",
        "reconstructions.png",
        "traversal_beta_vae.png",
    ]:
        assert name in out["figures"]
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert "beta_vae" in capsys.readouterr().out
