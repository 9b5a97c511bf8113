"""The ML-VAE benchmark's smoke mode writes DESIGN.md's JSON (with k-shot rows) and its figures."""
import json
import math

from pyro_groups.experiments.mlvae import MODELS

from benchmark_scripts import load_benchmark


def test_smoke_run_writes_json_and_figures(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYRO_GROUPS_SMOKE", "1")
    script = load_benchmark("mlvae")
    assert script.smoke_requested(False)
    assert script.main(["--out", str(tmp_path), "--no-progress"]) == 0
    out = json.loads((tmp_path / "results.json").read_text())
    assert out["benchmark"] == "mlvae"
    assert set(out["environment"]) >= {"torch", "pyro", "device", "threads"}
    assert out["config"]["seeds"] == 2 and out["data"]["num_classes"] == 10
    assert [r["model"] for r in out["results"]] == list(MODELS)
    for row in out["results"]:
        for m in ("train_loss", "test_loss", "test_nll"):
            assert set(row[m]) == {"mean", "std", "n"} and row[m]["n"] == 2
            assert math.isfinite(row[m]["mean"])
    shots = out["k_shot"]
    assert {r["model"] for r in shots} == set(MODELS) - {"svi"}
    assert {(r["code"], r["k"]) for r in shots if r["model"] == "mlvae"} == {
        (c, k) for c in ("content", "style") for k in (1, 2, 3)}
    assert all(r["code"] == "content" for r in shots if r["model"] == "vae")
    for r in shots:
        assert set(r) == {"model", "code", "k", "accuracy", "cond_entropy_bits"}
        assert 0.0 <= r["accuracy"]["mean"] <= 1.0 and r["cond_entropy_bits"]["n"] == 2
    assert {r["model"] for r in out["gradient_variance"]} == {
        "mlvae", "mlvae-mixture", "gvae", "cxvae"}
    assert out["findings"] and all("reproduced" in f for f in out["findings"])
    assert out["cpu_seconds"] > 0 and out["cpu_seconds_per_2_cores"] == out["cpu_seconds"] / 2
    for name in ("swap.png", "interpolation.png", "generation.png", "accumulating_evidence.png",
                 "k_shot.png"):
        assert name in out["figures"]
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert "ML-VAE (product)" in capsys.readouterr().out
