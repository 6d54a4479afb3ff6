"""The build report: one dict-backed object rendered as JSON or terminal text.

``report.json`` is API: its keys are versioned by ``schema_version`` and
covered by tests. Timing fields are collected under ``timing`` so the rest is
reproducible byte for byte.
"""

from __future__ import annotations

import dataclasses
import json

from edgec.report.tables import quantity as format_quantity  # noqa: F401  (budgets' messages use it)

SCHEMA_VERSION = 1


@dataclasses.dataclass
class Report:
    """Everything a build measured. ``ok`` is False when any budget failed."""

    model: dict
    target: dict
    tflite: dict
    measurements: dict
    command: str = "build"
    data: dict | None = None
    verification: dict | None = None
    artifacts: dict = dataclasses.field(default_factory=dict)
    budgets: list = dataclasses.field(default_factory=list)
    stages: list = dataclasses.field(default_factory=list)
    fit: dict | None = None  # --fit: the channel fraction chosen and every trial
    warnings: list = dataclasses.field(default_factory=list)
    timing: dict = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(b.get("ok", True) for b in self.budgets)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict:
        d = {"schema_version": SCHEMA_VERSION}
        d.update(dataclasses.asdict(self))
        d["ok"] = self.ok
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def to_text(self, color: bool = False) -> str:
        """The terminal summary; ``color`` marks pass/fail with ANSI colours."""
        from edgec.report.text import render

        return render(self.to_dict(), color=color)

    def to_html(self) -> str:
        """The self-contained ``report.html`` page with plots."""
        from edgec.report.html import render

        return render(self.to_dict())

    def to_markdown(self) -> str:
        """A short Markdown summary for a CI job's step summary."""
        from edgec.report.markdown import render

        return render(self.to_dict())
