"""Saved runs are found again only for the same grid position, key and settings."""
import math
from dataclasses import dataclass

import pytest

from pyro_groups.experiments.resume import finished_runs, run_settings, save_run


@dataclass
class Cfg:
    steps: int = 10
    lr: float = 1e-3
    seeds: int = 2
    workers: int = 2


KEYS = [{"model": "a", "seed": 0}, {"model": "b", "seed": 0}, {"model": "a", "seed": 1}]


def test_run_settings_drop_the_excluded_fields():
    assert run_settings(Cfg(), ("seeds", "workers")) == {"steps": 10, "lr": 1e-3}


@pytest.mark.parametrize("settings, keys, found", [
    ({"steps": 10}, KEYS, {0, 2}),
    ({"steps": 20}, KEYS, set()),  # other settings: train again
    ({"steps": 10}, KEYS[:2], {0}),  # index out of this grid's range
    ({"steps": 10}, [KEYS[1], KEYS[0], KEYS[2]], {2}),  # another job at index 0
])
def test_finished_runs_match_index_key_and_settings(tmp_path, settings, keys, found):
    save_run(tmp_path, 0, {**KEYS[0], "metrics": {"x": 1.0}}, {"steps": 10})
    save_run(tmp_path, 2, {**KEYS[2], "metrics": {"x": float("nan")}}, {"steps": 10})
    (tmp_path / "1.json").write_text("{not json")  # a torn write is ignored
    done = finished_runs(tmp_path, keys, settings)
    assert set(done) == found
    if 2 in done:
        assert done[2]["metrics"]["x"] is None and done[2]["index"] == 2
    if 0 in done:
        assert math.isclose(done[0]["metrics"]["x"], 1.0)
