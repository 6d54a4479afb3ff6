"""Run an int8 TFLite model with the LiteRT interpreter (``ai-edge-litert``).

:func:`run` and :func:`host_latency_ms` run LiteRT in edgec's interpreter
process (:mod:`edgec.runtime.sandbox`), so that a model crashing it cannot
take edgec down.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from edgec.capture import captured_fd2
from edgec.errors import RuntimeCheckError
from edgec.runtime import sandbox


def interpreter(data: bytes, threads: int = 1, reference_kernels: bool = False, keep_all_tensors: bool = False):
    """Build a LiteRT interpreter for ``data``.

    Args:
        data: flatbuffer bytes.
        threads: CPU threads for the default delegate.
        reference_kernels: use the builtin reference kernels with no delegate,
            the same arithmetic TFLite-Micro implements (for bit-exactness
            checks); otherwise LiteRT's default (optimized kernels, XNNPACK).
        keep_all_tensors: keep every intermediate tensor readable after
            ``invoke`` (builtin kernels, no XNNPACK: it fuses ops away).
    """
    from ai_edge_litert import interpreter as lrt

    kwargs = {"model_content": bytes(data), "num_threads": threads}
    if reference_kernels:
        kwargs["experimental_op_resolver_type"] = lrt.OpResolverType.BUILTIN_REF
    elif keep_all_tensors:
        kwargs["experimental_op_resolver_type"] = lrt.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if keep_all_tensors:
        kwargs["experimental_preserve_all_tensors"] = True
    try:
        with captured_fd2():  # "INFO: Created TensorFlow Lite XNNPACK delegate" and the like
            it = lrt.Interpreter(**kwargs)
            it.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        raise RuntimeCheckError(f"the LiteRT interpreter refused the model: {' '.join(str(exc).split())}; "
                                f"{sandbox.current_fix()}") from None
    return it


def run(data: bytes, inputs_q: np.ndarray, reference_kernels: bool = True) -> np.ndarray:
    """Run every sample of ``inputs_q`` (int8, batch first) one at a time (in the sandbox).

    Returns:
        The int8 outputs (of the first output tensor, flattened) stacked along a new first axis.
    """
    return run_many(data, [np.asarray(inputs_q)], reference_kernels)[0]


def run_many(data: bytes, inputs_q: list[np.ndarray], reference_kernels: bool = True) -> list[np.ndarray]:
    """Run a model of several inputs and outputs on samples (in the sandbox).

    Args:
        inputs_q: one int8 array per input tensor, in the interpreter's input order, batch first.

    Returns:
        One array per output tensor, in the interpreter's output order: (samples, elements).
    """
    data, inputs_q = bytes(data), [np.asarray(x) for x in inputs_q]
    parts = [sandbox.call(_run, data, chunk, reference_kernels, runtime="LiteRT")
             for chunk in sandbox.chunks(inputs_q)]
    return [np.concatenate([part[k] for part in parts]) for k in range(len(parts[0]))]


def host_latency_ms(data: bytes, runs: int = 50, warmup: int = 5, threads: int = 1) -> float:
    """Median wall time of one invocation with LiteRT's default delegate (timed in the sandbox)."""
    return sandbox.call(_host_latency_ms, bytes(data), runs, warmup, threads, runtime="LiteRT")


def numeric_verify_stats(data: bytes, x: np.ndarray) -> list[dict]:
    """Both sides of every NumericVerify op of a quantization-debugger model, summed over ``x`` (in the sandbox).

    Per op, in graph order: the quantized op it checks (``op``), its int8
    output tensor's name and scale, ``sums`` = (sum (f - dq)^2, sum f*dq,
    sum f^2, sum dq^2) of the float output f against the dequantized int8
    output dq, and ``count``, the elements summed.
    """
    return sandbox.call(_numeric_verify_stats, bytes(data), np.asarray(x, np.float32), runtime="LiteRT")


