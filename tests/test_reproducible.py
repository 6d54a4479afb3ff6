"""Reproducible builds: the same inputs and seed give the same bytes, in two separate processes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from conftest import SAMPLE
from edgec.report import without_timing


def _build_twice(tmp_path, *stage_args):
    """Two `edgec build` processes, one after the other, into the same --out; their files."""
    out = tmp_path / "out"
    runs = []
    for i in range(2):
        proc = subprocess.run([sys.executable, "-m", "edgec", "build", str(SAMPLE / "digits.keras"), "-t",
                               "cortex-m4", "-d", str(SAMPLE / "digits.npz"), "-o", str(out), "-q",
                               "--budget", "accuracy_drop=100%", *stage_args],
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr
        runs.append({p.name: p.read_bytes() for p in out.iterdir()})
        shutil.rmtree(out)
    return runs


@pytest.mark.parametrize("stages", [pytest.param((), id="post-training"),
                                    pytest.param(("--stage", "qat:epochs=1"), id="qat",
                                                 marks=pytest.mark.slow)])  # 50 s: two QAT builds
def test_same_inputs_same_bytes(tmp_path, stages):
    first, second = _build_twice(tmp_path, *stages)
    assert sorted(first) == sorted(second)
    binary = [n for n in first if n.endswith((".tflite", ".c", ".h"))]
    assert len(binary) == 4
    for name in binary:
        assert first[name] == second[name], name
    a, b = (json.loads(run["report.json"]) for run in (first, second))
    assert without_timing(a) == without_timing(b)
    assert a["reproducibility"]["seed"] == 0 and a["reproducibility"]["tf_op_determinism"] is True
    # The timing fields are what differs, so the comparison above is not vacuous.
    assert a["timing"] != b["timing"] or a["measurements"]["host_latency_ms"] != b["measurements"]["host_latency_ms"]
