"""Interpreter-free C: TFLite's integer parameters against hand-worked values, and the
generated code bit-exact with TFLite-Micro (the oracle, tolerance 0 LSB) on every kernel
variant, on the host and under QEMU; sizes and instruction counts from the ELF and the
emulator; one-line errors for what has no kernel."""

from __future__ import annotations

import json
import subprocess
from importlib import resources

import numpy as np
import pytest

from conftest import assert_one_line_error, have, run_cli, shared_model
from edgec.check import targets
from edgec.emit.codegen import generate, quant, toolchain
from edgec.emit.codegen.crosscheck import emit_and_verify, probe_inputs, tflm_outputs
from edgec.errors import RuntimeCheckError
from edgec.load.tflite_file import read_tflite, read_tflite_file
from edgec.report.text import codegen_lines
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
    good = "(mask >> 1) + (high < 0)"
    assert good in gen.files[name]
    gen.files[name] = gen.files[name].replace(good, "(mask >> 1)")
    x = probe_inputs(tfl, 300)
    ours = toolchain.run_host(toolchain.build_host(gen, tmp_path), x, gen.output_bytes)
    assert (ours != micro.run(data, x)).any()


def test_op_without_kernel_is_one_line_error(tfk, tmp_path):
    import tensorflow as tf

    from edgec.convert.int8 import convert_int8

    inp = tfk.Input((4, 4, 2))
    x = tfk.layers.Conv2D(3, 1, name="c")(inp)
    out = tfk.layers.Lambda(lambda t: tf.math.l2_normalize(t, axis=-1), name="unit")(x)  # L2_NORMALIZATION
    data = convert_int8(tfk.Model(inp, out), np.random.default_rng(0).normal(size=(16, 4, 4, 2)).astype(np.float32))
    path = tmp_path / "l2.tflite"
    path.write_bytes(data)
    proc = run_cli("emit-c", str(path), "--out", str(tmp_path / "c"), "--no-mcu")
    assert_one_line_error(proc, 2, "L2_NORMALIZATION", "no C kernel", "deploy it with TFLite-Micro", "cortex-m4")
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
    # the planned buffer is below TFLite-Micro's lower bound (the largest live activations at one op,
    # less the caller's input and output buffers): outputs overlap the inputs they replace
    live = max(sum(tfl.tensors[i].nbytes for i in ts if i not in (*tfl.inputs, *tfl.outputs))
               for ts in tfl.live_tensors())
    assert gen.in_place and gen.arena_bytes < 0.7 * live


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


@needs_gcc
def test_grouped_convolution_is_not_planned_over_its_own_input(tfk, tmp_path):
    """A grouped convolution writes every pixel of one group before the next group reads its input, so
    its output may not overlap an input that dies there (it once did, and 200 of 300 values were wrong)."""
    from edgec.convert.int8 import convert_int8

    tfk.utils.set_random_seed(1)
    inp = tfk.Input((9, 9, 3))
    x = tfk.layers.Conv2D(8, 1, name="pointwise")(inp)
    x = tfk.layers.Conv2D(6, 3, groups=2, strides=2, name="grouped")(x)
    out = tfk.layers.Dense(3, name="fc")(tfk.layers.Flatten()(x))  # so that the grouped conv writes the arena
    data = convert_int8(tfk.Model(inp, out), np.random.default_rng(0).normal(size=(16, 9, 9, 3)).astype(np.float32))
    tfl = read_tflite(data)
    gen, section = emit_and_verify(data, tfl, "grouped", "grouped", probe_inputs(tfl, 50), mcu="off",
                                   workdir=tmp_path)
    assert section["host"]["bit_exact"] and 1 not in gen.in_place


