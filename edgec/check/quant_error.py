"""Per-layer quantization error: which layer loses precision in int8.

TFLite's quantization debugger instruments the quantized model with a
NumericVerify op after every quantized op; that op's float input is the float
op computed on the *dequantized inputs of the same op*, so each layer's error
is its own, not inherited from the layers before it. edgec builds that
instrumented model from the same converter settings and calibration samples
as the shipped model, runs it with LiteRT (in edgec's sandbox) on validation
inputs, and reads both sides of every NumericVerify op itself (the debugger's own direct-compare
hook read the wrong float tensors here, TF 2.21). Per layer: RMSE of the
int8 output against the float output in units of the output's quantization
step (RMSE / scale; about 0.29 is rounding alone), and the cosine similarity
of the two.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from edgec import frameworks
from edgec.capture import captured_fds
from edgec.convert.int8 import int8_converter, layer_for_tensor, representative
from edgec.runtime import litert

_log = logging.getLogger(__name__)


def debug_model(keras_model, calibration: np.ndarray, per_tensor_fc: bool = False, activations: str = "int8") -> bytes:
    """The quantized model with a NumericVerify op after every quantized op (float input/output), its
    FULLY_CONNECTED weights quantized as the build's are."""
    tf = frameworks.tf()
    with captured_fds(1, 2), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=int8_converter(keras_model, calibration, per_tensor_fc, activations),
            debug_dataset=representative(calibration[:1]))
        return debugger.get_debug_quantized_model()


def layer_errors(keras_model, calibration: np.ndarray, x: np.ndarray, per_tensor_fc: bool = False,
                 activations: str = "int8") -> list[dict]:
    """One row per quantized op, in graph order: op, layer, rmse_over_scale, cosine, scale.

    The instrumented model runs in LiteRT in edgec's sandbox
    (:func:`edgec.runtime.litert.numeric_verify_stats`). Returns an empty list
    when the model cannot be instrumented (for example a QAT model, whose
    quantization is not post-training).
    """
    try:
        model = debug_model(keras_model, calibration, per_tensor_fc, activations)
    except Exception as exc:  # the debugger refuses QAT models and exotic graphs
        _log.info("per-layer quantization error not measured: %s", exc)
        return []
    rows = []
    for st in litert.numeric_verify_stats(model, np.asarray(x, np.float32)):
        sq, dot, ff, qq = st["sums"]
        rows.append({
            "op": st["op"],
            "layer": layer_for_tensor(keras_model, st["tensor"]),
            "rmse_over_scale": float(np.sqrt(sq / max(st["count"], 1)) / st["scale"]),
            "cosine": float(dot / np.sqrt(ff * qq)) if ff > 0 and qq > 0 else (1.0 if ff == qq else 0.0),
            "scale": st["scale"],
        })
    return rows


def worst(rows: list[dict], n: int = 3) -> list[dict]:
    """The ``n`` layers with the largest RMSE / scale."""
    return sorted(rows, key=lambda r: -r["rmse_over_scale"])[:n]
