"""The build report: one dict-backed object rendered as JSON or terminal text.

``report.json`` is API: its keys are versioned by ``schema_version`` and
covered by tests. Timing fields are collected under ``timing`` so the rest is
reproducible byte for byte.
"""

from __future__ import annotations

import dataclasses
import json

from edgec.check.budgets import failures

SCHEMA_VERSION = 1
# What differs between two runs of the same build: wall-clock figures and where the files went.
TIMING_FIELDS = ("timing", "stages[].seconds", "measurements.host_latency_ms")


def without_timing(report: dict) -> dict:
    """``report`` (a ``to_dict()``) without :data:`TIMING_FIELDS`: equal for equal builds."""
    d = {k: v for k, v in report.items() if k != "timing"}
    d["stages"] = [{k: v for k, v in row.items() if k != "seconds"} for row in d.get("stages") or []]
    d["measurements"] = {k: v for k, v in (d.get("measurements") or {}).items() if k != "host_latency_ms"}
    return d


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
    reproducibility: dict | None = None  # seeds and determinism settings edgec set

    @property
    def ok(self) -> bool:
        return all(b.get("ok", True) for b in self.budgets)

    @property
    def failures(self) -> list[str]:
        """One phrase per failing budget: value, limit and overshoot."""
        return failures(self.budgets)

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
