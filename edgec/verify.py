"""Evidence that the int8 model computes what the float model computed.

Runs the int8 flatbuffer with the LiteRT interpreter (reference kernels, the
arithmetic TFLite-Micro implements) and with the TFLite-Micro interpreter on
validation inputs, and compares: top-1 agreement with the float model, the
int8 output error in output quantization steps, accuracies when labels exist,
and the largest TFLite-Micro vs LiteRT difference in LSB.
"""

from __future__ import annotations

import logging

import numpy as np

from edgec.errors import RuntimeCheckError
from edgec.runtime import litert, micro
from edgec.runtime.model_file import TFLiteModel, dequantize, quantize

_log = logging.getLogger(__name__)


def class_labels(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Integer class ids from integer labels or one-hot/probability rows."""
    y = np.asarray(y)
    if y.ndim >= 2 and y.shape[-1] == n_classes and n_classes > 1:
        return y.reshape(len(y), -1).argmax(axis=1)
    return y.reshape(len(y)).astype(np.int64)


def _predict_classes(out: np.ndarray) -> np.ndarray:
    if out.shape[1] == 1:  # one sigmoid unit
        return (out[:, 0] > 0.5).astype(np.int64)
    return out.argmax(axis=1)


def accuracy(out: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of model outputs ``out`` (one row per sample) against labels ``y``."""
    return float(np.mean(_predict_classes(out) == class_labels(y, out.shape[1])))


def predict(model, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Float outputs of a Keras model, flattened per sample (direct calls, no tf.data)."""
    outs = [np.asarray(model(x[i:i + batch], training=False)) for i in range(0, len(x), batch)]
    return np.concatenate(outs).reshape(len(x), -1)


def verify(float_model, data: bytes, tfl: TFLiteModel, x: np.ndarray, y: np.ndarray | None,
           micro_samples: int = 50) -> dict:
    """Compare the int8 model with the float model on ``x``.

    Args:
        float_model: the tf_keras model the int8 model was converted from.
        data: the int8 flatbuffer.
        tfl: its parsed form.
        x: validation inputs (float32, batch first).
        y: labels for ``x`` or None.
        micro_samples: how many of ``x`` also run through TFLite-Micro.

    Returns:
        The ``verification`` section of the report.
    """
    float_out = predict(float_model, x)
    xq = quantize(x, tfl.input)
    interpreter = "LiteRT, builtin reference kernels"
    try:
        q_out = litert.run(data, xq, reference_kernels=True).astype(np.int32)
    except RuntimeCheckError as exc:  # the reference resolver lags behind (e.g. int8 TILE v3)
        _log.debug("reference kernels refused the model (%s); using the default kernels", exc)
        q_out = litert.run(data, xq, reference_kernels=False).astype(np.int32)
        interpreter = "LiteRT, default builtin kernels (the reference resolver lacks an op version)"
    m = min(micro_samples, len(x))
    q_micro = micro.run(data, xq[:m]).astype(np.int32) if m else None
    out_t = tfl.output
    float_in_steps = np.clip(float_out / out_t.scale + out_t.zero_point, -128, 127)
    err = np.abs(q_out - float_in_steps)
    n_out = q_out.shape[1]
    result = {
        "samples": int(len(x)),
        "interpreter": interpreter,
        "output_error_steps_mean": float(err.mean()),
        "output_error_steps_max": float(err.max()),
        "micro_samples": int(m),
        "micro_vs_litert_max_lsb": int(np.abs(q_micro - q_out[:m]).max()) if m else None,
        "classifier": n_out > 1,
    }
    deq = dequantize(q_out, out_t)
    if n_out > 1:
        result["top1_agreement"] = float(np.mean(float_out.argmax(1) == q_out.argmax(1)))
    if y is not None:
        result["float_accuracy"] = accuracy(float_out, y)
        result["int8_accuracy"] = accuracy(deq, y)
        result["accuracy_drop"] = result["float_accuracy"] - result["int8_accuracy"]
    return result
