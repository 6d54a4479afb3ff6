"""The MLPerf Tiny reference models in ../shared/models build end to end (skipped without ../shared)."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli, shared_model
from edgec.load.tflite_file import read_tflite, read_tflite_file
from edgec.runtime import micro


def _minmax_bytes(data: bytes) -> int:
    """Bytes of float32 calibration min/max records kept in a flatbuffer (no runtime reads them)."""
    from ai_edge_litert import schema_py_generated as schema

    graph = schema.Model.GetRootAsModel(data, 0).Subgraphs(0)
    n = 0
    for i in range(graph.TensorsLength()):
        q = graph.Tensors(i).Quantization()
        if q is not None:
            n += q.MinLength() + q.MaxLength()
    return 4 * n


@pytest.mark.parametrize("model, reference", [("ic_resnet8.h5", "ic_resnet8_ref_int8.tflite"),
                                              ("kws_ref_model", "kws_ref_model.tflite")])
def test_reference_model_builds_and_matches_reference_size(tmp_path, model, reference):
    src = shared_model(model)
    ref_data, ref = read_tflite_file(shared_model(reference))
    out = tmp_path / "out"
    proc = run_cli("build", str(src), "--target", "cortex-m4", "--data", "random", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["random"] is True and any("RANDOM" in w for w in report["warnings"])
    name = report["model"]["name"]
    for suffix in (".tflite", "_model_data.h", "_model_data.c", "_model_settings.h"):
        assert (out / f"{name}{suffix}").is_file()
    data = (out / f"{name}.tflite").read_bytes()
    ours = read_tflite(data)
    # The MLPerf Tiny reference conversion's graph and weight bytes, less the RESHAPE (and its 2-value
    # shape constant) before the classifier: traced at batch 1, the converter feeds FULLY_CONNECTED
    # the pooled 4-D tensor directly.
    expected = {**ref.op_counts, "RESHAPE": ref.op_counts["RESHAPE"] - 1}
    assert ours.op_counts == {op: n for op, n in expected.items() if n}
    ref_const = sum(t.nbytes for t in ref.tensors if t.is_constant)
    shape_const = next(ref.tensors[op.inputs[1]].nbytes for op in ref.ops if op.name == "RESHAPE")
    assert sum(t.nbytes for t in ours.tensors if t.is_constant) == ref_const - shape_const
    # Size within 5 % of the reference file, once the reference's dead float32
    # min/max calibration record (written by the TF 2.3 converter, read by no runtime) is set aside.
    assert abs(len(data) / (len(ref_data) - _minmax_bytes(ref_data)) - 1) <= 0.05
    assert micro.measure_arena(data).bytes > 0
    assert report["verification"]["micro_vs_litert_max_lsb"] <= 1


def test_resnet8_tucker_at_half_rank_cuts_macs_by_40_percent_and_runs_in_tflite_micro(tmp_path):
    src = shared_model("ic_resnet8.h5")
    out = tmp_path / "out"
    proc = run_cli("build", str(src), "--target", "cortex-m4", "--data", "random", "--out", str(out),
                   "--stage", "lowrank:method=tucker,ratio=0.5,epochs=0")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    stage = report["stages"][1]
    factored = {row["layer"]: row for row in stage["factorized"]}
    assert sum(row["method"] == "tucker" for row in factored.values()) == 7  # every 3x3 convolution
    assert stage["footprint"]["ratio"]["macs"] <= 0.6
    data = (out / f"{report['model']['name']}.tflite").read_bytes()
    assert report["measurements"]["macs"] == read_tflite(data).macs <= 0.6 * stage["footprint"]["before"]["macs"]
    assert report["verification"]["micro_samples"] > 0 and report["verification"]["micro_vs_litert_max_lsb"] <= 1


@pytest.mark.slow
def test_resnet8_clustered_ships_lut_compressed_weights_bit_exact(tmp_path):
    """ResNet-8 after cluster:clusters=16 (random inputs and labels: sizes only): the weights ship as 4-bit
    tables, TFLite-Micro decodes them bit-exact, and the bytes and the arena are reported against int8."""
    import numpy as np

    src = shared_model("ic_resnet8.h5")
    rng = np.random.default_rng(0)
    data = tmp_path / "random.npz"
    np.savez(data, x=rng.normal(size=(128, 32, 32, 3)).astype(np.float32), y=rng.integers(0, 10, 128))
    out = tmp_path / "out"
    proc = run_cli("build", str(src), "--target", "cortex-m4", "--data", str(data), "--out", str(out), "--json",
                   "--stage", "cluster:clusters=16,epochs=1", "--budget", "accuracy_drop=100%")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    lut = report["tflite"]["lut"]
    assert lut["applied"] and lut["tflite_micro_bit_exact"]["bit_exact"]
    assert lut["auto"]["bytes_saved"] > lut["auto"]["decode_kernel_bytes"]  # what --lut auto ships it for
    assert sum(t["bits"] == 4 for t in lut["tensors"]) >= 6  # the 3x3 convs; small ones may not pay
    rows = {r["name"]: r for r in report["stages"]}
    assert rows["lut"]["tflite_bytes"] == lut["bytes_after"] < 0.7 * rows["int8"]["tflite_bytes"]
    assert report["measurements"]["arena_bytes"] > 0
