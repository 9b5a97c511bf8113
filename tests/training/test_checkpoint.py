"""Checkpoints: exact resume, atomic writes, corrupt files, RNG state."""
import os
import random

import numpy as np
import pytest
import torch

from pyro_groups import GroupVAE, MLPDecoder, fit, make_guide
from pyro_groups.data import GroupedData
from pyro_groups.training import CheckpointError, load_checkpoint, save_checkpoint
from pyro_groups.training.checkpoint import FORMAT, rng_state, set_rng_state


def setup(seed=0):
    torch.manual_seed(seed)
    model = GroupVAE(MLPDecoder(2, 1, 3, hidden=(8,)))
    guide = make_guide(3, 2, 1, hidden=(8,))
    return model, guide


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 1, 3, generator=g) + 0.3 * torch.randn(20, 4, 3, generator=g)
    mask = torch.arange(4) < torch.randint(1, 5, (20, 1), generator=g)
    return GroupedData(x, mask)


def rows(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history.to_list()]


def assert_same_params(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("loss", ["trace", "jit"])
def test_resume_equals_an_uninterrupted_run(tmp_path, data, loss):
    kw = dict(batch_size=8, lr=0.01, loss=loss, seed=3, progress=False)
    model, guide = setup()
    full = fit(model, guide, data, epochs=4, **kw)

    ckpt = tmp_path / "ckpt.pt"
    m1, g1 = setup()
    first = fit(m1, g1, data, epochs=2, checkpoint=ckpt, **kw)
    assert len(first) == 2 and load_checkpoint(ckpt)["epoch"] == 1
    # resume into fresh objects, initialised differently, as a new process would
    m2, g2 = setup(seed=99)
    resumed = fit(m2, g2, data, epochs=4, checkpoint=ckpt, resume=True, **kw)
    assert rows(resumed) == rows(full)
    assert_same_params(m2, model)
    assert_same_params(g2, guide)
    assert load_checkpoint(ckpt)["epoch"] == 3


def test_resume_restores_the_optimizer_state(tmp_path, data):
    ckpt = tmp_path / "ckpt.pt"
    model, guide = setup()
    fit(model, guide, data, epochs=1, batch_size=8, checkpoint=ckpt, progress=False)
    state = load_checkpoint(ckpt)
    steps = {int(s["step"]) for s in state["optimizer"]["state"].values()}
    assert steps == {3}  # 20 groups in batches of 8: three Adam steps
    keys = {"format", "model", "guide", "optimizer", "penalties", "epoch", "history", "rng"}
    assert set(state) >= keys
    assert state["format"] == FORMAT


def test_resume_of_a_finished_run_trains_nothing(tmp_path, data):
    ckpt = tmp_path / "ckpt.pt"
    model, guide = setup()
    h = fit(model, guide, data, epochs=2, batch_size=8, checkpoint=ckpt, progress=False)
    m2, g2 = setup(seed=5)
    again = fit(m2, g2, data, epochs=2, batch_size=8, checkpoint=ckpt, resume=True, progress=False)
    assert again.to_list() == h.to_list()
    assert_same_params(m2, model)


def test_resume_without_a_checkpoint_starts_from_scratch(tmp_path, data):
    model, guide = setup()
    a = fit(model, guide, data, epochs=2, batch_size=8, progress=False)
    m2, g2 = setup()
    ckpt = tmp_path / "none.pt"
    b = fit(m2, g2, data, epochs=2, batch_size=8, checkpoint=ckpt, resume=True, progress=False)
    assert rows(a) == rows(b)
    assert (tmp_path / "none.pt").is_file()


def test_without_resume_an_existing_checkpoint_is_overwritten(tmp_path, data):
    ckpt = tmp_path / "ckpt.pt"
    model, guide = setup()
    fit(model, guide, data, epochs=3, batch_size=8, checkpoint=ckpt, progress=False)
    m2, g2 = setup()
    fit(m2, g2, data, epochs=1, batch_size=8, checkpoint=ckpt, progress=False)
    assert load_checkpoint(ckpt)["epoch"] == 0


# ---------------------------------------------------------------------------- atomic writes


def test_save_and_load_round_trip(tmp_path):
    path = tmp_path / "sub" / "dir" / "c.pt"
    save_checkpoint(path, {"epoch": 7, "w": torch.arange(3.0)})
    state = load_checkpoint(path)
    assert state["epoch"] == 7 and torch.equal(state["w"], torch.arange(3.0))
    assert state["format"] == FORMAT
    assert os.listdir(path.parent) == ["c.pt"]  # no temporary file left behind


def test_a_failing_write_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(100)})
    old = path.read_bytes()
    real_save = torch.save

    def crash(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(10)  # half-written ...
        raise OSError("disk full")  # ... and then the write fails

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2, "w": torch.zeros(100)})
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["c.pt"]
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1


