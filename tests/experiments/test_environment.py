from __future__ import annotations

import pytest

from pyro_groups.experiments.environment import smoke_requested, summarize, worker_threads

SMOKE_KEYS = ("CI", "PYRO_GROUPS_SMOKE", "PYRO_GROUPS_FULL")


@pytest.mark.parametrize("env, flag, expected", [
    ({}, False, False),
    ({}, True, True),
    ({"CI": "true"}, False, True),
    ({"CI": "0"}, False, False),
    ({"CI": "false"}, False, False),
    ({"PYRO_GROUPS_SMOKE": "1"}, False, True),
    ({"CI": "1", "PYRO_GROUPS_FULL": "1"}, False, False),
    ({"CI": "1", "PYRO_GROUPS_FULL": "0"}, False, True),
    ({"PYRO_GROUPS_FULL": "1"}, True, True),
])
def test_smoke_requested(monkeypatch: pytest.MonkeyPatch, env: dict, flag: bool,
                         expected: bool) -> None:
    for key in SMOKE_KEYS:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert smoke_requested(flag) is expected


@pytest.mark.parametrize("workers, cpus, threads", [(1, 2, 2), (2, 2, 1), (3, 2, 1), (2, 8, 4)])
def test_worker_threads_share_the_cores(workers: int, cpus: int, threads: int) -> None:
    assert worker_threads(workers, cpus) == threads


def test_summarize_is_the_sample_mean_and_std() -> None:
    s = summarize([1.0, 2.0, 4.0])
    assert s["n"] == 3
    assert s["mean"] == pytest.approx(7 / 3)
    assert s["std"] == pytest.approx(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) ** 0.5
                                     / 2 ** 0.5)
    assert summarize([3.0])["std"] == 0
