"""Import a script of ``benchmarks/`` by name, for the tests of the benchmarks."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module, registered in ``sys.modules`` under ``name`` (its
    dataclasses and pickled jobs need a module name)."""
    if str(BENCHMARKS) not in sys.path:  # the scripts import each other, as when run from there
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None, f"no benchmarks/{name}.py"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run_smoke(name: str, out: Path) -> dict[str, Any]:
    """Run ``benchmarks/<name>.py --smoke-test --out out`` in a fresh process (without the CI
    variables, so the flag alone must select the smoke mode) and return its ``results.json``."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYRO_GROUPS_SMOKE")}
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--smoke-test", "--out", str(out)],
        cwd=BENCHMARKS.parent, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((out / "results.json").read_text())
