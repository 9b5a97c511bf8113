import os

# Notebooks and benchmark scripts run in their seconds-long smoke mode under pytest.
os.environ.setdefault("PYRO_GROUPS_SMOKE", "1")
