"""Evidence that the int8 model computes what the float model computed.

Runs the int8 flatbuffer with the LiteRT interpreter (builtin reference
kernels, the arithmetic TFLite-Micro implements; XNNPACK is never the oracle)
and with the TFLite-Micro interpreter on validation inputs, and compares.

What is compared depends on the output's **task kind** (``edgec.config.TASKS``),
inferred from the model and the labels or set by the user:

- ``classifier`` (a softmax or sigmoid head, or integer class labels): top-1
  agreement with the float model, and accuracies with their 95 % intervals
  when labels exist;
- ``reconstruction`` (output shape = input shape: an autoencoder): output
  error, and how well the int8 model's reconstruction error ranks samples the
  way the float model's does (the anomaly score);
- ``regression`` / ``other``: output error.

Every kind gets the output error in output quantization steps (mean, RMSE,
max) and in float units, the signal-to-noise ratio in dB and the cosine
similarity. TFLite-Micro and LiteRT may differ by 1 LSB (rounding edges);
more than that is a warning naming the first op where they part.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from edgec import frameworks
from edgec.errors import RuntimeCheckError
from edgec.load.tflite_file import TFLiteModel, dequantize, integer_range, quantize, with_every_op_output
from edgec.runtime import litert, micro

_log = logging.getLogger(__name__)
MICRO_LITERT_TOLERANCE_LSB = 1  # rounding edges where the two libraries' integer code differs
Z95 = 1.959964  # two-sided 95 % normal quantile


def infer_task(tfl: TFLiteModel, y: np.ndarray | None, given: str | None = None,
               output: int = 0) -> tuple[str, str]:
    """The task kind of output ``output`` (its index among the graph's outputs) and why: ``given``
    (``--task``), else the output op (softmax or logistic: a classifier), else the labels (integer
    class ids), else the shapes (output shape = input shape: a reconstruction), else ``regression``
    with labels and ``other`` without."""
    if given:
        return given, "set with --task"
    out = tfl.outputs[output]
    head = next((op.name for op in tfl.ops if out in op.outputs), None)
    if head in ("SOFTMAX", "LOGISTIC"):
        return "classifier", f"the output is a {head.lower()}"
    width = tfl.tensors[out].elements
    if y is not None and np.issubdtype(np.asarray(y).dtype, np.integer) and width > 1:
        return "classifier", "the labels are integer class ids"
    if len(tfl.inputs) == 1 and tfl.tensors[out].shape == tfl.input.shape:
        return "reconstruction", "the output has the input's shape"
    if y is not None:
        return "regression", "the labels are real numbers and the output is not a softmax or sigmoid"
    return "other", "no labels, and the output is not a softmax, a sigmoid or the input's shape"


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


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (sound at 0 %, 100 % and small ``n``)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_drop_interval(float_right: np.ndarray, int8_right: np.ndarray) -> dict:
    """The accuracy drop (float minus int8, on the same samples) with its 95 % interval.

    The samples are paired, so only the discordant ones (right in one model, wrong in
    the other) carry information; the interval is Agresti and Min's adjusted Wald
    interval for matched proportions (2005: add 1/2 to each cell), which stays wide
    when no sample is discordant instead of collapsing to [0, 0].
    """
    n = len(float_right)
    b = int(np.sum(float_right & ~int8_right))  # lost by int8
    c = int(np.sum(~float_right & int8_right))  # gained by int8
    b2, c2, n2 = b + 0.5, c + 0.5, n + 2
    diff = (b2 - c2) / n2
    var = max(((b2 + c2) - (b2 - c2) ** 2 / n2) / n2**2, 0.0)
    half = Z95 * math.sqrt(var)
    return {"drop": (b - c) / n if n else 0.0, "low": diff - half, "high": diff + half, "half_width": half,
            "discordant": b + c, "samples": n}


def samples_to_resolve(limit: float, discordant: int, n: int) -> int:
    """Samples whose 95 % interval of the drop would be no wider than ``limit`` either side, at the
    discordance rate seen (with one pseudo-discordant sample, so a perfect agreement still counts)."""
    rate = (discordant + 1) / (n + 2)
    return max(math.ceil(Z95**2 * rate / limit**2), math.ceil(Z95 / limit))


def predict(model, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Float outputs of a Keras model, flattened per sample (direct calls, no tf.data)."""
    outs = [np.asarray(frameworks.call(model, x[i:i + batch])) for i in range(0, len(x), batch)]
    return np.concatenate(outs).reshape(len(x), -1)


def _rank(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v))
    ranks[order] = np.arange(len(v))
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman rank correlation (None for fewer than 3 samples or a constant side)."""
    if len(a) < 3:
        return None
    ra, rb = _rank(a), _rank(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def error_metrics(float_out: np.ndarray, deq: np.ndarray, q_out: np.ndarray, out_t) -> dict:
    """Output error of the int8 model against the float model, in steps and float units."""
    float_in_steps = np.clip(float_out / out_t.scale + out_t.zero_point, *integer_range(out_t))
    err_steps = np.abs(q_out - float_in_steps)
    diff = deq - float_out
    signal, noise = float(np.sum(float_out.astype(np.float64) ** 2)), float(np.sum(diff.astype(np.float64) ** 2))
    norms = np.linalg.norm(float_out, axis=1) * np.linalg.norm(deq, axis=1)
    cos = np.where(norms > 0, np.sum(float_out * deq, axis=1) / np.where(norms > 0, norms, 1), 1.0)
    return {
        "output_error_steps_mean": float(err_steps.mean()),
        "output_error_steps_rmse": float(np.sqrt(np.mean(err_steps**2))),
        "output_error_steps_max": float(err_steps.max()),
        "output_rmse": float(np.sqrt(np.mean(diff**2))),
        "output_max_error": float(np.abs(diff).max()),
        "output_snr_db": (10 * math.log10(signal / noise) if noise > 0 else math.inf) if signal > 0 else None,
        "output_cosine_mean": float(np.mean(cos)),
    }


def first_divergence(data: bytes, tfl: TFLiteModel, sample_q: np.ndarray) -> dict | None:
    """Where TFLite-Micro and LiteRT's reference kernels first part on ``sample_q``: every op's
    output is made a graph output and both runtimes run the copy. None if no op's output differs."""
    every, writers = with_every_op_output(data, tfl)
    tflm, lrt = micro.run_all_outputs(every, sample_q), litert.run_all_outputs(every, sample_q)
    diffs = {w: int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max()) for w, a, b in zip(writers, tflm, lrt)
             if w >= 0}
    for index in sorted(diffs):
        if diffs[index]:
            op = tfl.ops[index]
            out = tfl.tensors[op.outputs[0]]
            return {"op_index": index, "op": op.name, "tensor": out.name, "elements": out.elements,
                    "max_lsb": diffs[index]}
    return None


