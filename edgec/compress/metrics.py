"""What the report shows after every stage: size, sparsity, clusters, accuracy, gzip size.

Only the weights a deployed model keeps are counted (kernels, biases, batch
norm statistics); TFMOT's bookkeeping variables (masks, pruning steps,
quantizer ranges, cluster indices) are not parameters of the model.
"""

from __future__ import annotations

import gzip
from typing import Any

import numpy as np

from edgec.check.verification import accuracy, predict

_KEPT = ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance", "embeddings")
_BOOKKEEPING = ("mask", "threshold", "pruning_step", "optimizer_step", "_min", "_max", "cluster",
                "pulling_indices", "centroids")


def deployed_weights(model) -> list[tuple[str, str, np.ndarray]]:
    """(layer, weight, values) for every weight the deployed model keeps."""
    out = []
    for layer in model.layers:
        for w in layer.weights:
            short = w.name.split("/")[-1].split(":")[0]
            if any(b in short for b in _BOOKKEEPING) or not any(short.endswith(k) for k in _KEPT):
                continue
            out.append((layer.name, short, np.asarray(w.numpy())))
    return out


def mac_kernel(layer, k):
    """The multiply-accumulate weights (a variable) of a conv, transposed conv, depthwise or dense layer of
    tf_keras ``k``, else None."""
    if isinstance(layer, k.layers.DepthwiseConv2D):
        return layer.depthwise_kernel
    if isinstance(layer, (k.layers.Conv1D, k.layers.Conv2D, k.layers.Dense)):  # Conv2DTranspose is a Conv2D
        return layer.kernel
    return None


def kernels(model) -> list[tuple[str, np.ndarray]]:
    """(layer, kernel values) for the multiply-accumulate weights (conv, depthwise, dense)."""
    return [(layer, v) for layer, short, v in deployed_weights(model) if short.endswith("kernel")]


def model_metrics(model, ctx, clustered=()) -> dict:
    """The stage row's figures; ``clustered`` names the layers whose unique values to count."""
    weights = deployed_weights(model)
    params = int(sum(v.size for *_, v in weights))
    nonzero = int(sum(np.count_nonzero(v) for *_, v in weights))
    ks = kernels(model)
    k_total = sum(v.size for _, v in ks)
    row: dict[str, Any] = {
        "parameters": params,
        "nonzero_parameters": nonzero,
        "kernel_sparsity": float(1 - sum(np.count_nonzero(v) for _, v in ks) / k_total) if k_total else 0.0,
        "float_weights_gzip_bytes": len(gzip.compress(
            b"".join(v.astype(np.float32).tobytes() for *_, v in weights), compresslevel=9, mtime=0)),
    }
    if clustered:
        row["unique_values_per_kernel"] = {layer: int(np.unique(v).size) for layer, v in ks if layer in clustered}
    row.update(evaluate(model, ctx.x_val, ctx.y_val))
    return row


def evaluate(model, x: np.ndarray, y: np.ndarray | None) -> dict:
    """Float accuracy (classifier with labels) or mean squared error on validation data."""
    if y is None or len(x) == 0:
        return {}
    out = predict(model, x)
    if out.shape[1] > 1 or np.issubdtype(np.asarray(y).dtype, np.integer):
        return {"float_accuracy": accuracy(out, y)}
    return {"float_mse": float(np.mean((out - np.asarray(y).reshape(out.shape)) ** 2))}
