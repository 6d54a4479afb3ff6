"""The command line: every bad input is one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SAMPLE, assert_one_line_error, run_cli

MODEL = str(SAMPLE / "digits.keras")
DATA = str(SAMPLE / "digits.npz")


def _build(tmp_path, model=MODEL, data=DATA, target="cortex-m4", out=None):
    out = out or tmp_path / "out"
    return run_cli("build", str(model), "--target", target, "--data", str(data), "--out", str(out)), out


def test_missing_model(tmp_path):
    proc, out = _build(tmp_path, model=tmp_path / "nope.keras")
    assert_one_line_error(proc, 2, "does not exist")
    assert not out.exists()


def test_file_that_is_not_a_model(tmp_path):
    bogus = tmp_path / "notes.keras"
    bogus.write_text("hello")
    proc, out = _build(tmp_path, model=bogus)
    assert_one_line_error(proc, 2, "not a Keras model")
    assert not out.exists()


def test_h5_that_is_not_a_model(tmp_path):
    import h5py

    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    proc, out = _build(tmp_path, model=path)
    assert_one_line_error(proc, 2, "could not load")
    assert not out.exists()


def test_data_shape_mismatch(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((20, 28, 28, 1), np.float32))
    proc, out = _build(tmp_path, data=path)
    assert_one_line_error(proc, 2, "shape", "(N, 8, 8, 1)")
    assert not out.exists()


def test_nan_in_data(tmp_path):
    x = np.random.default_rng(0).random((20, 8, 8, 1)).astype(np.float32)
    x[3, 1, 1, 0] = np.nan
    path = tmp_path / "d.npz"
    np.savez(path, x=x)
    proc, out = _build(tmp_path, data=path)
    assert_one_line_error(proc, 2, "NaN")
    assert not out.exists()


def test_unknown_target(tmp_path):
    proc, out = _build(tmp_path, target="cortex-m99")
    assert_one_line_error(proc, 2, "unknown target", "cortex-m4")
    assert not out.exists()


def test_output_directory_is_a_file(tmp_path):
    out = tmp_path / "out"
    out.write_text("keep me")
    proc, _ = _build(tmp_path, out=out)
    assert_one_line_error(proc, 2, "is not a directory")
    assert out.read_text() == "keep me"


def test_tflite_given_to_build(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(b"x" * 16)
    proc, _ = _build(tmp_path, model=path)
    assert_one_line_error(proc, 2, "edgec check")


def test_missing_option_is_one_line():
    proc = run_cli("build", MODEL)
    assert_one_line_error(proc, 2, "--target")


@pytest.mark.parametrize("args", [("targets",), ("targets", "--json")])
def test_targets_lists_profiles(args):
    proc = run_cli(*args)
    assert proc.returncode == 0
    assert "cortex-m4" in proc.stdout and "mobile" in proc.stdout


def test_inspect_per_op_table_and_live_memory(tfk, tmp_path):
    """Oracle for a chain of Dense layers: the bytes live at op i are its int8 input plus its output."""
    from edgec.convert.int8 import convert_int8

    tfk.utils.set_random_seed(0)
    model = tfk.Sequential([tfk.Input((10,)), tfk.layers.Dense(16, activation="relu"),
                            tfk.layers.Dense(8, activation="relu"), tfk.layers.Dense(4)])
    path = tmp_path / "chain.tflite"
    path.write_bytes(convert_int8(model, np.random.default_rng(0).normal(size=(32, 10)).astype(np.float32)))
    proc = run_cli("inspect", str(path), "--target", "cortex-m4", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert [o["op"] for o in info["ops"]] == ["FULLY_CONNECTED"] * 3
    assert [o["live_bytes"] for o in info["ops"]] == [10 + 16, 16 + 8, 8 + 4]
    assert [o["macs"] for o in info["ops"]] == [160, 128, 32]
    assert abs(sum(o["latency_share"] for o in info["ops"]) - 1) < 1e-9
    text = run_cli("inspect", str(path))
    assert text.returncode == 0 and text.stdout.count("FULLY_CONNECTED") == 3 and "live bytes" in text.stdout


def test_summary_md_is_written_and_a_bad_path_is_refused(tiny_tflite, tmp_path):
    model = tmp_path / "tiny.tflite"
    model.write_bytes(tiny_tflite)
    md = tmp_path / "summary.md"
    proc = run_cli("check", str(model), "--target", "cortex-m4", "--summary-md", str(md), "-q")
    assert proc.returncode == 0, proc.stderr
    summary = md.read_text()
    assert summary.startswith("### edgec check:") and "| budget | value | limit | margin | status |" in summary
    bad = run_cli("check", str(model), "--target", "cortex-m4", "--summary-md", str(tmp_path / "no" / "x.md"))
    assert_one_line_error(bad, 2, "--summary-md", "writable directory")


def test_stages_json_lists_every_stage_with_its_defaults():
    proc = run_cli("stages", "--json")
    assert proc.returncode == 0, proc.stderr
    stages = json.loads(proc.stdout)
    assert set(stages) == {"prune", "cluster", "ternary", "binary", "qat", "distill", "channels", "lowrank"}
    assert stages["ternary"]["parameters"]["threshold"] == 0.7 and "threshold" not in stages["binary"]["parameters"]
    assert stages["channels"]["parameters"]["fraction"] == 0.5