def verify(float_model, data: bytes, tfl: TFLiteModel, x: np.ndarray, y: np.ndarray | None,
           micro_samples: int = 50, task: str | None = None, describe_op=None) -> dict:
    """Compare the int8 model with the float model on ``x``.

    Args:
        float_model: the Keras model the int8 model was converted from.
        data: the int8 flatbuffer.
        tfl: its parsed form.
        x: validation inputs (float32, batch first).
        y: labels for ``x`` or None.
        micro_samples: how many of ``x`` also run through TFLite-Micro.
        task: the output's task kind (``edgec.config.TASKS``), or None to infer it.
        describe_op: names an op for messages (its Keras layer, say); default: its output tensor.

    Returns:
        The ``verification`` section of the report; ``warnings`` in it are for the summary.
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
    out_t = tfl.output
    deq = dequantize(q_out, out_t)
    kind, why = infer_task(tfl, y, task)
    result = {"samples": int(len(x)), "interpreter": interpreter, "task": kind, "task_reason": why,
              **error_metrics(float_out, deq, q_out, out_t), "warnings": []}
    m = min(micro_samples, len(x))
    result["micro_samples"] = int(m)
    result["micro_vs_litert_max_lsb"] = None
    if m:
        q_micro = micro.run(data, xq[:m]).astype(np.int32)
        per_sample = np.abs(q_micro - q_out[:m]).max(axis=1)
        result["micro_vs_litert_max_lsb"] = int(per_sample.max())
        result["micro_vs_litert_differing_values"] = int(np.sum(q_micro != q_out[:m]))
        if per_sample.max() > MICRO_LITERT_TOLERANCE_LSB and "reference" in interpreter:
            where = first_divergence(data, tfl, xq[int(per_sample.argmax())])
            if where is not None:
                where["where"] = (describe_op or tfl.describe_op)(tfl.ops[where["op_index"]])
            result["micro_vs_litert_first_op"] = where
            result["warnings"].append(_divergence_warning(result, where, m, q_out.shape[1]))
    if kind == "classifier":
        result.update(_classifier(float_out, deq, q_out, y))
    elif kind == "reconstruction":
        result.update(_reconstruction(x, float_out, deq))
    return result


# How the outputs of a model of several outputs add up to the figures budgets judge: the worst output.
_WORST = {"output_error_steps_mean": max, "output_error_steps_rmse": max, "output_error_steps_max": max,
          "output_snr_db": min, "output_cosine_mean": min, "top1_agreement": min, "accuracy_drop": max,
          "micro_vs_litert_max_lsb": max}


def verify_several(float_model, data: bytes, tfl: TFLiteModel, x, y, io: tuple[list[str], list[str]],
                   micro_samples: int = 50, task: str | None = None) -> dict:
    """:func:`verify` for a model of several inputs or outputs: each output judged by its own task
    kind, against the float model's output of the same name.

    Args:
        x: an array (one input) or a dict of arrays by input name.
        y: labels: an array (one output), a dict by output name (the outputs that have them), or None.
        io: the Keras names of the flatbuffer's input and output tensors, in the interpreter's order
            (:func:`edgec.convert.int8.io_order`).

    Returns:
        The verification section: ``outputs`` by name, each as :func:`verify` gives for one output,
        and at the top the worst of them for the budgets (``worst_output`` names whose each is).
    """
    in_names, out_names = io
    xs = x if isinstance(x, dict) else {in_names[0]: x}
    n = len(next(iter(xs.values())))
    float_outs = _predict_several(float_model, x, out_names, n)
    inputs_q = [quantize(xs[name], tfl.tensors[t]) for name, t in zip(in_names, tfl.inputs)]
    interpreter = "LiteRT, builtin reference kernels"
    try:
        q_outs = litert.run_many(data, inputs_q, reference_kernels=True)
    except RuntimeCheckError as exc:
        _log.debug("reference kernels refused the model (%s); using the default kernels", exc)
        q_outs = litert.run_many(data, inputs_q, reference_kernels=False)
        interpreter = "LiteRT, default builtin kernels (the reference resolver lacks an op version)"
    m = min(micro_samples, n)
    q_micro = micro.run_many(data, [a[:m] for a in inputs_q]) if m else None
    result: dict[str, Any] = {"samples": int(n), "interpreter": interpreter, "micro_samples": int(m), "outputs": {},
                              "warnings": []}
    for k, name in enumerate(out_names):
        out_t = tfl.tensors[tfl.outputs[k]]
        q_out = q_outs[k].astype(np.int32)
        deq = dequantize(q_out, out_t)
        labels = y.get(name) if isinstance(y, dict) else (y if len(out_names) == 1 else None)
        labels = None if labels is None else labels[:n]
        kind, why = infer_task(tfl, labels, task, output=k)
        r = {"task": kind, "task_reason": why, **error_metrics(float_outs[name], deq, q_out, out_t),
             "micro_vs_litert_max_lsb": None}
        if q_micro is not None:
            diff = np.abs(q_micro[k].astype(np.int32) - q_out[:m])
            r["micro_vs_litert_max_lsb"] = int(diff.max()) if diff.size else 0
            r["micro_vs_litert_differing_values"] = int(np.sum(diff != 0))
            if r["micro_vs_litert_max_lsb"] > MICRO_LITERT_TOLERANCE_LSB:
                result["warnings"].append(f"output '{name}': TFLite-Micro and LiteRT differ by up to "
                                          f"{r['micro_vs_litert_max_lsb']} LSB on {m} samples, more than the "
                                          f"{MICRO_LITERT_TOLERANCE_LSB} LSB rounding edges they may differ by")
        if kind == "classifier":
            r.update(_classifier(float_outs[name], deq, q_out, labels))
        elif kind == "reconstruction" and len(in_names) == 1:
            r.update(_reconstruction(xs[in_names[0]], float_outs[name], deq))
        result["outputs"][name] = r
    result["worst_output"] = {}
    for key, pick in _WORST.items():
        values = {name: r[key] for name, r in result["outputs"].items() if r.get(key) is not None}
        if values:
            worst = pick(values, key=lambda name: values[name])
            result[key], result["worst_output"][key] = values[worst], worst
    if "accuracy_drop" in result:  # the accuracy budget's output, with the figures that go with its drop
        judged = result["outputs"][result["worst_output"]["accuracy_drop"]]
        result.update({k: judged[k] for k in _ACCURACY_FIELDS if k in judged})
    return result


_ACCURACY_FIELDS = ("float_accuracy", "int8_accuracy", "accuracy_samples", "float_accuracy_ci95",
                    "int8_accuracy_ci95", "accuracy_drop_ci95", "accuracy_drop_discordant")


def _predict_several(model, x, out_names: list[str], n: int, batch: int = 256) -> dict[str, np.ndarray]:
    """The float model's outputs by name, flattened per sample (the model returns them in its own
    order, which need not be the flatbuffer's)."""
    keras_names = frameworks.keras_output_names(model)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in keras_names}
    for i in range(0, n, batch):
        chunk = {k: a[i:i + batch] for k, a in x.items()} if isinstance(x, dict) else x[i:i + batch]
        out = frameworks.call(model, chunk)
        if isinstance(out, dict):
            out = [out[name] for name in out_names]
        out = out if isinstance(out, (list, tuple)) else [out]
        for name, o in zip(keras_names, out):
            parts[name].append(np.asarray(o))
    return {name: np.concatenate(parts[name]).reshape(n, -1) for name in out_names}


