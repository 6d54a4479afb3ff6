"""Golden files for the terminal summary and the Markdown CI summary.

Each folder in tests/data/reports/ holds a ``report.json`` (from a real build
or check, paths made relative) and the expected ``summary.txt`` (no colour)
and ``summary.md``. Regenerate after an intended change with
``EDGEC_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_report_golden.py`` and review the diff.
"""

from __future__ import annotations

import json
import os

import pytest

from conftest import DATA
from edgec.report import markdown, text

CASES = sorted(p.name for p in (DATA / "reports").iterdir() if (p / "report.json").exists())
RENDERERS = {"summary.txt": lambda r: text.render(r, color=False), "summary.md": markdown.render}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("golden", RENDERERS)
def test_golden(case, golden):
    folder = DATA / "reports" / case
    report = json.loads((folder / "report.json").read_text())
    got = RENDERERS[golden](report)
    path = folder / golden
    if os.environ.get("EDGEC_UPDATE_GOLDEN"):
        path.write_text(got)
    assert path.exists(), f"{path} is missing; run with EDGEC_UPDATE_GOLDEN=1 once and review it"
    assert got == path.read_text()


def test_cases_are_discovered():
    assert len(CASES) >= 4


def test_colour_marks_status_only_when_asked():
    report = json.loads((DATA / "reports" / "sample_channels_over_budget" / "report.json").read_text())
    coloured = text.render(report, color=True)
    assert "\033[31mEXCEEDED\033[0m" in coloured and "\033[32mok\033[0m" in coloured
    assert "\033[" not in text.render(report, color=False)
