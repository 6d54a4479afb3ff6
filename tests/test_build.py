"""A real end-to-end build of the bundled sample, and atomic outputs."""

from __future__ import annotations

import json
import os

import pytest

from conftest import SAMPLE, run_cli
from edgec.emit import artifacts
from edgec.errors import OutputError
from edgec.load.tflite_file import read_tflite
from edgec.runtime import micro


def test_sample_artifacts_and_json_keys(sample_build):
    out, proc = sample_build
    names = sorted(p.name for p in out.iterdir())
    assert names == ["digits.tflite", "digits_model_data.c", "digits_model_data.h",
                     "digits_model_settings.h", "report.html", "report.json"]
    report = json.loads(proc.stdout)  # --json: stdout is exactly the report
    assert report == json.loads((out / "report.json").read_text())
    assert report["schema_version"] == 1 and report["ok"] is True
    assert {"name", "source", "parameters"} <= set(report["model"])
    assert report["model"]["format"] == "keras3"
    tfl = report["tflite"]
    assert tfl["bytes"] == (out / "digits.tflite").stat().st_size
    for io in (tfl["input"], tfl["output"]):
        assert {"shape", "dtype", "scale", "zero_point"} <= set(io) and io["dtype"] == "int8"
    assert tfl["ops"]["CONV_2D"] == 2
    meas = report["measurements"]
    assert meas["macs"] > 0 and meas["arena_bytes"] > 0
    assert "64" in meas["arena"]["measured_on"] or "x86-64" in meas["arena"]["measured_on"]
    ver = report["verification"]
    assert {"top1_agreement", "output_error_steps_mean", "output_error_steps_max",
            "micro_vs_litert_max_lsb", "float_accuracy", "int8_accuracy"} <= set(ver)


def test_sample_int8_accuracy_within_one_point_of_float(sample_build):
    """Done-when of the build issue: measured through the interpreter on held-out labels."""
    out, _ = sample_build
    ver = json.loads((out / "report.json").read_text())["verification"]
    assert ver["samples"] == 360
    assert ver["float_accuracy"] > 0.95
    assert ver["float_accuracy"] - ver["int8_accuracy"] <= 0.01
    assert ver["micro_vs_litert_max_lsb"] <= 1


def test_sample_tflite_runs_in_tflite_micro_with_the_header_arena(sample_build):
    out, _ = sample_build
    data = (out / "digits.tflite").read_bytes()
    header = (out / "digits_model_settings.h").read_text()
    arena = int(header.split("#define DIGITS_TENSOR_ARENA_SIZE ")[1].split()[0])
    assert micro._construct(data, arena)[0] is not None
    assert read_tflite(data).input.shape == (1, 8, 8, 1)


def test_failed_build_leaves_previous_output_untouched(sample_build, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "digits.tflite").write_bytes(b"previous")
    (out / "mine.txt").write_text("user file")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"broken")
    proc = run_cli("build", str(SAMPLE / "digits.keras"), "--target", "cortex-m4", "--data", str(bad),
                   "--out", str(out))
    assert proc.returncode == 2
    assert (out / "digits.tflite").read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz", "out"]  # no staging left over


def test_writer_failure_midway_changes_nothing(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.bin").write_bytes(b"old")
    real_open = open

    def failing_open(path, *a, **k):
        if str(path).endswith("b.bin"):
            raise OSError(28, "No space left on device")
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", failing_open)
    with pytest.raises(OutputError, match="unchanged"):
        artifacts.write_artifacts(out, {"a.bin": b"new", "b.bin": b"new"})
    monkeypatch.undo()
    assert (out / "a.bin").read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_writer_creates_new_directory_atomically(tmp_path):
    paths = artifacts.write_artifacts(tmp_path / "new" / "deep", {"x.h": b"1"})
    assert (tmp_path / "new" / "deep" / "x.h").read_bytes() == b"1"
    assert paths["x.h"].endswith("x.h")
