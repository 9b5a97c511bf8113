"""The UG-VAE benchmark runs in smoke mode, writes DESIGN.md's JSON with Table 1's rows, the
findings and the figures."""
import json

from benchmark_scripts import load_benchmark


def test_smoke_run_writes_json_and_figures(tmp_path):
    args = ["--smoke-test", "--out", str(tmp_path), "--no-progress"]
    assert load_benchmark("ugvae").main(args) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["benchmark"] == "ugvae"
    assert set(result["environment"]) == {"torch", "pyro", "device", "threads"}
    assert result["config"]["cpu_seconds"] > 0 and result["config"]["idle_two_core_minutes"] > 0
    rows = result["batch_classification"]
    keys = {"task", "classifier", "model", "train_accuracy", "test_accuracy", "batch_size",
            "features"}
    assert rows and all(keys <= set(r) for r in rows)
    assert {r["model"] for r in rows} == {"ugvae", "ugvae_k1", "mlvae", "mean_image"}
    assert {r["task"] for r in rows} == {"low_high", "low_high_random", "even_odd",
                                         "even_odd_random"}
    assert all("linear" in r["classifier"] or "rbf" in r["classifier"] for r in rows)
    assert {r["features"] for r in rows} == {"posterior_mean", "posterior_sample", "mean_image"}
    for r in rows:
        for k in ("train_accuracy", "test_accuracy"):
            assert set(r[k]) == {"mean", "std", "n"} and 0.0 <= r[k]["mean"] <= 1.0
    by_model = {r["model"]: r for r in result["results"]}
    assert 0.0 <= by_model["ugvae"]["nmi"]["mean"] <= 1.0 and "nmi" not in by_model["mlvae"]
    assert {r["model"] for r in result["domain_alignment"]} == {"ugvae", "mlvae"}
    assert result["findings"] and all(
        {"claim", "reproduced", "beyond_noise"} <= set(f) for f in result["findings"])
    for name in result["figures"]:
        assert (tmp_path / name).stat().st_size > 0
    assert len(result["figures"]) == 5
