"""Per-layer quantization error: which layer loses precision in int8.

TFLite's quantization debugger instruments the quantized model with a
NumericVerify op after every quantized op; that op's float input is the float
op computed on the *dequantized inputs of the same op*, so each layer's error
is its own, not inherited from the layers before it. edgec builds that
instrumented model from the same converter settings and calibration samples
as the shipped model, runs it with LiteRT on validation inputs, and reads both
sides of every NumericVerify op itself (the debugger's own direct-compare
hook read the wrong float tensors here, TF 2.21). Per layer: RMSE of the
int8 output against the float output in units of the output's quantization
step (RMSE / scale; about 0.29 is rounding alone), and the cosine similarity
of the two.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from edgec import _tf
from edgec._capture import captured_fds
from edgec.converters.tflite import int8_converter, layer_for_tensor, representative

_log = logging.getLogger(__name__)
_VERIFY = "NumericVerify"


def debug_model(keras_model, calibration: np.ndarray) -> bytes:
    """The quantized model with a NumericVerify op after every quantized op (float input/output)."""
    tf = _tf.tf()
    with captured_fds(1, 2), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=int8_converter(keras_model, calibration), debug_dataset=representative(calibration[:1]))
        return debugger.get_debug_quantized_model()


def layer_errors(keras_model, calibration: np.ndarray, x: np.ndarray) -> list[dict]:
    """One row per quantized op, in graph order: op, layer, rmse_over_scale, cosine, scale.

    Returns an empty list when the model cannot be instrumented (for example a
    QAT model, whose quantization is not post-training).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        model = debug_model(keras_model, calibration)
    except Exception as exc:  # the debugger refuses QAT models and exotic graphs
        _log.info("per-layer quantization error not measured: %s", exc)
        return []
    it = Interpreter(model_content=model, experimental_preserve_all_tensors=True,  # no XNNPACK: it fuses ops away
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    ops = it._get_ops_details()
    producer = {t: op["index"] for op in ops for t in op["outputs"]}
    verify = [op for op in ops if op["op_name"] == _VERIFY]
    stats = {op["index"]: np.zeros(4) for op in verify}  # sum sq diff, f.dq, |f|^2, |dq|^2 (per element count)
    counts = dict.fromkeys(stats, 0)
    inp = it.get_input_details()[0]
    for sample in x:
        it.set_tensor(inp["index"], sample[None].astype(np.float32))
        it.invoke()
        for op in verify:
            q_idx, f_idx = op["inputs"]
            q = it._get_tensor_details(q_idx, 0)
            scale = q["quantization_parameters"]["scales"][0]
            zp = q["quantization_parameters"]["zero_points"][0]
            dq = (it.get_tensor(q_idx).astype(np.float64) - zp) * scale
            f = it.get_tensor(f_idx).astype(np.float64)
            stats[op["index"]] += [np.sum((f - dq) ** 2), np.sum(f * dq), np.sum(f * f), np.sum(dq * dq)]
            counts[op["index"]] += f.size
    rows = []
    for op in verify:
        q_idx = op["inputs"][0]
        q = it._get_tensor_details(q_idx, 0)
        scale = float(q["quantization_parameters"]["scales"][0])
        sq, dot, ff, qq = stats[op["index"]]
        source = ops[producer[q_idx]]
        rows.append({
            "op": source["op_name"],
            "layer": layer_for_tensor(keras_model, q["name"]),
            "rmse_over_scale": float(np.sqrt(sq / max(counts[op["index"]], 1)) / scale),
            "cosine": float(dot / np.sqrt(ff * qq)) if ff > 0 and qq > 0 else (1.0 if ff == qq else 0.0),
            "scale": scale,
        })
    return rows


def worst(rows: list[dict], n: int = 3) -> list[dict]:
    """The ``n`` layers with the largest RMSE / scale."""
    return sorted(rows, key=lambda r: -r["rmse_over_scale"])[:n]
