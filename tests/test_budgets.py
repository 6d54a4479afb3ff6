"""Budgets: units, the latency model, and the `edgec check` gate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_cli, shared_model
from edgec.check import budgets, targets
from edgec.check.measure import measure
from edgec.errors import ConfigError
from edgec.load.tflite_file import read_tflite, read_tflite_file
from edgec.runtime.micro import Arena
from edgec.units import parse_budget_options, parse_quantity


@pytest.mark.parametrize("name, text, value", [
    ("ram", "96KiB", 98304), ("ram", "96 kb", 96000), ("flash", "1MiB", 1048576), ("flash", "40000", 40000),
    ("latency", "50ms", 50.0), ("latency", "0.2s", 200.0), ("latency", "500us", 0.5),
    ("accuracy_drop", "1%", 0.01), ("accuracy_drop", "0.005", 0.005),
])
def test_units(name, text, value):
    assert parse_quantity(name, text) == pytest.approx(value)


@pytest.mark.parametrize("spec, words", [("ram=96 parsecs", "no valid unit"), ("latency=fast", "no valid unit"),
                                         ("speed=3ms", "unknown budget"), ("ram", "NAME=VALUE"),
                                         ("ram=50ms", "no valid unit")])
def test_bad_budget_specs(spec, words):
    with pytest.raises(ConfigError, match=words):
        parse_budget_options([spec])


@pytest.mark.parametrize("kernels", ["tflm-reference", "tflm-cmsis-nn"])
def test_latency_is_the_instruction_model_times_cycles_per_instruction_over_clock(tiny_tflite, kernels):
    """Oracle: each op's terms (fixed, per MAC, per output value, per kernel tap, per patch value, per input
    value) times the profile's fitted coefficients for its kind (a 1x1 stride-1 convolution over a multiple of
    4 channels has its own), summed by hand, times cycles per instruction, over the clock."""
    t = targets.get("cortex-m4").with_kernels(kernels)
    tfl = read_tflite(tiny_tflite)
    m = measure(tiny_tflite, tfl, t, Arena(1000, 600, 400, 1000), host_latency=False)
    tab = t.instructions[kernels]
    want = 0.0
    kinds = set()
    for op in tfl.ops:
        out = sum(tfl.tensors[i].elements for i in op.outputs)
        kind = op.name
        if op.name == "CONV_2D":
            o, kh, kw, i = tfl.tensors[op.inputs[1]].shape
            if (kh, kw) == (1, 1) and tuple(op.options["stride"]) == (1, 1) and i % 4 == 0:
                kind = "CONV_2D_1X1"
        kinds.add(kind)
        c = tab[kind]
        want += c.get("fixed", 0) + c.get("per_output", 0) * out + c.get("per_mac", 0) * op.macs
        if op.name == "CONV_2D":
            want += c.get("per_tap", 0) * op.macs / i + c.get("per_patch", 0) * op.macs / o
        if op.name.endswith("POOL_2D"):
            want += c.get("per_input", 0) * tfl.tensors[op.inputs[0]].elements
    assert "CONV_2D" in kinds  # the model has a convolution costed by the general table
    assert m["instructions"] == pytest.approx(want, abs=len(tfl.ops))  # per-op rounding
    assert m["cycles"] == pytest.approx(want * t.cycles_per_instruction[kernels], rel=1e-3)
    assert m["latency_ms"] == pytest.approx(1000 * m["cycles"] / t.clock_hz)
    lo, hi = m["latency_ms_range"]
    assert lo < m["latency_ms"] < hi and m["latency_model"]["kernels"] == kernels
    # flash: the model, TFLite-Micro's framework and each of the model's kernels (the profile's table), the reserve
    parts = t.runtime_flash[kernels]
    runtime = parts["framework"] + sum(parts[k] for k in set(op.name for op in tfl.ops))
    assert m["flash_bytes"] == tfl.nbytes + runtime + t.flash_reserved_bytes
    assert m["runtime_flash"]["bytes"] == runtime and m["runtime_flash"]["not_measured"] == []
    assert m["ram_bytes"] == 1000 + t.ram_reserved_bytes
    assert sum(r["latency_share"] for r in m["ops"]) == pytest.approx(1.0)


def test_evaluate_overrides_and_failures():
    t = targets.get("cortex-m4")
    meas = {"flash_bytes": 100_000, "ram_bytes": 50_000, "latency_ms": 80.0}
    res = {b["name"]: b for b in budgets.judge(meas, t, {"ram": 40_000.0}, accuracy_drop=0.002)}
    assert res["ram"]["ok"] is False and res["ram"]["limit"] == 40_000
    assert res["flash"]["ok"] and res["latency"]["ok"] and res["accuracy_drop"]["ok"]
    msgs = budgets.failures(list(res.values()))
    assert msgs == ["ram 48.8 KiB exceeds 39.1 KiB by 9.8 KiB (25 % over)"]


MCU = Path(__file__).resolve().parents[2] / "shared" / "mcu" / "tflm_cortex_m4.json"


@pytest.mark.skipif(not MCU.exists(), reason="../shared/mcu absent (a user's clone has none)")
@pytest.mark.parametrize("model, file", [("kws", "kws_ref_model.tflite"), ("ic", "ic_resnet8_ref_int8.tflite")])
@pytest.mark.parametrize("kernels, key", [("tflm-reference", "ref"), ("tflm-cmsis-nn", "cmsis_nn")])
def test_cortex_m4_instructions_within_15_percent_of_the_measured_firmware(model, file, kernels, key):
    """Instructions per inference counted under QEMU on a real TFLite-Micro firmware (../shared/mcu). The
    tables were fitted on these models (scripts/fit_latency.py), so this guards the fit, not generalization."""
    measured = json.loads(MCU.read_text())["models"][model]["libs"][key]["invoke_instructions"]
    data, tfl = read_tflite_file(shared_model(file))
    t = targets.get("cortex-m4").with_kernels(kernels)
    est = measure(data, tfl, t, Arena(1, 1, 0, 1), host_latency=False)["instructions"]
    assert abs(est / measured - 1) <= 0.15


def _tiny_file(tmp_path, tiny_tflite):
    path = tmp_path / "tiny.tflite"
    path.write_bytes(tiny_tflite)
    return path


def test_check_passes_and_fails_the_gate(tmp_path, tiny_tflite):
    path = _tiny_file(tmp_path, tiny_tflite)
    ok = run_cli("check", str(path), "--target", "cortex-m4", "--json")
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["ok"] and report["target"]["kernels"] == "tflm-cmsis-nn"
    assert {"flash_bytes", "ram_bytes", "arena_bytes", "macs", "latency_ms", "host_latency_ms"} <= set(
        report["measurements"])
    assert {b["name"] for b in report["budgets"]} == {"flash", "ram", "latency"}
    bad = run_cli("check", str(path), "--target", "cortex-m4", "--budget", "ram=1KiB", "--kernels", "tflm-reference")
    assert bad.returncode == 1
    assert "budget exceeded: ram" in bad.stderr and "exceeds 1.0 KiB" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_large_model_fails_on_m0plus_and_passes_on_m7():
    path = shared_model("ic_resnet8_ref_int8.tflite")
    small = run_cli("check", str(path), "--target", "cortex-m0plus")
    assert small.returncode == 1 and "budget exceeded: ram" in small.stderr
    big = run_cli("check", str(path), "--target", "cortex-m7")
    assert big.returncode == 0, big.stderr


def test_check_does_not_import_tensorflow(tmp_path, tiny_tflite):
    path = _tiny_file(tmp_path, tiny_tflite)
    code = ("import sys; from edgec.cli import main\n"
            "try:\n    main(['check', sys.argv[1], '--target', 'cortex-m4', '--quiet'])\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras'))\n"
            "assert not bad, bad\nprint('clean')\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert proc.returncode == 0 and "clean" in proc.stdout, proc.stderr


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"\x1c\x00\x00\x00TFL3" + b"\x00" * 8])
def test_check_bad_tflite_is_one_line(tmp_path, content):
    path = tmp_path / "bad.tflite"
    path.write_bytes(content)
    assert_one_line_error(run_cli("check", str(path), "--target", "cortex-m4"), 2)


def test_check_budget_with_wrong_unit(tmp_path, tiny_tflite):
    path = _tiny_file(tmp_path, tiny_tflite)
    assert_one_line_error(run_cli("check", str(path), "--target", "cortex-m4", "--budget", "ram=3ms"), 2, "unit")


@pytest.mark.parametrize("target, asked, missing, words", [
    ("mobile", {"ram": 1e6}, None, "budget ram cannot be checked on target mobile"),
    ("cortex-m4", {"accuracy_drop": 0.01}, "no labels here", "budget accuracy_drop cannot be checked: no labels"),
])
def test_a_budget_that_cannot_be_measured_is_refused(target, asked, missing, words):
    """A gate that quietly skipped a budget the user asked for would pass without checking it."""
    with pytest.raises(ConfigError, match=words):
        budgets.require_measurable(asked, targets.get(target), missing)
    budgets.require_measurable({"flash": 1e6, "latency": 50.0}, targets.get(target), missing)  # these are measured


def test_evaluate_refuses_an_asked_budget_left_unmeasured():
    with pytest.raises(ConfigError, match="accuracy_drop was asked for but not measured"):
        budgets.judge({"flash_bytes": 10, "ram_bytes": None}, targets.get("mobile"), {"accuracy_drop": 0.01})
    # the profile's own defaults are skipped where unmeasured: no error, no row
    rows = budgets.judge({"flash_bytes": 10, "ram_bytes": None}, targets.get("cortex-m4"), {})
    assert {b["name"] for b in rows} == {"flash"}


@pytest.mark.parametrize("target, budget, words", [
    ("mobile", "ram=64MiB", "budget ram cannot be checked on target mobile"),
    ("cortex-m4", "accuracy_drop=1%", "edgec check has no data"),
])
def test_check_refuses_a_budget_it_cannot_measure(tmp_path, tiny_tflite, target, budget, words):
    path = _tiny_file(tmp_path, tiny_tflite)
    assert_one_line_error(run_cli("check", str(path), "--target", target, "--budget", budget), 2, words)


def test_an_op_kind_without_measurements_is_costed_as_a_similar_one_and_named():
    from edgec.check.measure import latency_warnings
    from edgec.load.tflite_file import Op, Tensor, TFLiteModel

    x = Tensor(0, "x", (1, 64), "int8", (0.1,), (0,), False)
    w = Tensor(1, "w", (16, 64), "int8", (0.01,), (0,), True)
    y = Tensor(2, "y", (1, 16), "int8", (0.1,), (0,), False)
    z = Tensor(3, "z", (1, 16), "int8", (0.1,), (0,), False)
    ops = (Op(0, "FULLY_CONNECTED", (0, 1), (2,), 1024, 1024, {}), Op(1, "TANH", (2,), (3,), 0, 0, {}))
    tfl = TFLiteModel(100, (x, w, y, z), ops, (0,), (3,))
    t = targets.get("cortex-m4")
    m = measure(b"", tfl, t, Arena(1000, 600, 400, 1000), host_latency=False)
    tanh = m["ops"][1]
    per_value = t.instruction_tables()["ADD"]["per_output"]
    assert tanh["costed_as"] == "ADD" and tanh["instructions"] == round(16 * per_value)
    assert m["latency_not_measured"] == ["TANH (as ADD)"]
    assert "TANH (as ADD)" in latency_warnings(m)[0]


def test_pointwise_convolutions_are_costed_by_their_own_kernel_path():
    """CMSIS-NN runs a 1x1 stride-1 convolution over a multiple of 4 channels as a plain matrix product:
    KWS's four pointwise layers are costed by the CONV_2D_1X1 table, its first (10x4) layer by CONV_2D."""
    from edgec.check import latency
    from edgec.load.tflite_file import read_tflite_file

    _, tfl = read_tflite_file(shared_model("kws_ref_model.tflite"))
    rows = latency.op_table(tfl, targets.get("cortex-m4"))
    kinds = [r["costed_as"] for r in rows if r["op"] == "CONV_2D"]
    assert kinds == ["CONV_2D"] + ["CONV_2D_1X1"] * 4