REQUANTIZE_CHECK = r"""
#include <stdint.h>
#include <stdio.h>
#include "fixedpoint.c"
static uint32_t state = 2463534242u; /* xorshift32: the same values on every host */
static uint32_t next(void) { state ^= state << 13; state ^= state >> 17; state ^= state << 5; return state; }
int main(void)
{
    static const int32_t edges[] = {0, 1, -1, 2, -2, 127, -128, 1 << 20, -(1 << 20), INT32_MAX,
                                    INT32_MIN + 1, INT32_MIN, (1 << 30) - 1, -(1 << 30), -12345678};
    long bad = 0, n;
    for (n = 0; n < 4000000; ++n) {
        const int32_t shift = (int32_t)(n % 32) - 25;   /* -25 .. 6 */
        const int left = shift > 0 ? shift : 0;
        const int32_t m = n < 64 ? (int32_t)((1u << 30) + (uint32_t)n) : (int32_t)((1u << 30) | (next() >> 2));
        int32_t x = n < 32 * 15 ? edges[n / 32] : (int32_t)next() >> (next() % 31);
        x >>= left; /* x * 2^left stays in int32, as it does in TFLite */
        bad += ec_requantize(x, m, shift) != ec_div_pot(ec_high_mul(x * (1 << left), m), shift > 0 ? 0 : -shift);
    }
    printf("%ld\n", bad);
    return 0;
}
"""


@needs_gcc
def test_fast_requantize_equals_tflites_two_roundings(tmp_path):
    """The kernels' one-multiply requantization against gemmlowp's SaturatingRoundingDoublingHighMul
    and RoundingDivideByPOT (kept in fixedpoint.c for softmax), on edge values and 4 M random ones,
    including x at the end of int32 and every shift from -25 to 6."""
    (tmp_path / "fixedpoint.c").write_text(
        resources.files("edgec.emit.codegen").joinpath("c", "fixedpoint.c").read_text())
    (tmp_path / "check.c").write_text(REQUANTIZE_CHECK)
    exe = tmp_path / "check"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Werror", "-I", str(tmp_path), str(tmp_path / "check.c"),
                    "-o", str(exe)], check=True)
    assert subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.strip() == "0"


@pytest.fixture(scope="module")
def fast_paths(tfk):
    """The kernels' fast paths and their edges: a 1x1 convolution read in place over an odd number of
    pixels, one whose 6 channels are copied (not a multiple of 4), a depthwise convolution with 8 channels
    (four at a time) at stride 2 with padding, an odd output channel count, and a FULLY_CONNECTED over
    three rows (two at a time, then one) whose depth (14) is zero-padded."""
    from edgec.convert.int8 import convert_int8

    tfk.utils.set_random_seed(11)
    inp = tfk.Input((5, 7, 8))
    x = tfk.layers.Conv2D(6, 1, name="pw_in_place")(inp)
    x = tfk.layers.Conv2D(8, 1, activation="relu", name="pw_copied")(x)
    x = tfk.layers.DepthwiseConv2D(3, strides=2, padding="same", name="dw_simd")(x)
    x = tfk.layers.Conv2D(7, 3, padding="same", name="odd_rows")(x)
    x = tfk.layers.Conv2D(4, 1, name="four")(x)
    x = tfk.layers.Reshape((3, 16), name="rows")(x)
    x = tfk.layers.Dense(14, name="fc_batched")(x)
    out = tfk.layers.Dense(5, name="fc_padded")(x)
    calib = np.random.default_rng(12).normal(0, 1, (32, 5, 7, 8)).astype(np.float32)
    data = convert_int8(tfk.Model(inp, out), calib)
    return data, read_tflite(data)


