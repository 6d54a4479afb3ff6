"""Full-integer conversion: int8 everywhere, close to the float model, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from edgec import frameworks
from edgec.check.verification import predict
from edgec.convert.int8 import convert_int8
from edgec.errors import ConversionError
from edgec.load.tflite_file import dequantize, quantize, read_tflite
from edgec.runtime import litert, micro


def test_conversion_is_full_integer(tiny_tflite):
    tfl = read_tflite(tiny_tflite)
    assert tfl.input.dtype == "int8" and tfl.output.dtype == "int8"
    assert tfl.float_tensors() == []
    assert "QUANTIZE" not in tfl.op_counts and "DEQUANTIZE" not in tfl.op_counts
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "FULLY_CONNECTED"} <= set(tfl.op_counts)


def test_int8_matches_float_within_a_few_output_steps(tiny_cnn, tiny_x, tiny_tflite):
    """Oracle: the float Keras model. Tolerance: 3 output quantization steps per value."""
    tfl = read_tflite(tiny_tflite)
    q = litert.run(tiny_tflite, quantize(tiny_x, tfl.input))
    got = dequantize(q, tfl.output)
    want = predict(tiny_cnn, tiny_x)
    assert np.max(np.abs(got - want)) <= 3 * tfl.output.scale
    assert np.mean(got.argmax(1) == want.argmax(1)) >= 0.95


def test_tflite_micro_matches_litert_reference_kernels(tiny_x, tiny_tflite):
    """TFLite-Micro vs LiteRT's reference kernels: at most 1 LSB (FULLY_CONNECTED rounding)."""
    tfl = read_tflite(tiny_tflite)
    xq = quantize(tiny_x[:16], tfl.input)
    a = micro.run(tiny_tflite, xq).astype(int)
    b = litert.run(tiny_tflite, xq, reference_kernels=True).astype(int)
    assert np.abs(a - b).max() <= 1


def test_macs_match_hand_count(tiny_tflite):
    tfl = read_tflite(tiny_tflite)
    by_op = {op.name: op.macs for op in tfl.ops}
    assert by_op["CONV_2D"] == 8 * 8 * 4 * (3 * 3 * 1)
    assert by_op["DEPTHWISE_CONV_2D"] == 8 * 8 * 4 * (3 * 3)
    assert by_op["FULLY_CONNECTED"] == 5 * 64
    assert by_op["MAX_POOL_2D"] == 4 * 4 * 4 * 4


def _lambda_model(fn, name):
    k = frameworks.tf_keras()
    inp = k.Input((8,))
    x = k.layers.Dense(8, name="dense_a")(inp)
    x = k.layers.Lambda(fn, name=name)(x)
    return k.Model(inp, k.layers.Dense(3, name="head")(x))


def test_op_left_in_float_is_named():
    """The converter silently keeps CUMSUM in float; edgec refuses and names the layer."""
    tf = frameworks.tf()
    model = _lambda_model(lambda t: tf.math.cumsum(t, axis=-1), "running_sum")
    with pytest.raises(ConversionError, match=r"layer 'running_sum'.*CUMSUM"):
        convert_int8(model, np.random.default_rng(0).random((8, 8)).astype(np.float32))


def test_op_without_builtin_is_named():
    tf = frameworks.tf()
    model = _lambda_model(tf.math.erf, "gauss_err")
    with pytest.raises(ConversionError, match=r"layer 'gauss_err'.*Erf"):
        convert_int8(model, np.random.default_rng(0).random((8, 8)).astype(np.float32))


def test_quantize_rounds_half_away_from_zero_as_tflites_quantize_kernel():
    """TFLite's QUANTIZE (and every firmware that follows it) rounds with std::round; np.round would give
    0, 2, 2, 0, -2 for these half steps."""
    from edgec.load.tflite_file import Tensor

    t = Tensor(0, "x", (1, 5), "int8", scales=(0.25,), zero_points=(-3,), is_constant=False)
    steps = np.array([0.5, 1.5, 2.5, -0.5, -2.5])
    assert quantize(steps * 0.25, t).tolist() == [1 - 3, 2 - 3, 3 - 3, -1 - 3, -3 - 3]
