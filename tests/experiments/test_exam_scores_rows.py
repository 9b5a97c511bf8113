"""Every row of ``pyro-groups exam-scores`` builds the intended guide and penalty (Tables 1-2)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pyro_groups.experiments.exam_scores import PAPER, PENALTIES, ROWS, Config, build
from pyro_groups.guides.encoders import DeepSetsGroupEncoder, PerObservationGroupEncoder
from pyro_groups.adversary.critics import PairCritic, SetCritic
from pyro_groups.adversary.mi_penalty import MIPenalty

# row -> (group encoder, conditional instance encoder?, critic type or None)
EXPECTED = {
    "cxvae": ("deepsets", True, SetCritic),
    "mlvae": ("product", False, None),
    "gvae": ("average", False, None),
    "gvae-reg": ("average", False, PairCritic),
    "cxvae-u-average": ("average", True, SetCritic),
    "cxvae-u-product": ("product", True, SetCritic),
    "cxvae-v-unconditional": ("deepsets", False, SetCritic),
    "cxvae-reg-none": ("deepsets", True, None),
    "cxvae-reg-unconditional": ("deepsets", True, PairCritic),
}


def test_rows_are_tables_one_and_two():
    assert list(ROWS) == list(EXPECTED)
    assert set(ROWS) == set(PAPER)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_build_gives_the_intended_composition(name):
    group, conditional, critic = EXPECTED[name]
    model, guide, penalties = build(name, Config())
    enc = guide.group_encoder
    if group == "deepsets":
        assert isinstance(enc, DeepSetsGroupEncoder)
    else:
        assert isinstance(enc, PerObservationGroupEncoder) and enc.aggregator == group
    assert (guide.instance_encoder.u_dim > 0) == conditional
    if critic is None:
        assert penalties == []
    else:
        (pen,) = penalties
        assert isinstance(pen, MIPenalty) and type(pen.critic) is critic
        assert pen.critic.x_dim == 1 and pen.critic.v_dim == model.v_dim
        assert not {id(p) for p in pen.parameters()} & {id(p) for p in guide.parameters()}


def test_penalty_settings_can_be_overridden_through_config_extra():
    cfg = Config(extra={"penalty": {"weight": 7.0, "estimator": "nwj", "critic_steps": 3}})
    (pen,) = build("cxvae", cfg)[2]
    assert (pen.weight, pen.estimator, pen.critic_steps) == (7.0, "nwj", 3)


def test_registry_is_filled_at_import_in_a_fresh_process():
    code = "from pyro_groups.experiments.exam_scores import PENALTIES; print(sorted(PENALTIES))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(sorted(PENALTIES)) == "['nemeth', 'set']"