@needs_gcc
def test_fast_paths_bit_exact(fast_paths, tmp_path):
    data, tfl = fast_paths
    fcs = [op for op in tfl.ops if op.name == "FULLY_CONNECTED"]
    assert [tfl.tensors[op.inputs[0]].elements // tfl.tensors[op.inputs[1]].shape[1] for op in fcs] == [3, 3]
    assert tfl.tensors[fcs[1].inputs[1]].shape[1] % 4  # the second FC's depth is padded
    mcu = "require" if have("arm-none-eabi-gcc", "qemu-system-arm") else "off"
    gen, section = emit_and_verify(data, tfl, "fast", "fast", probe_inputs(tfl, 200), mcu=mcu, workdir=tmp_path)
    assert section["host"]["bit_exact"] and (mcu == "off" or section["mcu"]["bit_exact"])
    source = gen.files["fast_infer.c"]
    assert ".in_place = 1" in source and ".in_place = 0" in source
    assert "ec_fully_connected_padded(" in source and gen.in_place


@needs_gcc
def test_an_output_overlapping_its_input_too_closely_is_caught(monkeypatch, tmp_path):
    """Negative control for the in-place plan: with the overlap distances halved, the kernels overwrite
    input they have not read yet, and the comparison with TFLite-Micro sees it."""
    from edgec.emit.codegen import ops

    data, tfl = read_tflite_file(shared_model("kws_ref_model.tflite"))
    gen = generate(data, tfl, "close")
    assert gen.in_place and max(gen.in_place.values()) > 0
    for kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        entry = ops.OPS[kind]
        honest = entry.overlap
        monkeypatch.setitem(ops.OPS, kind, entry._replace(
            overlap=lambda t, op, honest=honest: (honest(t, op)[0], honest(t, op)[1] // 2 - 64)))
    x = probe_inputs(tfl, 20)
    close = generate(data, tfl, "close")
    assert close.arena_bytes < gen.arena_bytes
    ours = toolchain.run_host(toolchain.build_host(close, tmp_path), x, close.output_bytes)
    assert (ours != micro.run(data, x)).any()


@needs_gcc
@needs_arm
def test_qemu_harness_prints_a_thousand_outputs(tfk, tmp_path):
    """The harness's line buffer is sized from the output length (it once overflowed from 120 outputs)."""
    from edgec.convert.int8 import convert_int8

    tfk.utils.set_random_seed(2)
    inp = tfk.Input((8,))
    out = tfk.layers.Dense(1000, name="wide")(inp)
    data = convert_int8(tfk.Model(inp, out), np.random.default_rng(1).normal(size=(16, 8)).astype(np.float32))
    tfl = read_tflite(data)
    _, section = emit_and_verify(data, tfl, "wide", "wide", probe_inputs(tfl, 3), mcu="require", workdir=tmp_path)
    assert section["mcu"]["bit_exact"] and section["mcu"]["values"] == 3000


@needs_gcc
def test_per_tensor_fc_chain_bit_exact_where_the_float32_product_was_one_unit_off(tfk, tmp_path):
    """The FC rounding edge: an FC-only autoencoder (as MLPerf Tiny's anomaly detector), per-tensor
    quantized, found by searching seeds (seed 4: with the scales' product in float32, as edgec once took
    it, 191 of 64,000 outputs were one step off). Every output of 100 inputs is compared."""
    from edgec.convert.int8 import int8_converter

    tfk.utils.set_random_seed(4)
    inp = tfk.Input((640,))
    x = inp
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = tfk.layers.Dense(units, activation="relu")(x)
    model = tfk.Model(inp, tfk.layers.Dense(640)(x))
    conv = int8_converter(model, np.random.default_rng(4).normal(0, 1, (64, 640)).astype(np.float32))
    conv._experimental_disable_per_channel_quantization_for_dense_layers = True
    data = conv.convert()
    tfl = read_tflite(data)
    fcs = [op for op in tfl.ops if op.name == "FULLY_CONNECTED"]
    scales = [(tfl.tensors[op.inputs[0]].scale, tfl.tensors[op.inputs[1]].scales[0], tfl.tensors[op.outputs[0]].scale)
              for op in fcs]
    float32_product = [quant.quantize_multiplier(float(np.float32(i) * np.float32(w)) / float(np.float32(o)))
                       for i, w, o in scales]
    assert float32_product != [quant.per_tensor_fc_multiplier(*s) for s in scales]  # the edge is in this model
    _, section = emit_and_verify(data, tfl, "ad", "ad", probe_inputs(tfl, 100), mcu="off", workdir=tmp_path)
    assert section["host"]["bit_exact"] and section["host"]["values"] == 64000


@needs_gcc
def test_conv1d_model_bit_exact(tfk, tmp_path):
    """Conv1D becomes RESHAPE, CONV_2D over a 1-pixel-high image, RESHAPE: the reshapes share bytes and the
    generated C is bit-exact."""
    from edgec.convert.int8 import convert_int8

    tfk.utils.set_random_seed(1)
    inp = tfk.Input((49, 10))
    x = tfk.layers.Conv1D(16, 3, padding="same", activation="relu", name="c1")(inp)
    x = tfk.layers.Conv1D(8, 5, strides=2, name="c2")(x)
    x = tfk.layers.MaxPooling1D(2, name="pool")(x)
    out = tfk.layers.Dense(4, activation="softmax", name="fc")(tfk.layers.Flatten()(x))
    data = convert_int8(tfk.Model(inp, out), np.random.default_rng(0).normal(size=(32, 49, 10)).astype(np.float32))
    tfl = read_tflite(data)
    assert tfl.op_counts["CONV_2D"] == 2 and "RESHAPE" in tfl.op_counts
    gen, section = emit_and_verify(data, tfl, "c1d", "c1d", probe_inputs(tfl, 100), mcu="off", workdir=tmp_path)
    assert section["host"]["bit_exact"] and "RESHAPE" not in gen.kernels


@needs_gcc
def test_two_inputs_and_two_outputs(tfk, tmp_path):
    """Several inputs and outputs: ``<name>_infer(in0, in1, out0, out1)``, each with its own macros, and
    ``<NAME>_INFER_PACKED`` for buffers packed one after another (as the harnesses use it)."""
    from edgec.convert.int8 import convert_int8

    tfk.utils.set_random_seed(6)
    image, vector = tfk.Input((8, 8, 2), name="image"), tfk.Input((6,), name="vector")
    a = tfk.layers.Dense(4, name="a")(tfk.layers.Flatten()(tfk.layers.Conv2D(4, 3, name="conv")(image)))
    b = tfk.layers.Dense(4, activation="relu", name="b")(vector)
    scores = tfk.layers.Softmax(name="scores")(tfk.layers.Add(name="join")([a, b]))
    extra = tfk.layers.Dense(3, name="extra")(b)
    rng = np.random.default_rng(6)
    data = convert_int8(tfk.Model([image, vector], [scores, extra]),
                        {"image": rng.normal(size=(32, 8, 8, 2)).astype(np.float32),
                         "vector": rng.normal(size=(32, 6)).astype(np.float32)})
    tfl = read_tflite(data)
    assert len(tfl.inputs) == 2 and len(tfl.outputs) == 2
    mcu = "require" if have("arm-none-eabi-gcc", "qemu-system-arm") else "off"
    gen, section = emit_and_verify(data, tfl, "two", "two", probe_inputs(tfl, 100), mcu=mcu, workdir=tmp_path)
    assert section["host"]["bit_exact"] and (mcu == "off" or section["mcu"]["bit_exact"])
    header = gen.files["two_infer.h"]
    assert "void two_infer(const int8_t *in0, const int8_t *in1, int8_t *out0, int8_t *out1);" in header
    for macro in ("TWO_INFER_INPUT0_SIZE", "TWO_INFER_INPUT1_ZERO_POINT", "TWO_INFER_OUTPUT1_SCALE"):
        assert f"#define {macro} " in header
    assert gen.input_bytes == 8 * 8 * 2 + 6 and gen.output_bytes == 4 + 3


@needs_gcc
def test_pad_mean_mul_concatenation_bit_exact(tfk, tmp_path):
    """ZeroPadding2D (PAD, asymmetric), GlobalAveragePooling2D with and without keepdims (MEAN), a
    squeeze-excite Multiply (MUL, broadcast) and Concatenate (CONCATENATION), on the host and under QEMU."""
    from edgec.convert.int8 import convert_int8

    tfk.utils.set_random_seed(3)
    inp = tfk.Input((9, 9, 3))
    x = tfk.layers.ZeroPadding2D(((1, 2), (0, 1)))(inp)
    x = tfk.layers.Conv2D(8, 3, activation="relu")(x)
    se = tfk.layers.Dense(8, activation="relu")(tfk.layers.GlobalAveragePooling2D(keepdims=True)(x))
    x = tfk.layers.Multiply()([x, se])
    x = tfk.layers.Concatenate()([x, tfk.layers.Conv2D(4, 1)(x)])
    out = tfk.layers.Dense(5, activation="softmax")(tfk.layers.GlobalAveragePooling2D()(x))
    data = convert_int8(tfk.Model(inp, out), np.random.default_rng(0).normal(size=(32, 9, 9, 3)).astype(np.float32))
    tfl = read_tflite(data)
    assert {"PAD", "MEAN", "MUL", "CONCATENATION"} <= set(tfl.op_counts) and tfl.op_counts["MEAN"] == 2
    mcu = "require" if have("arm-none-eabi-gcc", "qemu-system-arm") else "off"
    gen, section = emit_and_verify(data, tfl, "more", "more", probe_inputs(tfl, 200), mcu=mcu, workdir=tmp_path)
    assert section["host"]["bit_exact"] and (mcu == "off" or section["mcu"]["bit_exact"])
    assert len(np.unique(micro.run(data, probe_inputs(tfl, 200)))) > 10  # the outputs vary
    assert {"PAD", "MEAN", "MUL", "CONCATENATION"} <= set(gen.kernels)


@needs_gcc
def test_conv2d_transpose_decoder_bit_exact(tfk, tmp_path):
    """A Conv2DTranspose decoder: TRANSPOSE_CONV at stride 2 with SAME padding (its padding computed over the
    output's size, as TFLite-Micro does) and a standalone RELU, on the host and under QEMU."""
    from edgec.convert.int8 import convert_int8

    tfk.utils.set_random_seed(3)
    inp = tfk.Input((16,))
    x = tfk.layers.Reshape((4, 4, 8))(tfk.layers.Dense(4 * 4 * 8, activation="relu")(inp))
    x = tfk.layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(x)
    out = tfk.layers.Conv2DTranspose(1, 3, strides=2, padding="same")(x)
    data = convert_int8(tfk.Model(inp, out), np.random.default_rng(0).normal(size=(32, 16)).astype(np.float32))
    tfl = read_tflite(data)
    assert tfl.op_counts["TRANSPOSE_CONV"] == 2 and "RELU" in tfl.op_counts
    mcu = "require" if have("arm-none-eabi-gcc", "qemu-system-arm") else "off"
    gen, section = emit_and_verify(data, tfl, "dec", "dec", probe_inputs(tfl, 100), mcu=mcu, workdir=tmp_path)
    assert section["host"]["bit_exact"] and (mcu == "off" or section["mcu"]["bit_exact"])
    assert section["host"]["values"] == 100 * 16 * 16
    assert {"TRANSPOSE_CONV", "REQUANTIZE"} <= set(gen.kernels)


@needs_gcc
def test_tabulated_traced_and_arithmetic_ops_bit_exact(k3, tmp_path):
    """The ops added for issue 23's coverage, in one Keras 3 model, on the host and under QEMU: tables from
    TFLite-Micro's own kernels (LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU), moves traced on it (TRANSPOSE,
    BROADCAST_TO, RESIZE_NEAREST_NEIGHBOR, STRIDED_SLICE), dilated CONV_2D and DEPTHWISE_CONV_2D, SUB, MINIMUM,
    PRELU, DIV (softsign) and RESIZE_BILINEAR."""
    from edgec.convert.int8 import convert_int8

    L = k3.layers
    k3.utils.set_random_seed(8)
    inp = k3.Input((10, 10, 4))
    a = L.Conv2D(8, 3, padding="same", dilation_rate=2, activation="sigmoid")(inp)
    b = L.DepthwiseConv2D(3, padding="same", dilation_rate=2, activation="tanh")(L.Conv2D(8, 1)(inp))
    x = L.Subtract()([a, L.Activation("softsign")(b)])  # softsign: ABS, ADD, DIV
    x = L.Minimum()([x, L.LeakyReLU(negative_slope=0.2)(b)])
    x = L.PReLU()(L.Conv2D(8, 1, activation="hard_silu")(x))
    x = L.Permute((2, 1, 3))(x)
    x = L.UpSampling2D(2)(L.Cropping2D(((1, 0), (0, 1)))(x))
    x = L.Resizing(7, 5, interpolation="bilinear")(x)
    x = L.Resizing(9, 9, interpolation="nearest")(x)
    pooled = L.Concatenate()([L.GlobalAveragePooling2D()(x), L.GlobalMaxPooling2D()(x)])  # MEAN, REDUCE_MAX
    out = L.Dense(4, activation="softmax")(pooled)
    data = convert_int8(k3.Model(inp, out), np.random.default_rng(8).normal(size=(32, 10, 10, 4)).astype(np.float32))
    tfl = read_tflite(data)
    wanted = {"LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU", "TRANSPOSE", "BROADCAST_TO", "STRIDED_SLICE",
              "SUB", "MINIMUM", "PRELU", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "DIV", "ABS", "REDUCE_MAX"}
    assert wanted <= set(tfl.op_counts), set(tfl.op_counts)
    assert any(op.options.get("dilation") == (2, 2) for op in tfl.ops if op.name == "DEPTHWISE_CONV_2D")
    mcu = "require" if have("arm-none-eabi-gcc", "qemu-system-arm") else "off"
    gen, section = emit_and_verify(data, tfl, "cover", "cover", probe_inputs(tfl, 100), mcu=mcu, workdir=tmp_path)
    assert section["host"]["bit_exact"] and (mcu == "off" or section["mcu"]["bit_exact"])
    assert {"LOOKUP", "GATHER", "PRELU", "RESIZE_BILINEAR", "MAXIMUM"} <= set(gen.kernels)


@pytest.mark.slow  # two QEMU builds of the variants model
@needs_gcc
@needs_arm
def test_a_model_too_large_for_the_emulated_board_is_checked_on_the_host(variants, monkeypatch, tmp_path):
    """A model whose code and weights overflow the emulated board's flash (here a 4 KiB one, in place of
    mps2-an386's 4 MiB) is verified on the host and the QEMU run is reported as skipped, with the reason;
    where the QEMU measurement is required (a runtime "c" target) it is an error saying so."""
    data, tfl = variants[True]
    real = toolchain._harness
    small = "LENGTH = 4K\n    RAM"
    monkeypatch.setattr(toolchain, "_harness", lambda f: real(f).replace("LENGTH = 4M\n    RAM", small))
    _, section = emit_and_verify(data, tfl, "big", "big", probe_inputs(tfl, 5), mcu="auto", workdir=tmp_path / "a")
    assert section["host"]["bit_exact"] and "does not fit mps2-an386" in section["mcu"]["skipped"]
    with pytest.raises(RuntimeCheckError, match="does not fit mps2-an386"):
        emit_and_verify(data, tfl, "big", "big", probe_inputs(tfl, 5), mcu="require", workdir=tmp_path / "r")


@needs_gcc
def test_stacked_lstm_sequences_bit_exact(tfk, tmp_path):
    """UNIDIRECTIONAL_SEQUENCE_LSTM (int8, int16 cell): two stacked LSTMs whose every step is the output, so all
    12 x 7 values of 100 probe inputs are compared; an input depth of 5 exercises the dot product's tail, and
    the sigmoid table is the one solved from TFLite-Micro. The states are no tensors of the arena plan."""
    from edgec.convert.int8 import convert_int8
    from edgec.emit.codegen.plan import plan
    from edgec.emit.codegen.tables import sigmoid_table

    tfk.utils.set_random_seed(3)
    inp = tfk.Input((12, 5))
    x = tfk.layers.LSTM(10, return_sequences=True, name="first")(inp)
    out = tfk.layers.LSTM(7, return_sequences=True, name="second")(x)
    data = convert_int8(tfk.Model(inp, out), np.random.default_rng(3).normal(size=(32, 12, 5)).astype(np.float32))
    tfl = read_tflite(data)
    assert tfl.op_counts.get("UNIDIRECTIONAL_SEQUENCE_LSTM") == 2, tfl.op_counts
    mcu = "require" if have("arm-none-eabi-gcc", "qemu-system-arm") else "off"
    gen, section = emit_and_verify(data, tfl, "lstm", "lstm", probe_inputs(tfl, 100), mcu=mcu, workdir=tmp_path)
    assert section["host"]["bit_exact"] and section["host"]["values"] == 100 * 12 * 7
    assert mcu == "off" or section["mcu"]["bit_exact"]
    assert "LSTM" in gen.kernels and gen.scratch == {op.index: 11 * 10 if op.index == 0 else 11 * 7
                                                     for op in tfl.ops if op.name.endswith("LSTM")}
    states = {op.inputs[k] for op in tfl.ops if op.name.endswith("LSTM") for k in (18, 19)}
    assert len(states) == 4 and not states & set(plan(tfl, {}).offsets)
    table = sigmoid_table()
    assert len(table) == 256 and table[0] == 32768 and list(table) == sorted(table)


@needs_gcc
@pytest.mark.parametrize("depth,rows,gain", [(100, 3, 30.0), (7, 4, 0.05)])
def test_log_softmax_bit_exact(tfk, tmp_path, depth, rows, gain):
    """LOG_SOFTMAX (gemmlowp's exp and log, the saturation bound from the inverse scaling): every output of
    200 probe inputs, with logits wide enough that most outputs saturate at -128 (input scale ~3) and narrow
    enough that none do (~0.004)."""
    import tensorflow as tf

    from edgec.convert.int8 import convert_int8

    tfk.utils.set_random_seed(depth)
    inp = tfk.Input((rows, 6))
    x = tfk.layers.Dense(depth, kernel_initializer=tfk.initializers.RandomNormal(stddev=gain))(inp)
    out = tfk.layers.Lambda(tf.nn.log_softmax, name="log_probs")(x)
    data = convert_int8(tfk.Model(inp, out), np.random.default_rng(0).normal(size=(64, rows, 6)).astype(np.float32))
    tfl = read_tflite(data)
    assert tfl.op_counts == {"FULLY_CONNECTED": 1, "LOG_SOFTMAX": 1}
    x = probe_inputs(tfl, 200)
    reference = micro.run(data, x)
    assert len(np.unique(reference)) > 20  # the log's whole range is exercised, not a constant
    mcu = "require" if have("arm-none-eabi-gcc", "qemu-system-arm") and rows == 3 else "off"
    gen, section = emit_and_verify(data, tfl, "logsm", "logsm", x, mcu=mcu, workdir=tmp_path)
    assert section["host"]["bit_exact"] and section["host"]["values"] == 200 * rows * depth
    assert mcu == "off" or section["mcu"]["bit_exact"]
    assert "ec_log_softmax(&" in gen.files["logsm_infer.c"]


def _div_shift(tfl, op, qa: np.ndarray, qb: np.ndarray) -> np.ndarray:
    """The power of two int8 DIV divides by for each pair of raw inputs (TFLite's DivElementwise)."""
    ta, tb, to = (tfl.tensors[k] for k in (*op.inputs[:2], op.outputs[0]))
    _, shift = quant.quantize_multiplier(float(np.float32(ta.scale) / (np.float32(tb.scale) * np.float32(to.scale))))
    u, v = qa.astype(np.int64) - ta.zero_point, qb.astype(np.int64) - tb.zero_point
    u = np.where(v < 0, -u, u)
    recip_shift = np.array([int(abs(k)).bit_length() - 1 for k in v.ravel()]).reshape(v.shape)
    headroom = np.array([31 - int(k ^ (k >> 63)).bit_length() for k in u.ravel()]).reshape(u.shape)
    return headroom + recip_shift - shift


@needs_gcc
def test_tflite_shifts_by_32_or_more_take_the_cortex_m_value(tfk, tmp_path):
    """int8 DIV divides by 2^32 or more for small dividends over large divisors, a shift C++ leaves undefined:
    TFLite-Micro's x86 build takes the count modulo 32 (its output saturates), a Cortex-M fills with the sign.
    Every one of the 65,280 input pairs: the C built with EC_SHIFT_COUNT_MOD_32 is bit-exact with TFLite-Micro
    on the host; the C as written differs only where the shift reaches 32; under QEMU it equals its own
    Cortex-M-semantics host build, and emit_and_verify says so."""
    from edgec.convert.int8 import convert_int8

    a, b = tfk.Input((256,), name="a"), tfk.Input((256,), name="b")
    rng = np.random.default_rng(0)
    data = convert_int8(tfk.Model([a, b], tfk.layers.Lambda(lambda t: t[0] / t[1])([a, b])),
                        {"a": rng.uniform(-1, 1, (64, 256)).astype(np.float32),
                         "b": rng.uniform(0.0625, 2, (64, 256)).astype(np.float32)})
    tfl = read_tflite(data)
    (op,) = tfl.ops
    assert op.name == "DIV" and list(tfl.inputs) == list(op.inputs[:2])
    zb = tfl.tensors[op.inputs[1]].zero_point
    qb = np.array([q for q in range(-128, 128) if q != zb])  # a zero divisor is undefined in TFLite as well
    qa, qb = np.tile(np.arange(-128, 128), (len(qb), 1)), np.repeat(qb[:, None], 256, axis=1)
    x = np.concatenate([qa, qb], axis=1).astype(np.int8)
    reference = tflm_outputs(data, tfl, x)
    gen = generate(data, tfl, "dv", "dv")
    host = toolchain.run_host(toolchain.build_host(gen, tmp_path / "x86"), x, gen.output_bytes)
    cortex_m = toolchain.run_host(toolchain.build_host(gen, tmp_path / "m", tflite_host_shifts=False), x,
                                  gen.output_bytes)
    wide = _div_shift(tfl, op, qa, qb) >= 32
    assert toolchain.host_shift_flags() == [] or np.array_equal(host, reference)
    differs = cortex_m != reference
    assert differs.any() and not (differs & ~wide).any()
    assert np.abs(cortex_m.astype(int) - reference)[differs].max() > 100  # TFLite's host build saturates there
    if have("arm-none-eabi-gcc", "qemu-system-arm"):
        rows = np.flatnonzero(differs.any(axis=1))[-3:]
        _, section = emit_and_verify(data, tfl, "dv", "dv", x[rows], mcu="require", workdir=tmp_path / "qemu")
        mcu = section["mcu"]
        assert mcu["bit_exact"] and mcu["values_differing_from_tflite_micro_host"] == differs[rows].sum()
        assert "Cortex-M" in mcu["reference"]
        assert f"{differs[rows].sum():,} output values are TFLite-Micro's Cortex-M values" in \
            "\n".join(codegen_lines(section))


@needs_gcc
def test_bidirectional_lstm_bit_exact(tfk, tmp_path):
    """A Bidirectional LSTM (REVERSE_V2, two LSTM ops, CONCATENATION), every step of both directions compared: the
    converter gives the forward op's output the concatenation's quantization, not its hidden state's, and
    TFLite-Micro copies the state's bytes all the same."""
    from edgec.convert.int8 import convert_int8

    tfk.utils.set_random_seed(4)
    inp = tfk.Input((8, 5))
    out = tfk.layers.Bidirectional(tfk.layers.LSTM(6, return_sequences=True), name="bi")(inp)
    data = convert_int8(tfk.Model(inp, out), np.random.default_rng(4).normal(size=(32, 8, 5)).astype(np.float32))
    tfl = read_tflite(data)
    assert {"UNIDIRECTIONAL_SEQUENCE_LSTM", "REVERSE_V2", "CONCATENATION"} <= set(tfl.op_counts)
    lstm = [op for op in tfl.ops if op.name == "UNIDIRECTIONAL_SEQUENCE_LSTM"]
    assert any(tfl.tensors[op.outputs[0]].scale != tfl.tensors[op.inputs[18]].scale for op in lstm)
    mcu = "require" if have("arm-none-eabi-gcc", "qemu-system-arm") else "off"
    gen, section = emit_and_verify(data, tfl, "bi", "bi", probe_inputs(tfl, 100), mcu=mcu, workdir=tmp_path)
    assert section["host"]["bit_exact"] and section["host"]["values"] == 100 * 8 * 12
    assert mcu == "off" or section["mcu"]["bit_exact"]