def _numeric_verify_stats(data: bytes, x: np.ndarray) -> list[dict]:
    it = interpreter(data, keep_all_tensors=True)
    ops = it._get_ops_details()
    producer = {t: op["index"] for op in ops for t in op["outputs"]}
    rows = []
    for op in (o for o in ops if o["op_name"] == "NumericVerify"):
        q = it._get_tensor_details(op["inputs"][0], 0)
        rows.append({"q": op["inputs"][0], "f": op["inputs"][1], "tensor": q["name"],
                     "op": ops[producer[op["inputs"][0]]]["op_name"],
                     "scale": float(q["quantization_parameters"]["scales"][0]),
                     "zero_point": int(q["quantization_parameters"]["zero_points"][0]),
                     "sums": np.zeros(4), "count": 0})
    inp = it.get_input_details()[0]
    for sample in x:
        it.set_tensor(inp["index"], sample[None])
        it.invoke()
        for r in rows:
            dq = (it.get_tensor(r["q"]).astype(np.float64) - r["zero_point"]) * r["scale"]
            f = it.get_tensor(r["f"]).astype(np.float64)
            r["sums"] += [np.sum((f - dq) ** 2), np.sum(f * dq), np.sum(f * f), np.sum(dq * dq)]
            r["count"] += f.size
    return [{"op": r["op"], "tensor": r["tensor"], "scale": r["scale"], "sums": tuple(float(v) for v in r["sums"]),
             "count": int(r["count"])} for r in rows]


def _run(data: bytes, inputs_q: list[np.ndarray], reference_kernels: bool) -> list[np.ndarray]:
    it = interpreter(data, reference_kernels=reference_kernels)
    ins, outs = it.get_input_details(), it.get_output_details()
    if len(ins) != len(inputs_q):
        raise RuntimeCheckError(f"the model has {len(ins)} inputs, and {len(inputs_q)} were given")
    results: list[list[Any]] = [[] for _ in outs]
    for i in range(len(inputs_q[0])):
        for detail, x in zip(ins, inputs_q):
            it.set_tensor(detail["index"], x[i].reshape(detail["shape"]).astype(detail["dtype"]))
        it.invoke()
        for k, detail in enumerate(outs):
            results[k].append(it.get_tensor(detail["index"]).reshape(-1).copy())
    return [np.stack(r) if r else np.zeros((0, 0), np.int8) for r in results]


def run_all_outputs(data: bytes, input_q: np.ndarray) -> list[np.ndarray]:
    """Every graph output of ``data`` for one int8 input, with the reference kernels (in the sandbox)."""
    return sandbox.call(_run_all_outputs, bytes(data), np.asarray(input_q), runtime="LiteRT")


def _run_all_outputs(data: bytes, input_q: np.ndarray) -> list[np.ndarray]:
    it = interpreter(data, reference_kernels=True)
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], input_q.reshape(inp["shape"]).astype(inp["dtype"]))
    it.invoke()
    return [it.get_tensor(o["index"]).reshape(-1).copy() for o in it.get_output_details()]


def activation_values(data: bytes, x: np.ndarray, tensors: list[int], keep: int = 100_000) -> dict[int, np.ndarray]:
    """Values of the ``tensors`` of a float model over the samples ``x`` (in the sandbox): at most ``keep``
    per tensor, an even sample of each invocation's values (so every sample is represented)."""
    return sandbox.call(_activation_values, bytes(data), np.asarray(x, np.float32), list(tensors), keep,
                        runtime="LiteRT")


def _activation_values(data: bytes, x: np.ndarray, tensors: list[int], keep: int) -> dict[int, np.ndarray]:
    it = interpreter(data, keep_all_tensors=True)
    inp = it.get_input_details()[0]
    per_sample = max(1, keep // max(len(x), 1))
    parts: dict[int, list[np.ndarray]] = {t: [] for t in tensors}
    for sample in x:
        it.set_tensor(inp["index"], sample.reshape(inp["shape"]).astype(np.float32))
        it.invoke()
        for t in tensors:
            values = it.get_tensor(t).reshape(-1)
            step = max(1, len(values) // per_sample)
            parts[t].append(values[::step].astype(np.float32).copy())
    return {t: np.concatenate(v) if v else np.zeros(0, np.float32) for t, v in parts.items()}


def _host_latency_ms(data: bytes, runs: int, warmup: int, threads: int) -> float:
    it = interpreter(data, threads=threads)
    inp = it.get_input_details()[0]
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=inp["shape"], dtype=np.int64).astype(inp["dtype"])
    it.set_tensor(inp["index"], x)
    for _ in range(warmup):
        it.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        it.invoke()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)