def _divergence_warning(result: dict, where: dict | None, m: int, width: int) -> str:
    head = (f"TFLite-Micro and LiteRT's reference kernels differ by up to {result['micro_vs_litert_max_lsb']} LSB "
            f"({result['micro_vs_litert_differing_values']:,} of {m * width:,} output values on {m} samples; "
            f"more than the {MICRO_LITERT_TOLERANCE_LSB} LSB rounding edges they may differ by)")
    if where is None:
        return head + "; no single op's output differs on the worst sample, so the graphs' outputs part only there"
    return (f"{head}; they first part at {where['op']} {where['where']} ({where['elements']:,} output values), "
            f"by {where['max_lsb']} LSB there; the firmware computes what TFLite-Micro computes")


def _classifier(float_out, deq, q_out, y) -> dict:
    r: dict[str, Any] = {}
    if float_out.shape[1] > 1:
        r["top1_agreement"] = float(np.mean(float_out.argmax(1) == q_out.argmax(1)))
    else:
        r["top1_agreement"] = float(np.mean((float_out[:, 0] > 0.5) == (deq[:, 0] > 0.5)))
    if y is not None:
        labels = class_labels(y, float_out.shape[1])
        f_right = _predict_classes(float_out) == labels
        q_right = _predict_classes(deq) == labels
        n = len(labels)
        r["float_accuracy"], r["int8_accuracy"] = float(f_right.mean()), float(q_right.mean())
        r["accuracy_drop"] = r["float_accuracy"] - r["int8_accuracy"]
        r["accuracy_samples"] = n
        r["float_accuracy_ci95"] = list(wilson_interval(int(f_right.sum()), n))
        r["int8_accuracy_ci95"] = list(wilson_interval(int(q_right.sum()), n))
        drop = paired_drop_interval(f_right, q_right)
        r["accuracy_drop_ci95"] = [drop["low"], drop["high"]]
        r["accuracy_drop_discordant"] = drop["discordant"]
    return r


def _reconstruction(x, float_out, deq) -> dict:
    """The anomaly score of an autoencoder is its reconstruction error: does int8 rank samples
    the way float does?"""
    xs = x.reshape(len(x), -1)
    e_float = np.mean((float_out - xs) ** 2, axis=1)
    e_int8 = np.mean((deq - xs) ** 2, axis=1)
    return {"reconstruction_error_float": float(e_float.mean()), "reconstruction_error_int8": float(e_int8.mean()),
            "anomaly_score_rank_correlation": spearman(e_float, e_int8)}
