import os
import warnings

import pyro
import pytest
import torch
from hypothesis import HealthCheck, settings

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("PYRO_GROUPS_SMOKE", "1")  # notebooks and benchmarks run in smoke mode
warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")

# Property-based tests: few, fixed examples (derandomized: the same cases every run, no example
# database on disk); the autouse fixture below runs once per test, not per example, which is fine.
settings.register_profile(
    "pyro_groups",
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("pyro_groups")


@pytest.fixture(autouse=True)
def _clean_pyro():
    """Every test starts with an empty param store, validation on and a fixed seed."""
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    torch.set_num_threads(1)
    yield
    pyro.clear_param_store()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
