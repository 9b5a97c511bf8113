"""Saved runs are found again for the same job key and run settings, whatever the grid."""
import math
from dataclasses import dataclass

import pytest

from pyro_groups.experiments.resume import finished_runs, run_file, run_settings, save_run


@dataclass
class Cfg:
    steps: int = 10
    lr: float = 1e-3
    seeds: int = 2
    workers: int = 2


A0, B0, A1 = {"model": "a", "seed": 0}, {"model": "b", "seed": 0}, {"model": "a", "seed": 1}


def test_run_settings_drop_the_excluded_fields():
    assert run_settings(Cfg(), ("seeds", "workers")) == {"steps": 10, "lr": 1e-3}


def test_run_file_is_named_after_the_key(tmp_path):
    key = {"model": "group_tcvae", "beta": 10.0, "gamma": None, "level": "inter/x"}
    assert run_file(tmp_path, key).name == "group_tcvae_10.0_None_inter_x.json"


@pytest.mark.parametrize("settings, keys, found", [
    ({"steps": 10}, [A0, B0, A1], {0, 2}),
    ({"steps": 20}, [A0, B0, A1], set()),  # other settings: train again
    ({"steps": 10}, [A1, A0], {0, 1}),  # another grid sharing the runs: reused
    ({"steps": 10}, [B0], set()),
])
def test_finished_runs_match_key_and_settings(tmp_path, settings, keys, found):
    save_run(tmp_path, A0, {"metrics": {"x": 1.0}}, {"steps": 10})
    save_run(tmp_path, A1, {"metrics": {"x": float("nan")}}, {"steps": 10})
    run_file(tmp_path, B0).write_text("{not json")  # a torn write is ignored
    done = finished_runs(tmp_path, keys, settings)
    assert set(done) == found
    for i, row in done.items():
        assert {k: row[k] for k in keys[i]} == keys[i]
        x = row["metrics"]["x"]
        assert x is None if keys[i] == A1 else math.isclose(x, 1.0)  # NaN saved as null
