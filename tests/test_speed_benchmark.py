"""The speed benchmark's hand-written ELBO is the library's objective, and the script runs."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO

from pyro_groups import ExamScoresDecoder, GroupVAE, exam_scores
from pyro_groups.guides import preset_guide

from benchmark_scripts import BENCHMARKS as BENCH, load_benchmark

ROOT = Path(__file__).resolve().parents[1]


hand = load_benchmark("handwritten_cxvae")


@pytest.fixture
def setup():
    data = exam_scores(96, seed=1)
    batch = data[torch.arange(12)]  # ragged groups: padded slots in the batch
    assert not bool(batch.mask.all())
    model = GroupVAE(ExamScoresDecoder())
    guide = preset_guide("cxvae", 1, 2, 1)
    return batch, model, guide, hand.HandwrittenCxVAE.from_guide(guide)


def test_same_encoders(setup):
    batch, _, guide, hw = setup
    qu = guide.group_posterior(batch.x, batch.mask)
    loc, scale = hw.group_posterior(batch.x, batch.mask)
    torch.testing.assert_close(loc, qu.base_dist.loc)
    torch.testing.assert_close(scale, qu.base_dist.scale)
    qv = guide.instance_posterior(batch.x, loc)
    vloc, vscale = hw.instance_posterior(batch.x, loc)
    torch.testing.assert_close(vloc, qv.base_dist.loc)
    torch.testing.assert_close(vscale, qv.base_dist.scale)


@pytest.mark.parametrize("num_groups", [None, 96])
def test_same_loss_and_gradients_with_the_same_seed(setup, num_groups):
    batch, model, guide, hw = setup
    pyro.set_rng_seed(7)
    lib = Trace_ELBO().differentiable_loss(model, guide, batch.x, batch.mask, num_groups=num_groups)
    torch.manual_seed(7)
    ours = hw.loss(batch.x, batch.mask, num_groups)
    torch.testing.assert_close(ours, lib, rtol=1e-5, atol=1e-3)
    lib.backward()
    ours.backward()
    pairs = [
        (guide.group_encoder.net.phi, hw.phi),
        (guide.group_encoder.net.rho, hw.rho),
        (guide.instance_encoder.net, hw.instance),
    ]
    for a, b in pairs:
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            atol = 1e-3 * p.grad.abs().max().item()
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=atol, msg=name)


def test_same_loss_on_the_same_draws(setup):
    """Without relying on the RNG: replay a guide trace, feed its noise to the hand-written loss."""
    batch, model, guide, hw = setup
    n = 96
    trace = poutine.trace(guide).get_trace(batch.x, batch.mask, num_groups=n)
    u, v = trace.nodes["u"]["value"].detach(), trace.nodes["v"]["value"].detach()
    replayed = poutine.replay(guide, trace=trace)
    lib = Trace_ELBO().loss(model, replayed, batch.x, batch.mask, num_groups=n)
    with torch.no_grad():
        u_loc, u_scale = hw.group_posterior(batch.x, batch.mask)
        v_loc, v_scale = hw.instance_posterior(batch.x, u)
        noise = ((u - u_loc) / u_scale, (v - v_loc) / v_scale)
        ours = hw.loss(batch.x, batch.mask, n, noise=noise)
    assert ours.item() == pytest.approx(lib, rel=1e-5)
    # and the ELBO is not trivially equal: other draws give another value
    other = hw.loss(batch.x, batch.mask, n, noise=(torch.randn_like(u), torch.randn_like(v)))
    assert other.item() != pytest.approx(lib, rel=1e-5)


def test_padded_slots_do_not_count(setup):
    batch, _, _, hw = setup
    x = batch.x.masked_fill(~batch.mask.unsqueeze(-1), 1e3)
    torch.manual_seed(0)
    a = hw.loss(batch.x, batch.mask, 96)
    torch.manual_seed(0)
    b = hw.loss(x, batch.mask, 96)
    torch.testing.assert_close(a, b)


def test_smoke_run_writes_json(tmp_path):
    out = tmp_path / "speed"
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    proc = subprocess.run(
        [sys.executable, str(BENCH / "speed.py"), "--smoke-test", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "results.json").read_text())
    assert result["benchmark"] == "speed"
    assert set(result["environment"]) == {"torch", "pyro", "device", "threads"}
    assert result["config"]["smoke_test"] is True
    rows = {r["variant"]: r for r in result["results"] if r["row"] != "ugvae"}
    ugvae = [r for r in result["results"] if r["row"] == "ugvae"]
    assert {r["variant"] for r in ugvae} >= {"handwritten_ugvae"} and len(ugvae) >= 2
    assert all(r["batch_size"] == 128 and r["ratio"] > 0 for r in ugvae)
    assert set(rows) == {"handwritten", "elbo", "cxvae", "gvae-reg"}
    assert {r["groups"] for r in rows.values()} == {8}
    assert rows["handwritten"]["ratio"] == 1.0
    assert rows["cxvae"]["penalised"] and rows["cxvae"]["row"] == "cxvae"
    assert not rows["elbo"]["penalised"]
    assert all(r["seconds_per_step"] > 0 and r["ratio"] > 0 for r in rows.values())
    assert all(r["validation"] for r in rows.values())


def test_out_must_be_a_folder(tmp_path):
    out = tmp_path / "a_file"
    out.write_text("x")
    proc = subprocess.run(
        [sys.executable, str(BENCH / "speed.py"), "--smoke-test", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0 and "is not a folder" in proc.stderr
