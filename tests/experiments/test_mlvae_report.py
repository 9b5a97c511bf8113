"""The ML-VAE report: seed summaries, the paper's claims with seed noise, tables."""
import pytest

from pyro_groups.experiments.mlvae_report import (
    findings,
    format_k_shot,
    format_models,
    format_variance,
    summarize_runs,
)


def run(model, seed, content, style, *, nll=30.0, train=200.0, alone=0.6, acc=0.8):
    """A fake run: content accuracy ``content[k - 1]``, style accuracy ``style[k - 1]``."""
    shots = [{"code": "content", "k": k + 1, "accuracy": a, "cond_entropy_bits": 3.0 * (1 - a)}
             for k, a in enumerate(content)]
    shots += [{"code": "style", "k": k + 1, "accuracy": a, "cond_entropy_bits": 3.3}
              for k, a in enumerate(style)]
    out = {"model": model, "seed": seed, "train_loss": train, "test_loss": train + 5,
           "test_nll": nll, "cpu_seconds": 1.0, "k_shot": shots}
    if model != "svi":
        out.update(test_nll_alone=nll + 1, label_acc_alone=alone, label_acc_accumulated=acc)
    if model == "mlvae":
        gv = {b: {"variance": 2.0} for b in ("model", "group_encoder", "instance_encoder", "all")}
        half = {b: {"variance": 1.0 + 0.01 * seed} for b in gv}
        out["gradient_variance"] = {"group": gv, "observation": half}
    return out


def runs(noise=0.01):
    out = []
    for s in range(3):
        e = noise * (s - 1)
        out += [
            run("mlvae", s, [0.5 + e, 0.7 + e, 0.9 + e], [0.12 + e, 0.1, 0.11]),
            run("mlvae-mixture", s, [0.5, 0.6, 0.7], [0.3 + e, 0.3, 0.3]),
            run("vae", s, [0.51 + e, 0.7, 0.91 + e], [0.1, 0.1, 0.1]),
            run("svi", s, [], [], nll=40.0 + e, train=300.0),
        ]
    return out


def test_summaries_over_seeds():
    summary = summarize_runs(runs(), ["mlvae", "mlvae-mixture", "vae", "svi"])
    by = {r["model"]: r for r in summary["results"]}
    assert by["mlvae"]["test_nll"] == {"mean": 30.0, "std": 0.0, "n": 3}
    assert "label_acc_alone" not in by["svi"]
    shot = {(r["model"], r["code"], r["k"]): r for r in summary["k_shot"]}
    assert shot[("mlvae", "content", 3)]["accuracy"]["mean"] == pytest.approx(0.9)
    assert shot[("mlvae", "content", 3)]["accuracy"]["std"] == pytest.approx(0.01)
    assert ("svi", "content", 1) not in shot
    ratio = [r for r in summary["gradient_variance"] if r["block"] == "all"][0]["ratio"]
    assert ratio["mean"] == pytest.approx(0.505) and ratio["n"] == 3


def test_findings_reproduced_beyond_noise():
    summary = summarize_runs(runs(0.01), ["mlvae", "mlvae-mixture", "vae", "svi"])
    out = {f["claim"]: f for f in findings(summary, num_classes=10, K=3)}
    assert len(out) == 10
    for f in out.values():
        assert f["reproduced"], f["claim"]
    rising = [f for c, f in out.items() if "more informative with k" in c]
    assert len(rising) == 2 and all(f["beyond_noise"] for f in rising)
    assert all(f["beyond_noise"] is None for c, f in out.items() if "as informative" in c)


def test_findings_within_noise_and_not_reproduced():
    noisy = runs(0.5)
    for r in noisy:
        if r["model"] == "mlvae":
            r["label_acc_accumulated"] = 0.5
            r["k_shot"][4]["accuracy"] = 0.6  # style at k=2 far from chance
    summary = summarize_runs(noisy, ["mlvae", "mlvae-mixture", "vae", "svi"])
    out = {f["claim"]: f for f in findings(summary, num_classes=10, K=3)}
    ml = next(f for c, f in out.items() if c.startswith("ML-VAE (product): the content"))
    assert ml["reproduced"] and ml["beyond_noise"] is False
    style = next(f for c, f in out.items() if "stays near chance" in c)
    assert not style["reproduced"]
    ev = next(f for c, f in out.items() if "corrects inference" in c)
    assert not ev["reproduced"] and ev["beyond_noise"]


def test_tables():
    summary = summarize_runs(runs(), ["mlvae", "mlvae-mixture", "vae", "svi"])
    k = format_k_shot(summary["k_shot"], ks=(1, 2, 3))
    assert "acc k=3" in k and "rises with k" in k and "near chance, flat" in k
    assert k.splitlines()[0] == k.splitlines()[2] == k.splitlines()[-1]
    assert "SVI (non-amortised)" in format_models(summary["results"])
    assert "0.505 ± 0.005" in format_variance(summary["gradient_variance"])
    for table in (k, format_models(summary["results"])):
        assert all(line == line.rstrip() for line in table.splitlines())
