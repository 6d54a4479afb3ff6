"""Activation ranges narrower than min-max: ``percentile:<p>`` and ``mse``, used by TFLite's own quantizer.

TFLiteConverter calibrates with min-max only. It can stop after calibrating (the float model with each
activation's recorded min and max in its quantization fields) and quantize that model in a second step;
with the recorded ranges left alone the second step gives the same tensors, scales and zero points as the
one-step conversion (``tests/test_precision.py``). edgec runs the calibrated float model in LiteRT on the
calibration samples, chooses each intermediate activation's range from its values, writes the ranges into
the calibrated model, and quantizes it with the same quantizer. The model's input is one of those
activations (an input outlier then saturates, as any value beyond an int8 range does); its outputs keep
their min-max ranges (an output clipped would clip every prediction beyond it).

- ``percentile:<p>``: the range [p-th percentile from below, p-th from above], widened to include 0.
- ``mse``: of the candidate ranges min-max x f (f = 1, 0.98, ..., 0.3), the one whose int8 rounding and
  clipping of the values has the least squared error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgec import frameworks
from edgec.config import parse_calibration
from edgec.convert.int8 import check_full_int8, int8_converter, run_converter
from edgec.load.tflite_file import EDGEC_BUILT, pack, read_tflite, schema
from edgec.runtime import litert

MSE_FACTORS = tuple(np.round(np.arange(1.0, 0.29, -0.02), 2))


def _int8_error(values: np.ndarray, lo: float, hi: float) -> float:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255 or 1.0
    zero = np.round(-128 - lo / scale)
    q = np.clip(np.round(values / scale) + zero, -128, 127)
    return float(np.mean(((q - zero) * scale - values) ** 2))


def choose_range(values: np.ndarray, lo: float, hi: float, method: str, p: float | None) -> tuple[float, float]:
    """The range ``method`` chooses for ``values`` whose min-max range is [lo, hi]; never wider than it."""
    if values.size == 0 or method == "minmax":
        return lo, hi
    if method == "percentile":
        assert p is not None
        a, b = np.percentile(values, [100 - p, p])
        return max(lo, min(float(a), 0.0)), min(hi, max(float(b), 0.0))
    best = min(MSE_FACTORS, key=lambda f: _int8_error(values, lo * f, hi * f))
    return lo * float(best), hi * float(best)


def convert(model, calibration: np.ndarray, method: str, per_tensor_fc: bool = False) -> tuple[bytes, dict[str, Any]]:
    """The int8 flatbuffer with activation ranges chosen by ``method`` (not ``minmax``: the converter's own
    path does that), and the report's ``calibration`` section: per activation, the min-max range, the range
    kept and the fraction of calibration values it clips."""
    from tensorflow.lite.python import convert as tf_convert

    kind, p = parse_calibration(method)
    tf = frameworks.tf()
    converter = int8_converter(model, calibration, per_tensor_fc)
    converter._experimental_calibrate_only = True
    calibrated = run_converter(model, converter.convert)
    tree = schema().ModelT.InitFromPackedBuf(bytearray(calibrated), 0)
    graph = tree.subgraphs[0]
    edge = set(graph.outputs)
    tracked = [i for i, t in enumerate(graph.tensors) if i not in edge and t.quantization is not None
               and t.quantization.min is not None and len(t.quantization.min) == 1]
    values = litert.activation_values(calibrated, calibration, tracked)
    layers = []
    for i in tracked:
        q, v = graph.tensors[i].quantization, values[i]
        lo, hi = float(q.min[0]), float(q.max[0])
        new_lo, new_hi = choose_range(v, lo, hi, kind, p)
        clipped = float(np.mean((v < new_lo) | (v > new_hi))) if v.size else 0.0
        q.min, q.max = np.array([new_lo], np.float32), np.array([new_hi], np.float32)
        layers.append({"tensor": bytes(graph.tensors[i].name).decode(errors="replace"), "minmax": [lo, hi],
                       "range": [new_lo, new_hi], "clipped_fraction": clipped})
    data = run_converter(model, lambda: tf_convert.mlir_quantize(
        pack(tree, len(calibrated)), input_data_type=tf.int8, output_data_type=tf.int8,
        disable_per_channel_for_dense_layers=per_tensor_fc))
    check_full_int8(model, read_tflite(data, "converted model", made_by=EDGEC_BUILT))
    return data, {"method": method, "activations": layers,
                  "note": "the model's outputs keep their min-max ranges"}
