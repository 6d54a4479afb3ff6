"""The latency model: each op's instructions and cycles on a target, for a kernel library.

An op's instructions are a non-negative sum of terms (a fixed cost, per MAC, per
output value, per kernel tap, per input value) whose coefficients the profile
holds per op kind and library (``[instructions.<library>]``), fitted by
``scripts/fit_latency.py`` on per-op instruction counts of a real TFLite-Micro
firmware measured under QEMU, each kind with its fit error. Cycles are
instructions times the profile's cycles per instruction for the library
(fitted on published MLPerf Tiny latencies where a stack matches). An op kind
without a table of its own is costed as the kind whose inner loop it shares
(``STAND_IN``) and named, so that a report can say which figures are not
grounded. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the profile module imports this one through the runtimes
    from edgec.check.targets.profile import Target
    from edgec.load.tflite_file import Op, TFLiteModel

DECODE_KIND = "CUSTOM:TFLM_DECODE"  # edgec.load.tflite_file.DECODE (not imported: no cycle)
DECODE_OTHER = DECODE_KIND + ":not-lut"  # a DECODE op with an output decompressed otherwise than by look-up table
LIBRARIES = ("tflm-reference", "tflm-cmsis-nn", "c")  # TFLite-Micro's kernels, CMSIS-NN's, edgec's generated C
RENAMED = {"reference": "tflm-reference", "optimized": "tflm-cmsis-nn"}  # the names before the libraries were named
# The terms each op kind's instructions are fitted on and estimated from.
TERMS: dict[str, tuple[str, ...]] = {
    # per_patch: the values an im2col copies (output pixels x kernel positions x input channels), which
    # CMSIS-NN's general convolution widens to int16 before its matrix product
    "CONV_2D": ("fixed", "per_output", "per_tap", "per_patch", "per_mac"),
    # a 1x1 convolution at stride 1 without padding over a multiple of 4 channels: a plain matrix product
    # (CMSIS-NN's arm_convolve_1x1_s8_fast), no im2col
    "CONV_2D_1X1": ("per_mac",),
    # every measured depthwise kernel is 3x3, so per output and per MAC cannot be told apart: per MAC, which
    # scales with the kernel size
    "DEPTHWISE_CONV_2D": ("fixed", "per_mac"),
    "FULLY_CONNECTED": ("fixed", "per_output", "per_mac"),
    "AVERAGE_POOL_2D": ("fixed", "per_output", "per_input"),
    "MAX_POOL_2D": ("fixed", "per_output", "per_input"),
    "default": ("fixed", "per_output"),  # elementwise ops, softmax, reshape
    # TFLite-Micro's LUT decoder: per value on its fast path (int8, channels first, 2-4 bit indices, whole
    # groups of 16 or 32 values) and per value elsewhere (the rest of a channel, 1-bit indices, channels last)
    DECODE_KIND: ("fixed", "per_output", "per_slow_output"),
}
# Op kinds without measurements of their own, costed as the measured kind with the same inner loop.
STAND_IN = {"CONV_2D_1X1": "CONV_2D", "TRANSPOSE_CONV": "CONV_2D", "BATCH_MATMUL": "FULLY_CONNECTED",
            "UNIDIRECTIONAL_SEQUENCE_LSTM": "FULLY_CONNECTED", "BIDIRECTIONAL_SEQUENCE_LSTM": "FULLY_CONNECTED",
            "SVDF": "FULLY_CONNECTED", "SQUEEZE": "RESHAPE", "EXPAND_DIMS": "RESHAPE",
            # TFLite-Micro's weight decompression, where a profile has no table for it (the built-in ones do,
            # measured apart): a copy of its output, a lower bound
            DECODE_KIND: "RESHAPE",
            # its Huffman and pruning decoders (not written by edgec): costed as its LUT decoder's slow path
            DECODE_OTHER: DECODE_KIND}
_ELEMENTWISE = "ADD"  # any other op: costed per output value as ADD (a requantizing elementwise op)
_CONV_LIKE = ("CONV_2D", "TRANSPOSE_CONV")


def op_terms(macs: float, outputs: float, inputs: float, taps: float, patch: float = 0.0) -> dict[str, float]:
    """The values of every term for one op (``taps``: output values x kernel positions, a convolution's
    MACs over its input channels; ``patch``: its MACs over its output channels)."""
    return {"fixed": 1.0, "per_mac": float(macs), "per_output": float(outputs), "per_input": float(inputs),
            "per_tap": float(taps), "per_patch": float(patch), "per_slow_output": 0.0}


def decode_values(decoded: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """(values on the fast path, values elsewhere) of TFLite-Micro's LUT decoder for a DECODE op's outputs
    (``Op.options["lut"]``): the fast path takes an int8 tensor with channels first and 2-4 bit indices in
    whole groups of 16 values (32 at 3 bits) aligned in the index stream; a channel's values before the first
    aligned group and after the last go one by one, as does everything else."""
    fast = slow = 0
    for d in decoded:
        if d["dtype"] != "int8" or d["channels_last"] or d["bits"] not in (2, 3, 4):
            slow += d["elements"]
            continue
        group, per_channel, offset = (32 if d["bits"] == 3 else 16), d["elements"] // d["channels"], 0
        for _ in range(d["channels"]):
            before = min(-offset % group, per_channel)
            whole = (per_channel - before) // group * group
            fast, slow, offset = fast + whole, slow + per_channel - whole, offset + per_channel
    return fast, slow


def conv_kind(name: str, kernel: Sequence[int], stride: Sequence[int], in_c: int, padded: bool) -> str:
    """``CONV_2D_1X1`` for the convolutions that are a plain matrix product, else ``name``."""
    if name == "CONV_2D" and list(kernel) == [1, 1] and list(stride) == [1, 1] and not padded and in_c % 4 == 0:
        return "CONV_2D_1X1"
    return name


def kind_of(tfl: TFLiteModel, op: Op) -> str:
    """The op kind whose table costs ``op``: its name, or a kernel path of it (``conv_kind``, DECODE_OTHER)."""
    if op.name == DECODE_KIND and any(d["bits"] is None for d in op.options.get("lut", ())):
        return DECODE_OTHER
    if op.name != "CONV_2D" or len(op.inputs) < 2:
        return op.name
    shape = tfl.tensors[op.inputs[1]].shape
    kernel = list(shape[1:3]) if len(shape) == 4 else [0, 0]
    return conv_kind(op.name, kernel, op.options.get("stride", (1, 1)), int(shape[-1]) if shape else 0,
                     padded=False)  # a 1x1 kernel pads nothing


def _terms_of(tfl: TFLiteModel, op: Op) -> dict[str, float]:
    outputs = sum(tfl.tensors[i].elements for i in op.outputs)
    if op.name == DECODE_KIND and "lut" in op.options:
        fast, slow = decode_values(op.options["lut"])
        return {**op_terms(0, fast, 0, 0), "per_slow_output": float(slow)}
    inputs = tfl.tensors[op.inputs[0]].elements if op.inputs and op.inputs[0] >= 0 else 0
    taps = patch = 0.0
    if op.name in _CONV_LIKE and len(op.inputs) > 1:
        shape = tfl.tensors[op.inputs[1]].shape
        taps = op.macs / max(shape[-1] if shape else 1, 1)
        patch = op.macs / max(shape[0] if shape else 1, 1)
    return op_terms(op.macs, outputs, inputs, taps, patch)


def model_of(target: Target, op_name: str) -> tuple[str, dict[str, float]] | None:
    """(the kind whose table costs ``op_name``, that table) for the target's library, or None when the
    profile has no instruction tables for it."""
    tables = target.instruction_tables()
    if not tables:
        return None
    kind = op_name if op_name in tables or op_name in STAND_IN else _ELEMENTWISE
    while kind not in tables and kind in STAND_IN:  # a stand-in may have its own (DECODE_OTHER)
        kind = STAND_IN[kind]
    return (kind, tables[kind]) if kind in tables else None


def op_table(tfl: TFLiteModel, target: Target) -> list[dict[str, Any]]:
    """Per op: MACs, estimated instructions and cycles on ``target`` with its kernel library, the kind
    whose measured table costs it (``costed_as``), and the activation memory live while it runs."""
    cpi = target.cpi()
    rows: list[dict[str, Any]] = []
    live = tfl.live_tensors()
    for op in tfl.ops:
        terms = _terms_of(tfl, op)
        model = model_of(target, kind_of(tfl, op))
        instructions, error, costed_as = 0.0, 0.0, None
        if model is not None:
            costed_as, table = model
            instructions = sum(table.get(name, 0.0) * value for name, value in terms.items())
            error = table.get("error", 0.0)
        out = tfl.tensors[op.outputs[0]] if op.outputs else None
        rows.append({"index": op.index, "op": op.name, "kind": kind_of(tfl, op), "tensor": out.name if out else "",
                     "macs": op.macs, "elementwise": 0 if op.macs or out is None else int(terms["per_output"]),
                     "params": op.params, "output_shape": list(out.shape) if out else [],
                     "live_bytes": sum(tfl.tensors[i].nbytes for i in live[op.index]),
                     "live_tensors": [[i, tfl.tensors[i].nbytes] for i in live[op.index]],
                     "instructions": round(instructions), "instructions_error": error,
                     "costed_as": costed_as, "cycles": round(instructions * cpi)})
    total = sum(r["cycles"] for r in rows) or 1
    for r in rows:
        r["latency_share"] = r["cycles"] / total
    return rows


def not_measured(rows: list[dict[str, Any]]) -> list[str]:
    """The op kinds of ``rows`` costed by another kind's measurements (or not at all), as ``OP (as KIND)``."""
    seen: dict[str, str | None] = {}
    for r in rows:
        kind = r.get("kind", r["op"])
        if r["costed_as"] != kind:  # named by its kind where that refines the op's name (DECODE_OTHER)
            seen.setdefault(kind if kind.startswith(r["op"] + ":") else r["op"], r["costed_as"])
    return [f"{op} (as {kind})" if kind else f"{op} (no cost)" for op, kind in seen.items()]


def band(rows: list[dict[str, Any]], target: Target) -> float:
    """The relative uncertainty of the summed estimate: each op's fit error weighted by its share (the
    errors of one model's ops are not independent, so they add), plus the cycles-per-instruction error."""
    total = float(sum(r["instructions"] for r in rows))
    if not total:
        return 0.0
    fit = float(sum(r["instructions"] * r["instructions_error"] for r in rows)) / total
    return fit + target.cpi_error()


def estimate(rows: list[dict[str, Any]], target: Target) -> dict[str, Any]:
    """Instructions, cycles and latency of the whole model, with the latency's band (low, high)."""
    assert target.clock_hz
    instructions = sum(r["instructions"] for r in rows)
    cycles = sum(r["cycles"] for r in rows)
    ms = 1000.0 * cycles / target.clock_hz
    rel = band(rows, target)
    return {"instructions": instructions, "cycles": cycles, "latency_ms": ms,
            "latency_ms_range": [ms * max(0.0, 1 - rel), ms * (1 + rel)], "latency_relative_error": rel}


