"""Known answers for the post-hoc mutual-information probe."""
from __future__ import annotations

import math
from typing import Callable, Optional

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from pyro_groups.data import GroupedData
from pyro_groups.evaluation.mi_probe import mi_probe
from pyro_groups.models.group_vae import group_plates

K = 8


def gaussian_groups(g: int, seed: int) -> GroupedData:
    """``x_ik = a_i + e_ik`` with ``a_i, e_ik ~ N(0, 1)``, ``K = 8`` observations per group."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(g, 1, 1, generator=gen) + torch.randn(g, K, 1, generator=gen)
    return GroupedData(x, torch.ones(g, K, dtype=torch.bool))


def code_guide(copy: bool) -> Callable:
    """``v_k = x_k`` (almost exactly) or ``v_k ~ N(0, 1)`` whatever the data."""

    def guide(x: torch.Tensor, mask: torch.Tensor, *, num_groups: Optional[int] = None) -> None:
        groups, instances = group_plates(mask, num_groups)
        loc, scale = (x, 1e-3) if copy else (torch.zeros_like(x), 1.0)
        with groups, instances, poutine.mask(mask=mask):
            pyro.sample("v", dist.Normal(loc, scale).to_event(1))

    return guide


def true_mi(form: str) -> float:
    # Corr(x_k, x_l) = 1/2; Corr(x_k, mean of the other K-1) = 1 / sqrt(2 (1 + 1/(K-1))).
    rho2 = 0.25 if form == "pair" else 1.0 / (2.0 * (1.0 + 1.0 / (K - 1)))
    return -0.5 * math.log(1.0 - rho2)


@pytest.mark.parametrize("form", ["set", "pair"])
def test_probe_recovers_the_gaussian_mutual_information(form: str) -> None:
    est = mi_probe(code_guide(True), gaussian_groups(2048, 0), form=form, seed=0)
    truth = true_mi(form)
    assert truth - 0.04 < est["held_out"] < truth + 0.03, (est, truth)


def test_probe_gives_zero_for_codes_without_group_information() -> None:
    est = mi_probe(code_guide(False), gaussian_groups(1024, 1), seed=0)
    assert abs(est["held_out"]) < 0.03, est


def test_probe_is_seeded_and_leaves_the_global_rng_alone() -> None:
    data = gaussian_groups(64, 2)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    a = mi_probe(code_guide(True), data, steps=5, seed=3)
    assert torch.equal(before, torch.get_rng_state())
    assert a == mi_probe(code_guide(True), data, steps=5, seed=3)
    assert a != mi_probe(code_guide(True), data, steps=5, seed=4)


def test_probe_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="form"):
        mi_probe(code_guide(True), gaussian_groups(16, 0), form="triple")
    single = GroupedData(torch.randn(16, 1, 1), torch.ones(16, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least 4 groups"):
        mi_probe(code_guide(True), single)
