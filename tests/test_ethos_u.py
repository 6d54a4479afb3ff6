"""Ethos-U55 target: Vela compiles the int8 model; its CSV figures drive the budgets."""

from __future__ import annotations

import json

import pytest

from conftest import SAMPLE, run_cli, shared_model
from edgec.check import targets
from edgec.check.measure import compile_for_npu, measure
from edgec.load.tflite_file import read_tflite
from edgec.runtime import micro, vela

TARGET = "cortex-m55-ethos-u55"


def _compile(data: bytes):
    return compile_for_npu(data, targets.get(TARGET))


def test_vela_figures_are_consistent_with_the_model(tiny_tflite):
    npu = _compile(tiny_tflite)
    tfl = read_tflite(tiny_tflite)
    # Vela counts MACs itself: an independent oracle for edgec's MAC counter. Vela
    # also counts one per output element of elementwise ops (the ADD: 256 of 5,450
    # here), which edgec does not, hence 6 %; on KWS they agree to 1e-3 (below).
    assert npu.macs == pytest.approx(tfl.macs, rel=0.06)
    # Vela's inference time is its cycle count at its NPU clock.
    assert npu.inference_ms == pytest.approx(1000 * npu.npu_cycles / npu.npu_clock_hz, rel=1e-3)
    assert npu.npu_ops >= 1 and npu.cpu_ops == ()
    assert 0 < npu.sram_bytes and 0 < npu.flash_bytes < len(npu.model)
    assert read_tflite(npu.model).op_counts == {"CUSTOM:ethos-u": 1}


def test_measurements_come_from_vela(tiny_tflite):
    target = targets.get(TARGET)
    npu = _compile(tiny_tflite)
    arena = micro.measure_arena(tiny_tflite)
    m = measure(tiny_tflite, read_tflite(tiny_tflite), target, arena, host_latency=False, npu=npu)
    assert m["flash_bytes"] == len(npu.model) + target.flash_reserved_bytes
    assert m["ram_bytes"] == npu.sram_bytes + arena.tail_bytes + target.ram_reserved_bytes
    assert m["latency_ms"] == pytest.approx(npu.inference_ms)  # no CPU op
    assert m["latency_model"]["calibrated"] is False


def test_cpu_fallback_ops_are_reported_by_layer(tmp_path, tfk):
    """REVERSE_V2 runs in TFLite-Micro but not on the NPU: the build names the layer."""
    inp = tfk.Input((4, 4, 3))
    x = tfk.layers.Conv2D(4, 1, name="conv")(inp)
    x = tfk.layers.Lambda(lambda t: __import__("tensorflow").reverse(t, axis=[2]), name="flip")(x)
    model_path = tmp_path / "flip.keras"
    tfk.Model(inp, x).save(model_path)
    out = tmp_path / "out"
    proc = run_cli("build", str(model_path), "--target", TARGET, "--data", "random", "--out", str(out),
                   "--json", "--allow-custom-code")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    rows = report["measurements"]["npu"]["cpu_ops"]
    assert [(r["op"], r["layer"]) for r in rows] == [("REVERSE_V2", "layer 'flip'")]
    assert any("REVERSE_V2 (layer 'flip')" in w for w in report["warnings"])
    assert report["measurements"]["latency_model"]["cpu_ms"] > 0


def test_build_embeds_the_vela_model(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("build", str(SAMPLE / "digits.keras"), "--target", TARGET,
                   "--data", str(SAMPLE / "digits.npz"), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    compiled = (out / "digits_vela.tflite").read_bytes()
    assert read_tflite(compiled).op_counts == {"CUSTOM:ethos-u": 1}
    source = (out / "digits_model_data.c").read_text()
    assert f"{len(compiled)}" in source  # the array holds the compiled model, not the plain one
    settings = (out / "digits_model_settings.h").read_text()
    assert "((resolver).AddEthosU() != kTfLiteOk)" in settings
    report = json.loads(proc.stdout)
    assert report["target"]["npu"]["accelerator"] == "ethos-u55-128"
    arena = report["measurements"]["npu_arena"]
    assert f"#define DIGITS_TENSOR_ARENA_SIZE {-(-arena['arena_bytes'] // 16) * 16}" in settings


def test_check_reference_kws_on_ethos_u55():
    path = shared_model("kws_ref_model.tflite")
    proc = run_cli("check", str(path), "--target", TARGET, "--json")
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout)["measurements"]
    # The NPU is far faster than the Cortex-M4 reference (181.9 ms published) and
    # Vela's SRAM plan is below the CPU arena TFLite-Micro measures.
    assert m["latency_ms"] < 18.19
    assert m["npu"]["sram_bytes"] < m["arena_bytes"]
    assert m["npu"]["macs"] == pytest.approx(m["macs"], rel=1e-3)


def test_vela_failure_is_one_line(tmp_path):
    with pytest.raises(Exception) as info:
        vela.compile_model(b"not a flatbuffer" * 10, "ethos-u55-128", "Ethos_U55_High_End_Embedded",
                           "Shared_Sram")
    assert "Vela could not compile" in str(info.value)
