"""README.rst is valid reStructuredText: its tables and literal blocks render without warnings."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

docutils_core = pytest.importorskip("docutils.core")

README = Path(__file__).resolve().parents[1] / "README.rst"


def test_readme_renders_without_warnings() -> None:
    errors = io.StringIO()
    docutils_core.publish_doctree(
        README.read_text(encoding="utf-8"),
        settings_overrides={"report_level": 2, "halt_level": 5, "warning_stream": errors},
    )
    assert errors.getvalue() == ""