def test_a_failing_write_during_fit_keeps_the_last_epoch(tmp_path, data, monkeypatch):
    path = tmp_path / "c.pt"
    real_save, calls = torch.save, []

    def second_fails(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", second_fails)
    model, guide = setup()
    with pytest.raises(OSError, match="disk full"):
        fit(model, guide, data, epochs=3, batch_size=8, checkpoint=path, progress=False)
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["epoch"] == 0 and len(state["history"]) == 1
    assert os.listdir(tmp_path) == ["c.pt"]


# ---------------------------------------------------------------------------- bad files


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.randn(1000)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"c\.pt is corrupt or unreadable"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "corrupt or unreadable"),
        (b"this is not a checkpoint at all" * 10, "corrupt or unreadable"),
    ],
)
def test_garbage_files(tmp_path, content, match):
    path = tmp_path / "c.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_foreign_and_missing_files(tmp_path):
    foreign = tmp_path / "weights.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, foreign)
    with pytest.raises(CheckpointError, match="not a pyro_groups checkpoint"):
        load_checkpoint(foreign)
    torch.save([1, 2, 3], foreign)
    with pytest.raises(CheckpointError, match="not a pyro_groups checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path)  # a directory
    assert issubclass(CheckpointError, RuntimeError)


def test_fit_refuses_to_resume_from_a_corrupt_checkpoint(tmp_path, data):
    path = tmp_path / "c.pt"
    path.write_bytes(b"\x80\x02garbage")
    model, guide = setup()
    with pytest.raises(CheckpointError, match="corrupt"):
        fit(model, guide, data, epochs=2, checkpoint=path, resume=True, progress=False)


# ---------------------------------------------------------------------------- RNG state


def test_rng_state_round_trip():
    gen = torch.Generator().manual_seed(11)
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)

    def draw():
        return (
            torch.rand(3).tolist(),
            np.random.rand(3).tolist(),
            random.random(),
            torch.rand(3, generator=gen).tolist(),
        )

    state = rng_state(gen)
    first = draw()
    assert draw() != first
    set_rng_state(state, gen)
    assert draw() == first


def test_resume_refuses_another_model_data_or_penalties(tmp_path, data):
    from pyro_groups.adversary import set_penalty

    ckpt = tmp_path / "ckpt.pt"
    model, guide = setup()
    fit(model, guide, data, epochs=1, batch_size=8, checkpoint=ckpt, progress=False)
    other_guide = make_guide(3, 2, 1, hidden=(16,))  # another width
    with pytest.raises(CheckpointError, match="different guide"):
        fit(model, other_guide, data, epochs=2, checkpoint=ckpt, resume=True, progress=False)
    other_data = GroupedData(data.x + 1.0, data.mask)
    with pytest.raises(CheckpointError, match="another data set"):
        fit(model, guide, other_data, epochs=2, checkpoint=ckpt, resume=True, progress=False)
    pen = set_penalty(3, 1, seed=0, hidden=(8,))
    with pytest.raises(CheckpointError, match="another set of penalties"):
        fit(model, guide, data, epochs=2, checkpoint=ckpt, resume=True, penalties=[pen],
            progress=False)


def test_resume_with_a_new_learning_rate_uses_it_and_says_so(tmp_path, data):
    ckpt = tmp_path / "ckpt.pt"
    model, guide = setup()
    fit(model, guide, data, epochs=1, batch_size=8, lr=0.01, checkpoint=ckpt, progress=False)
    with pytest.warns(UserWarning, match="lr=0.001.*lr=0.01"):
        fit(model, guide, data, epochs=2, batch_size=8, lr=0.001, checkpoint=ckpt, resume=True,
            progress=False)
    state = load_checkpoint(ckpt)
    assert [g["lr"] for g in state["optimizer"]["param_groups"]] == [0.001]


def test_save_and_load_modules_give_the_same_codes(tmp_path, data):
    from pyro_groups import load_modules, save_modules
    from pyro_groups.evaluation import encode

    model, guide = setup()
    fit(model, guide, data, epochs=2, batch_size=8, progress=False)
    save_modules(tmp_path / "run.pt", model=model, guide=guide)
    m2, g2 = setup(seed=5)
    load_modules(tmp_path / "run.pt", model=m2, guide=g2)
    batch = data[torch.arange(6)]
    for a, b in zip(encode(guide, batch), encode(g2, batch)):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="holds no module 'critic'"):
        load_modules(tmp_path / "run.pt", critic=m2)
    with pytest.raises(CheckpointError, match="does not match"):
        load_modules(tmp_path / "run.pt", guide=make_guide(3, 2, 1, hidden=(4,)))
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_modules(tmp_path / "bad.pt", guide=g2)


def test_pyro_param_store_round_trip_restores_the_modules(tmp_path, data):
    import pyro

    from pyro_groups.evaluation import encode
    from pyro_groups.training import load_param_store

    torch.manual_seed(0)
    model = GroupVAE(MLPDecoder(2, 1, 3, hidden=(8,)), name="store_model")
    guide = make_guide(3, 2, 1, hidden=(8,), name="store_guide")
    fit(model, guide, data, epochs=2, batch_size=8, progress=False)
    batch = data[torch.arange(6)]
    model(batch.x, batch.mask), guide(batch.x, batch.mask)  # registers their parameters
    pyro.get_param_store().save(tmp_path / "store.pt")
    pyro.clear_param_store()
    torch.manual_seed(1)
    model2 = GroupVAE(MLPDecoder(2, 1, 3, hidden=(8,)), name="store_model")
    guide2 = make_guide(3, 2, 1, hidden=(8,), name="store_guide")
    load_param_store(tmp_path / "store.pt", model2, guide2)
    for a, b in zip(encode(guide, batch), encode(guide2, batch)):
        assert torch.equal(a, b)
    pyro.clear_param_store()
    with pytest.raises(CheckpointError, match="no parameter 'elsewhere"):
        load_param_store(tmp_path / "store.pt", make_guide(3, 2, 1, hidden=(8,), name="elsewhere"))
