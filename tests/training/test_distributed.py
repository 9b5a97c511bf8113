"""fit_distributed on 2 CPU processes (gloo): the ranks end identical and match one process that
trains on the same global batches, with and without the set penalty, and resume exactly.

The single-process reference is written from public pieces: the same sampler's global batches,
each rank's shard with that rank's random streams (``rank_seed``), the shards' gradients averaged
(each shard's loss on the data set's scale, ``num_groups = N``), and the critic's gradients (its
MINE objective on each shard's codes and pairs, from the step's shared moving average) and moving
averages averaged over the shards (the convention of :mod:`pyro_groups.training.distributed`).
"""
import json
import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from pyro import poutine
from pyro.infer import Trace_ELBO
from torch.testing import assert_close

from pyro_groups import GroupVAE, exam_scores, make_guide
from pyro_groups.cli import main as cli_main
from pyro_groups.adversary import set_penalty
from pyro_groups.adversary.estimators import mine_bound
from pyro_groups.data import DistributedGroupSampler
from pyro_groups.models import ExamScoresDecoder
from pyro_groups.training import CheckpointError
from pyro_groups.training.ddp_sync import rank_seed
from pyro_groups.training.distributed import fit_distributed
from pyro_groups.training.step import unique_params

WORLD, GROUPS, PER_RANK, EPOCHS, SEED, LR = 2, 40, 4, 2, 7, 0.01


def data():
    return exam_scores(GROUPS, seed=3)


def build(penalised):
    """The penalty's weight is large enough for its gradient to move the guide visibly."""
    torch.manual_seed(0)
    model = GroupVAE(ExamScoresDecoder())
    guide = make_guide(1, 2, 1, hidden=(8,))
    penalties = [set_penalty(1, 1, hidden=(8,), seed=0, weight=2000.0)] if penalised else []
    return model, guide, penalties


def state(model, guide, penalties, history=None):
    return {
        "params": [p.detach().clone() for p in unique_params([model, guide])],
        "critic": [p.detach().clone() for pen in penalties for p in pen.critic.parameters()],
        "ema": [pen.ema_state.clone() for pen in penalties],
        "loss": history["loss"] if history is not None else None,
    }


def train(penalised, **kwargs):
    model, guide, penalties = build(penalised)
    kwargs = {"epochs": EPOCHS, "batch_size": PER_RANK, **kwargs}
    h = fit_distributed(model, guide, data(), lr=LR, seed=SEED, penalties=penalties,
                        progress=False, **kwargs)
    return state(model, guide, penalties, h)


def worker(rank, port, folder):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    out = {"plain": train(False), "penalised": train(True)}
    ckpt = os.path.join(folder, "run.pt")
    train(True, epochs=1, checkpoint=ckpt)
    out["resumed"] = train(True, checkpoint=ckpt, resume=True)
    try:
        train(True, checkpoint=ckpt, resume=True, batch_size=2)
    except CheckpointError as e:
        out["wrong_batch"] = str(e)
    torch.save(out, os.path.join(folder, f"rank{rank}.pt"))
    cli_main(["exam-scores", "--distributed", "--smoke-test", "--rows", "cxvae", "--epochs", "1",
              "--groups", "320", "--out", os.path.join(folder, "cli"), "--no-progress"])
    dist.destroy_process_group()


