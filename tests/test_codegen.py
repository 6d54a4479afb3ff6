"""Interpreter-free C: TFLite's integer parameters against hand-worked values, and the
generated code bit-exact with TFLite-Micro (the oracle, tolerance 0 LSB) on every kernel
variant, on the host and under QEMU; sizes and instruction counts from the ELF and the
emulator; one-line errors for what has no kernel."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import assert_one_line_error, have, run_cli, shared_model
from edgec.check import targets
from edgec.emit.codegen import generate, quant, toolchain
from edgec.emit.codegen.crosscheck import emit_and_verify, probe_inputs
from edgec.load.tflite_file import read_tflite, read_tflite_file
from edgec.runtime import micro

REQUIRED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "ADD",
            "RESHAPE", "SOFTMAX"}
needs_gcc = pytest.mark.skipif(not have("gcc"), reason="gcc is not installed (make test installs it)")
needs_arm = pytest.mark.skipif(not have("arm-none-eabi-gcc", "qemu-system-arm"),
                               reason="gcc-arm-none-eabi / qemu-system-arm not installed (make test installs them)")


def test_quantize_multiplier_matches_hand_worked_values():
    assert quant.quantize_multiplier(0.5) == (1 << 30, 0)
    assert quant.quantize_multiplier(1.0) == (1 << 30, 1)
    assert quant.quantize_multiplier(0.25) == (1 << 30, -1)
    assert quant.quantize_multiplier(0.75) == (1610612736, 0)
    assert quant.quantize_multiplier(0.0) == (0, 0)
    assert quant.quantize_multiplier(2.0 ** -40) == (0, 0)  # below 2^-31: TFLite zeroes it
    # q rounds up to exactly 2^31: halved, shift + 1
    assert quant.quantize_multiplier(1 - 2.0 ** -40) == (1 << 30, 1)
    # halves round away from zero, as std::round does (Python's round() would go to even)
    assert quant.quantize_multiplier(0.5 + 2.0 ** -32) == ((1 << 30) + 1, 0)


def test_activation_ranges():
    assert quant.activation_range(quant.ACT_NONE, 0.1, 3) == (-128, 127)
    assert quant.activation_range(quant.ACT_RELU, 0.1, 10) == (10, 127)
    assert quant.activation_range(quant.ACT_RELU6, 6 / 255, -128) == (-128, 127)
    assert quant.activation_range(quant.ACT_RELU6, 0.05, -20) == (-20, 100)
    assert quant.activation_range(quant.ACT_RELU_N1_TO_1, 0.01, 0) == (-100, 100)


def test_padding_and_softmax_parameters():
    assert quant.padding(9, 5, 2, 3) == 1          # SAME, odd input: 1 before, 1 after
    assert quant.padding(8, 4, 2, 3) == 0          # SAME: total 1, all after
    assert quant.padding(9, 3, 2, 5) == 0          # VALID
    mult, shift, diff_min = quant.softmax_params(1.0, 1 / 16)
    # beta * scale * 2^26 = 2^22 -> multiplier 2^30 with shift 23; radius 31 * 2^26 / 2^23 = 248
    assert (mult, shift, diff_min) == (1 << 30, 23, -248)


@pytest.fixture(scope="module")
def variants(tfk):
    """One small model holding every kernel variant: odd sizes with SAME and VALID padding,
    stride 2, depth multiplier 2, fused ReLU6/ReLU, average pooling over partial windows,
    broadcast ADD, per-tensor and per-channel FULLY_CONNECTED, softmax."""
    from edgec.convert.int8 import int8_converter

    tfk.utils.set_random_seed(3)
    inp = tfk.Input((17, 17, 2))
    x = tfk.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu6", name="c_s2")(inp)
    y = tfk.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw_m2")(x)
    y = tfk.layers.Conv2D(6, 3, padding="valid", activation="relu", name="c_valid")(y)
    g = tfk.layers.AveragePooling2D(pool_size=(7, 7), name="gap")(y)
    x = tfk.layers.Add(name="add_bcast")([y, g])
    x = tfk.layers.AveragePooling2D(3, strides=2, padding="same", name="avg_same")(x)
    x = tfk.layers.MaxPooling2D(2, padding="same", name="max_same")(x)
    x = tfk.layers.Flatten(name="flat")(x)
    x = tfk.layers.Dense(7, activation="relu", name="fc1")(x)
    out = tfk.layers.Dense(5, activation="softmax", name="fc2")(x)
    model = tfk.Model(inp, out)
    calib = np.random.default_rng(4).normal(0, 1, (64, 17, 17, 2)).astype(np.float32)
    models = {}
    for per_channel_fc in (True, False):
        conv = int8_converter(model, calib)
        conv._experimental_disable_per_channel_quantization_for_dense_layers = not per_channel_fc
        data = conv.convert()
        models[per_channel_fc] = (data, read_tflite(data))
    return models


def test_variant_model_covers_every_required_kernel(variants):
    data, tfl = variants[True]
    assert REQUIRED <= set(tfl.op_counts)
    opts = [op.options for op in tfl.ops]
    assert any(o.get("padding") == 1 for o in opts if "filter" not in o)  # a VALID conv
    assert any(o.get("depth_multiplier") == 2 for o in opts)
    assert any(o.get("activation") == quant.ACT_RELU6 for o in opts)
    add = next(op for op in tfl.ops if op.name == "ADD")
    assert {tfl.tensors[i].shape for i in add.inputs} == {(1, 7, 7, 6), (1, 1, 1, 6)}  # broadcast
    fc_scales = {len(tfl.tensors[op.inputs[1]].scales) for op in tfl.ops if op.name == "FULLY_CONNECTED"}
    assert fc_scales == {7, 5}
    _, per_tensor = variants[False]
    assert {len(per_tensor.tensors[op.inputs[1]].scales)
            for op in per_tensor.ops if op.name == "FULLY_CONNECTED"} == {1}


@needs_gcc
@pytest.mark.parametrize("per_channel_fc", [True, False], ids=["fc-per-channel", "fc-per-tensor"])
def test_generated_c_is_bit_exact_with_tflite_micro(variants, per_channel_fc, tmp_path):
    data, tfl = variants[per_channel_fc]
    gen, section = emit_and_verify(data, tfl, "variants", "variants", probe_inputs(tfl, 300), mcu="off",
                                   workdir=tmp_path)
    assert section["host"]["bit_exact"] and section["host"]["values"] == 300 * 5
    # the outputs vary, so agreement is not an accident of saturated values
    assert len(np.unique(micro.run(data, probe_inputs(tfl, 300)))) > 20
    assert set(section["kernels"]) == REQUIRED - {"RESHAPE"}  # the reshape became an alias
    assert gen.arena_bytes <= micro.measure_arena(data).bytes


@needs_gcc
def test_a_one_step_rounding_error_is_caught(variants, tmp_path):
    """Negative control: the comparison must see a kernel that rounds negative values the wrong way."""
    data, tfl = variants[True]
    gen = generate(data, tfl, "broken")
    name = "broken_infer.c"
    good = "(mask >> 1) + (x < 0 ? 1 : 0)"
    assert good in gen.files[name]
    gen.files[name] = gen.files[name].replace(good, "(mask >> 1)")
    x = probe_inputs(tfl, 300)
    ours = toolchain.run_host(toolchain.build_host(gen, tmp_path), x, gen.output_bytes)
    assert (ours != micro.run(data, x)).any()


def test_op_without_kernel_is_one_line_error(tfk, tmp_path):
    from edgec.convert.int8 import convert_int8

    inp = tfk.Input((4, 4, 2))
    x = tfk.layers.Conv2D(3, 1, name="c")(inp)
    out = tfk.layers.GlobalAveragePooling2D(name="gap")(x)  # becomes MEAN
    data = convert_int8(tfk.Model(inp, out), np.random.default_rng(0).normal(size=(16, 4, 4, 2)).astype(np.float32))
    path = tmp_path / "mean.tflite"
    path.write_bytes(data)
    proc = run_cli("emit-c", str(path), "--out", str(tmp_path / "c"), "--no-mcu")
    assert_one_line_error(proc, 2, "MEAN", "no C kernel")
    assert not (tmp_path / "c").exists()


@needs_gcc
@needs_arm
def test_qemu_run_is_bit_exact_and_measured(variants, tmp_path):
    data, tfl = variants[True]
    gen, section = emit_and_verify(data, tfl, "variants", "variants", probe_inputs(tfl, 20), mcu="require",
                                   target=targets.get("cortex-m4"), workdir=tmp_path)
    mcu = section["mcu"]
    assert mcu["bit_exact"] and mcu["samples"] == 3
    # the calibration loop of 2,000,000 instructions: icount at 1 ns per instruction, 25 MHz timer
    assert mcu["instructions_per_tick"] == pytest.approx(40.0, abs=0.01)
    assert tfl.macs < mcu["instructions_per_inference"] < 100 * tfl.macs
    weights = sum(t.nbytes for t in tfl.tensors if t.is_constant)
    assert weights <= mcu["flash_bytes"] < weights + 64 * 1024
    assert mcu["code_bytes"] > 0 and mcu["library"] == []
    assert mcu["ram_bytes"] == gen.arena_bytes  # the only static RAM is the planned buffer
    assert 0 < mcu["stack_bytes"] < 4096
    cpi = targets.get("cortex-m4").cycles_per_instruction["c"]
    assert mcu["cycles_per_instruction"] == cpi > 1
    assert mcu["latency_ms"] == pytest.approx(1000 * mcu["instructions_per_inference"] * cpi / 120e6)


@needs_gcc
@needs_arm
def test_cli_emit_c_and_check_on_a_c_target(sample_build, tmp_path):
    out, _ = sample_build
    model = out / "digits.tflite"
    proc = run_cli("emit-c", str(model), "--out", str(tmp_path / "c"), "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert sorted((tmp_path / "c").iterdir()) == [tmp_path / "c" / "digits_infer.c", tmp_path / "c" / "digits_infer.h"]
    assert info["host"]["bit_exact"] and info["mcu"]["bit_exact"]
    proc = run_cli("check", str(model), "--target", "cortex-m4-c", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    meas = report["measurements"]
    c = meas["c"]["mcu"]
    assert meas["flash_bytes"] == c["flash_bytes"] + 16384
    assert meas["ram_bytes"] == c["ram_total_bytes"] + 8192
    assert meas["ram_bytes"] < meas["arena_bytes"] + 8192  # smaller than TFLite-Micro's arena alone
    assert meas["latency_model"]["method"].startswith("instructions per inference counted under QEMU")
    proc = run_cli("check", str(model), "--target", "cortex-m4-c", "--budget", "ram=10KiB")
    assert proc.returncode == 1 and "budget exceeded: ram" in proc.stderr


@needs_gcc
@pytest.mark.parametrize("name", ["ic_resnet8_ref_int8.tflite", "kws_ref_model.tflite"])
def test_reference_models_bit_exact(name, tmp_path):
    data, tfl = read_tflite_file(shared_model(name))
    mcu = "require" if have("arm-none-eabi-gcc", "qemu-system-arm") else "off"
    gen, section = emit_and_verify(data, tfl, "ref", name, probe_inputs(tfl, 100), mcu=mcu, workdir=tmp_path)
    assert section["host"]["bit_exact"]
    assert mcu == "off" or section["mcu"]["bit_exact"]
    # the planned buffer reaches the lower bound: the largest live activations at one op,
    # less the caller's input and output buffers
    live = max(sum(tfl.tensors[i].nbytes for i in ts if i not in (*tfl.inputs, *tfl.outputs))
               for ts in tfl.live_tensors())
    assert gen.arena_bytes == live


@needs_gcc
def test_grouped_convolution_bit_exact(tfk, tmp_path):
    from edgec.convert.int8 import convert_int8

    tfk.utils.set_random_seed(5)
    inp = tfk.Input((6, 6, 4))
    x = tfk.layers.Conv2D(6, 3, groups=2, padding="same", name="grouped")(inp)
    out = tfk.layers.Conv2D(2, 1, name="pointwise")(x)
    data = convert_int8(tfk.Model(inp, out), np.random.default_rng(0).normal(size=(16, 6, 6, 4)).astype(np.float32))
    tfl = read_tflite(data)
    assert tfl.tensors[tfl.ops[0].inputs[1]].shape == (6, 3, 3, 2)  # two groups of two input channels
    _, section = emit_and_verify(data, tfl, "grouped", "grouped", probe_inputs(tfl, 100), mcu="off",
                                 workdir=tmp_path)
    assert section["host"]["bit_exact"] and section["host"]["values"] == 100 * 72
