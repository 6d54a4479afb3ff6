"""TFLite's integer parameters, computed exactly as its kernels' Prepare step does.

Every function here mirrors one in TFLite's ``quantization_util.cc`` or
``kernel_util.cc`` (double arithmetic where TFLite uses double, float32 where
it uses float), because a multiplier one unit off changes outputs by one LSB.
"""

from __future__ import annotations

import math

import numpy as np

INT8_MIN, INT8_MAX = -128, 127

# TFLite's FusedActivationFunctionType values in the flatbuffer.
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6 = 0, 1, 2, 3


def _round_half_away(x: float) -> float:
    """std::round: halves away from zero (Python's round() goes to even)."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """``QuantizeMultiplier``: ``real`` as a Q0.31 multiplier and a power-of-two shift
    (positive shifts left), double rounding build."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(_round_half_away(q * (1 << 31)))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def per_channel_multipliers(input_scale: float, filter_scales, output_scale: float):
    """Conv/depthwise/per-channel FC: ``double(in) * double(filter[c]) / double(out)``."""
    pairs = [quantize_multiplier(float(np.float32(input_scale)) * float(np.float32(s))
                                 / float(np.float32(output_scale))) for s in filter_scales]
    return [m for m, _ in pairs], [s for _, s in pairs]


def per_tensor_fc_multiplier(input_scale: float, filter_scale: float, output_scale: float):
    """Per-tensor FULLY_CONNECTED (``GetQuantizedConvolutionMultipler``): the scales' product in double.
    (TFLite once took it in float32 first; a multiplier one unit off made 1 of 64,000 outputs of an
    FC-only autoencoder differ by one step.)"""
    product = float(np.float32(input_scale)) * float(np.float32(filter_scale))
    return quantize_multiplier(product / float(np.float32(output_scale)))


def _quantize_float(value: float, scale: float, zero_point: int) -> int:
    q = np.float32(value) / np.float32(scale)
    return int(zero_point) + int(_round_half_away(float(q)))


def activation_range(activation: int, scale: float, zero_point: int) -> tuple[int, int]:
    """``CalculateActivationRangeQuantized`` for an int8 output."""
    lo, hi = INT8_MIN, INT8_MAX
    if activation == ACT_RELU:
        lo = max(lo, _quantize_float(0.0, scale, zero_point))
    elif activation == ACT_RELU6:
        lo = max(lo, _quantize_float(0.0, scale, zero_point))
        hi = min(hi, _quantize_float(6.0, scale, zero_point))
    elif activation == ACT_RELU_N1_TO_1:
        lo = max(lo, _quantize_float(-1.0, scale, zero_point))
        hi = min(hi, _quantize_float(1.0, scale, zero_point))
    elif activation != ACT_NONE:
        raise ValueError(f"fused activation {activation}")
    return lo, hi


def add_params(scale_a: float, scale_b: float, scale_out: float) -> dict:
    """int8 ADD's Prepare: inputs rescaled to twice the larger input scale, left shift 20."""
    left_shift = 20
    a, b, o = (float(np.float32(s)) for s in (scale_a, scale_b, scale_out))
    twice_max = 2 * max(a, b)
    a_mult, a_shift = quantize_multiplier(a / twice_max)
    b_mult, b_shift = quantize_multiplier(b / twice_max)
    o_mult, o_shift = quantize_multiplier(twice_max / ((1 << left_shift) * o))
    return {"left_shift": left_shift, "a_mult": a_mult, "a_shift": a_shift,
            "b_mult": b_mult, "b_shift": b_shift, "out_mult": o_mult, "out_shift": o_shift}


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """int8 SOFTMAX's Prepare (``PreprocessSoftmaxScaling``, ``CalculateInputRadius``
    with 5 integer bits): (input multiplier, left shift, diff_min)."""
    integer_bits = 5
    real = min(float(np.float32(beta)) * float(np.float32(input_scale)) * (1 << (31 - integer_bits)),
               (1 << 31) - 1.0)
    mult, left_shift = quantize_multiplier(real)
    radius = math.floor(((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << left_shift))
    return mult, left_shift, -radius


def log_softmax_params(input_scale: float) -> tuple[int, int, int, int, int]:
    """int8 LOG_SOFTMAX's Prepare (``PreprocessLogSoftmaxScalingExp``, beta 1): the softmax parameters
    plus the inverse of the input scaling as a multiplier below one and its (right) shift."""
    mult, left_shift, diff_min = softmax_params(1.0, input_scale)
    reverse, reverse_shift = quantize_multiplier(float(1 << (31 - left_shift)) / mult)
    return mult, left_shift, diff_min, reverse, reverse_shift


def padding(in_size: int, out_size: int, stride: int, filter_size: int) -> int:
    """``ComputePaddingWithOffset``'s leading pad (dilation 1). It is the same formula for SAME
    and VALID: with VALID the output is small enough that it comes out 0."""
    total = max((out_size - 1) * stride + filter_size - in_size, 0)
    return total // 2