def reference(penalised):
    """One process, the same global batches, the shards' gradients averaged."""
    train_data = data()
    n = len(train_data)
    model, guide, penalties = build(penalised)
    params = unique_params([model, guide])
    opt = torch.optim.Adam(params, lr=LR)
    streams = []
    for r in range(WORLD):
        torch.manual_seed(rank_seed(SEED, r))
        streams.append(torch.get_rng_state())
    pen = penalties[0] if penalised else None
    if pen is not None:
        pairs = [torch.Generator().manual_seed(rank_seed(pen.generator.initial_seed(), r))
                 for r in range(WORLD)]
    sampler = DistributedGroupSampler(n, PER_RANK, num_replicas=WORLD, rank=0, seed=SEED)
    losses = []
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        epoch_loss = []
        for shards in sampler.global_batches():
            opt.zero_grad()
            if pen is not None:
                pen.optimizer.zero_grad()
                start, emas = pen.ema_state.clone(), []
            for r, index in enumerate(shards):
                batch = train_data[index]
                torch.set_rng_state(streams[r])
                recorder = poutine.trace(guide)
                elbo = Trace_ELBO().differentiable_loss(model, recorder, batch.x, batch.mask,
                                                        num_groups=n)
                total = elbo
                if pen is not None:
                    pen.generator, before = pairs[r], pairs[r].get_state()
                    pen.ema_state.copy_(start)
                    total = total + pen(model, guide, batch, num_groups=n,
                                        guide_trace=recorder.trace)
                    # the critic's objective on the same codes and pairs, from the shared average
                    v = recorder.trace.nodes["v"]["value"].detach()
                    replay = torch.Generator().set_state(before)
                    s = pen.critic.group_scores(batch.x.flatten(2), batch.mask, v, replay)
                    res = mine_bound(s.joint, s.marginal, start, pen.ema_decay, s.mask, s.mask)
                    (-res.surrogate / WORLD).backward(inputs=list(pen.critic.parameters()))
                    emas.append(res.ema_state)
                (total / WORLD).backward(inputs=params)
                streams[r] = torch.get_rng_state()
                epoch_loss.append(float(elbo.detach()) / n)
            opt.step()
            if pen is not None:
                pen.optimizer.step()
                pen.ema_state.copy_((emas[0] + emas[1]) * 0.5)
        losses.append(sum(epoch_loss) / len(epoch_loss))
    return state(model, guide, penalties, {"loss": losses})


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """The folder the 2 spawned ranks wrote into (one launch for every test here)."""
    folder = tmp_path_factory.mktemp("ddp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(port, str(folder)), nprocs=WORLD, join=True)
    return folder


@pytest.fixture(scope="module")
def ranks(launched):
    return [torch.load(launched / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.parametrize("case", ["plain", "penalised"])
def test_distributed_ranks_end_identical(ranks, case):
    a, b = ranks[0][case], ranks[1][case]
    for key in ("params", "critic", "ema"):
        for x, y in zip(a[key], b[key]):
            assert torch.equal(x, y), key
    assert a["loss"] == b["loss"]  # the history is the ranks' mean, the same everywhere


@pytest.mark.parametrize("case", ["plain", "penalised"])
def test_distributed_matches_one_process_on_the_same_global_batches(ranks, case):
    got, want = ranks[0][case], reference(case == "penalised")
    assert len(got["params"]) == len(want["params"]) > 0
    assert_close(got["params"], want["params"])
    assert_close(got["critic"], want["critic"])
    assert_close(got["ema"], want["ema"])
    assert_close(torch.tensor(got["loss"]), torch.tensor(want["loss"]), rtol=1e-5, atol=0)
    if case == "penalised":
        moved = [x for x, y in zip(got["critic"], build(True)[2][0].critic.parameters())
                 if not torch.equal(x, y)]
        assert moved  # the critic trained
        # the same streams without the penalty end 20x assert_close's tolerance (1e-5) away: a
        # missing or wrongly synchronised penalty gradient would fail the comparison above
        plain = ranks[0]["plain"]["params"]
        assert max((x - y).abs().max() for x, y in zip(got["params"], plain)) > 2e-4


def test_distributed_resume_is_exact(ranks):
    for r in range(WORLD):
        resumed, whole = ranks[r]["resumed"], ranks[r]["penalised"]
        for key in ("params", "critic", "ema"):
            for x, y in zip(resumed[key], whole[key]):
                assert torch.equal(x, y), key
        assert resumed["loss"] == whole["loss"]
        assert "batch_size=4" in ranks[r]["wrong_batch"]


def test_distributed_exam_scores_cli_writes_the_results(launched):
    """`pyro-groups exam-scores --distributed` on the 2 ranks: rank 0 writes the results."""
    result = json.loads((launched / "cli" / "results.json").read_text())
    assert result["world_size"] == WORLD and result["config"]["batch_size"] == 128
    (row,) = result["results"]
    assert row["model"] == "cxvae" and math.isfinite(row["trans_err"]["mean"])


def test_distributed_without_a_process_group_is_a_clear_error(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    model, guide, _ = build(False)
    with pytest.raises(RuntimeError, match="torchrun"):
        fit_distributed(model, guide, data(), epochs=1, batch_size=4, progress=False)
