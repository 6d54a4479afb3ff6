"""The latency model: each op's cycles on a target, from its MACs and the profile's cycles per MAC.

An op with MACs (convolutions, fully connected, pooling, LSTM gates) costs its
MACs times the profile's cycles per MAC for its kind and kernel library; an op
without them costs its output values times ``per_output``; every op adds
``per_op``; a reshape is free. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the profile module imports this one through the runtimes
    from edgec.check.targets.profile import Target
    from edgec.load.tflite_file import TFLiteModel

_KIND = {"CONV_2D": "conv", "TRANSPOSE_CONV": "conv", "BATCH_MATMUL": "conv",
         "DEPTHWISE_CONV_2D": "depthwise", "FULLY_CONNECTED": "fully_connected",
         "AVERAGE_POOL_2D": "pool", "MAX_POOL_2D": "pool",
         # an LSTM's MACs are its gates' matrix-vector products: costed as fully connected (not fitted)
         "UNIDIRECTIONAL_SEQUENCE_LSTM": "fully_connected", "BIDIRECTIONAL_SEQUENCE_LSTM": "fully_connected"}
# Ops that only move or reinterpret memory in TFLite-Micro.
_FREE = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}


def op_table(tfl: TFLiteModel, target: Target) -> list[dict[str, Any]]:
    """Per-op MACs and estimated cycles on ``target`` with its kernel library."""
    cycles = target.cycles.get(target.kernels, {})
    rows: list[dict[str, Any]] = []
    live = tfl.live_tensors()
    for op in tfl.ops:
        kind = _KIND.get(op.name)
        elementwise = 0  # output values an op without MACs computes (ADD, MUL, LOGISTIC, ...)
        if kind is not None:
            c = op.macs * cycles.get(kind, 0.0)
        elif op.name in _FREE:
            c = 0.0
        else:
            elementwise = sum(tfl.tensors[i].elements for i in op.outputs)
            c = elementwise * cycles.get("per_output", 0.0)
        c += cycles.get("per_op", 0.0)
        rows.append({"index": op.index, "op": op.name, "tensor": tfl.tensors[op.outputs[0]].name if op.outputs else "",
                     "macs": op.macs, "elementwise": elementwise, "params": op.params,
                     "output_shape": list(tfl.tensors[op.outputs[0]].shape) if op.outputs else [],
                     "live_bytes": sum(tfl.tensors[i].nbytes for i in live[op.index]),
                     "live_tensors": [[i, tfl.tensors[i].nbytes] for i in live[op.index]], "cycles": round(c)})
    total = sum(r["cycles"] for r in rows) or 1
    for r in rows:
        r["latency_share"] = r["cycles"] / total
    return rows
