"""The benchmark harness: its published figures match its results, and its instruments measure what they claim."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import ROOT, shared_model
from edgec.runtime import micro
from edgec.runtime.model_file import read_model

sys.path.insert(0, str(ROOT / "benchmarks"))

import arena  # noqa: E402
import common  # noqa: E402
import headline  # noqa: E402

RESULTS = json.loads((ROOT / "benchmarks" / "results.json").read_text())


def test_readme_headline_is_rendered_from_results():
    """No figure in the README's benchmark block is typed by hand: it is exactly what results.json renders."""
    lines = headline.render(RESULTS)
    assert len(lines) >= 10
    assert headline.block((ROOT / "README.md").read_text()) == lines


def test_committed_results_cover_every_section():
    assert RESULTS["shared_models"], "results.json must come from a run with ../shared/models present"
    for section in ("fidelity", "overhead", "gate", "arena", "latency", "codegen", "compression"):
        assert RESULTS.get(section), section
    results_md = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    for row in RESULTS["fidelity"] + RESULTS["overhead"]:
        assert row["model"] in results_md


def test_process_memory_counts_grandchildren():
    """The overhead benchmark's peak memory includes a child's child (edgec's interpreter process)."""
    code = ("import subprocess, sys; subprocess.run([sys.executable, '-c', "
            "'b = bytearray(300 << 20); import time; time.sleep(0.5)'])")
    cost = common.run_measured([sys.executable, "-c", code])
    assert cost.peak_tree_rss >= 300 << 20
    assert cost.peak_process_rss >= 300 << 20
    assert 0.5 <= cost.seconds < 30


def _arena_cross_check(data: bytes) -> None:
    record = arena.tflm_record(data)
    measured = micro.measure_arena(data)
    assert measured.bytes == record["total"]
    assert read_model(data).peak_live_bytes == arena.live_lower_bound(data)
    assert record["head"] >= arena.live_lower_bound(data)


def test_arena_equals_tflite_micro_record_and_live_bound_matches(tiny_tflite):
    """edgec's arena against TFLite-Micro's own record, and its live-tensor peak against an independent count."""
    _arena_cross_check(tiny_tflite)


@pytest.mark.parametrize("name", ["kws_ref_model.tflite", "ic_resnet8_ref_int8.tflite"])
def test_arena_cross_check_on_reference_models(name):
    _arena_cross_check(shared_model(name).read_bytes())
