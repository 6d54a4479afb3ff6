"""Look-up-table weight compression of an int8 flatbuffer, with TFLite-Micro's own compressor.

A weight tensor whose channels each hold at most 2^k distinct int8 values (after ``cluster``,
``ternary`` or ``binary``; plain int8 weights hold up to 256) is stored as k-bit indices and a small table
of values, and TFLite-Micro decodes it at run time with a ``DECODE`` op (custom code ``TFLM_DECODE``)
placed right before the op that reads it. Flash shrinks; the decoded tensor lives in the arena for that
one op, so RAM grows by the largest decoded tensor (both measured by the build, never assumed).

What is chosen, per tensor: the smallest k (1 to :data:`MAX_BITS`) that fits, and one table per output
channel or one for the whole tensor, whichever takes fewer bytes in TFLite-Micro's format (packed
indices, a 16-byte header, the tables padded to the longest); one table only for a tensor quantized with
one scale (see :func:`_choose_one`). A tensor is left as it is when the bytes
saved would not pay for the DECODE op and the two tensors it adds to the flatbuffer (:func:`decode_bytes`).
The decode is exact, so TFLite-Micro's outputs on the compressed model must equal the uncompressed
model's bit for bit; :func:`check_exact` proves it on the build's samples.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgec.errors import RuntimeCheckError
from edgec.load.flatbuffer_check import DECODE_OP
from edgec.load.tflite_file import TFLiteModel, constant_values, pack, schema, weight_inputs
from edgec.runtime import micro

_log = logging.getLogger(__name__)

MAX_BITS = 4  # the widest index written: 16 values per channel (TFLite-Micro's format allows up to 7)


def decode_bytes(name: str) -> int:
    """What one compressed tensor adds to the flatbuffer besides its indices and tables: the DECODE op,
    the ancillary and decoded tensors (each named after the weights) and their buffers, aligned to 16
    bytes. Measured on the sample's five weight tensors one at a time: 224-234 B with names of 17-19
    characters, 392 B with one of 110."""
    return 192 + 2 * len(name.encode())

_HEADER = 16  # TFLite-Micro's DECODE common metadata, before the value tables
# The axis of the output channels in the weights of each op kind whose weights are compressed.
CHANNEL_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0, "TRANSPOSE_CONV": 0}


@dataclasses.dataclass(frozen=True)
class Choice:
    """How one weight tensor is (or is not) compressed."""

    tensor: int
    name: str
    op: str
    shape: tuple[int, ...]
    bits: int | None        # index width; None: left uncompressed
    tables: str | None      # "per-channel" or "per-tensor"
    axis: int | None        # the per-channel axis
    bytes_before: int
    bytes_after: int        # packed indices + header + tables (bytes_before when left as it is)
    reason: str = ""        # why it was left as it is

    def to_dict(self) -> dict[str, Any]:
        return {"tensor": self.name, "op": self.op, "shape": list(self.shape), "bits": self.bits,
                "tables": self.tables, "bytes_before": self.bytes_before, "bytes_after": self.bytes_after,
                **({"left_because": self.reason} if self.reason else {})}


def lut_bytes(values: np.ndarray, axis: int | None, bits: int) -> int:
    """Bytes of ``values`` LUT-compressed as TFLite-Micro writes it: indices packed ``bits`` wide, the
    header, and the tables (one per slice along ``axis``, or one) padded to the longest."""
    slices = [values] if axis is None else list(np.moveaxis(values, axis, 0))
    longest = max(len(np.unique(s)) for s in slices)
    return math.ceil(values.size * bits / 8) + _HEADER + len(slices) * longest * values.itemsize


def index_bits(distinct: int) -> int:
    """The index width that addresses ``distinct`` values (at least 1)."""
    return max(1, (distinct - 1).bit_length())


def choose(data: bytes, tfl: TFLiteModel, max_bits: int = MAX_BITS) -> list[Choice]:
    """One :class:`Choice` per constant int8 weight tensor of a conv, depthwise, fully-connected or
    transposed-conv op (a tensor several ops share is judged once)."""
    out: list[Choice] = []
    seen: set[int] = set()
    for op, index in weight_inputs(tfl):
        t = tfl.tensors[index]
        if index in seen or not t.is_constant:
            continue
        seen.add(index)
        values = constant_values(data, tfl, index)
        if values is None or values.size == 0:
            continue
        out.append(_choose_one(t, op.name, values, CHANNEL_AXIS[op.name], max_bits))
    return out


def _choose_one(t, op_name: str, values: np.ndarray, channel_axis: int, max_bits: int) -> Choice:
    before = int(values.nbytes)
    options: list[tuple[int, int, str, int | None]] = []
    if values.ndim > channel_axis:
        per_channel = max(len(np.unique(s)) for s in np.moveaxis(values, channel_axis, 0))
        bits = index_bits(per_channel)
        options.append((lut_bytes(values, channel_axis, bits), bits, "per-channel", channel_axis))
    if len(t.scales) <= 1:
        # One table for a tensor of per-channel scales decodes wrong in TFLite-Micro (0.dev20261023: every
        # output differed on the sample's ternary conv3 and fc1, while per-channel tables were exact): only
        # a tensor with one scale gets one table.
        bits = index_bits(len(np.unique(values)))
        options.append((lut_bytes(values, None, bits), bits, "per-tensor", None))
    fitting = [o for o in options if o[1] <= max_bits]
    if not fitting:
        fewest = min(o[1] for o in options)
        return Choice(t.index, t.name, op_name, t.shape, None, None, None, before, before,
                      f"needs {fewest}-bit indices, more than {max_bits}")
    after, bits, tables, axis = min(fitting)
    cost = decode_bytes(t.name)
    if before - after <= cost:
        why = (f"{bits}-bit indices and tables take {after} B against {before} B" if after >= before else
               f"{bits}-bit indices would save {before - after} B, less than the DECODE op adds ({cost} B)")
        return Choice(t.index, t.name, op_name, t.shape, None, None, None, before, before, why)
    return Choice(t.index, t.name, op_name, t.shape, bits, tables, axis, before, after)


def compress_weights(data: bytes, tfl: TFLiteModel, max_bits: int = MAX_BITS,
                     leave: dict[int, str] | None = None) -> tuple[bytes, dict[str, Any]]:
    """``data`` with every weight tensor that pays LUT-compressed, and the report's section.

    Args:
        leave: tensors (by index) to leave uncompressed whether they pay or not, each with the reason.

    Returns:
        The compressed flatbuffer (``data`` itself when no tensor pays, or the whole file would not
        shrink) and ``{"applied", "tensors", "bytes_before", "bytes_after", "tflite_micro"}``.

    Raises:
        RuntimeCheckError: the installed tflite-micro has no compressor (one line naming its version).
    """
    choices = [dataclasses.replace(c, bits=None, tables=None, axis=None, bytes_after=c.bytes_before, reason=why)
               if c.bits is not None and (why := (leave or {}).get(c.tensor)) else c
               for c in choose(data, tfl, max_bits)]
    chosen = [c for c in choices if c.bits is not None]
    section: dict[str, Any] = {"applied": False, "tensors": [c.to_dict() for c in choices],
                               "bytes_before": len(data), "bytes_after": len(data),
                               "tflite_micro": micro.version()}
    if not chosen:
        section["why_not"] = "no weight tensor has few enough distinct values per channel to pay"
        return data, section
    packed = _compress(data, chosen)
    if len(packed) >= len(data):
        section["why_not"] = f"the compressed file would be {len(packed):,} B, not smaller"
        return data, section
    section.update(applied=True, bytes_after=len(packed),
                   weight_bits=_bits_per_weight(choices))
    return packed, section


def _bits_per_weight(choices: list[Choice]) -> float:
    """Bits the compressed weights take per weight, tables and headers included."""
    n = sum(math.prod(c.shape) for c in choices)
    return round(8 * sum(c.bytes_after for c in choices) / n, 3) if n else 8.0


def _compress(data: bytes, chosen: list[Choice]) -> bytes:
    """TFLite-Micro's compressor on ``chosen``; then the encoded tensors' stale quantization dropped (its
    model editor leaves the weights' per-channel scales on the packed bytes, which no kernel reads) and
    the file aligned again with TFLite-Micro's aligner."""
    try:
        from tflite_micro.tensorflow.lite.micro.compression import spec
        from tflite_micro.tensorflow.lite.micro.compression.compress import compress
        from tflite_micro.tensorflow.lite.micro.tools import tflite_flatbuffer_align_wrapper as align
    except ImportError as exc:
        raise RuntimeCheckError(f"the installed tflite-micro ({micro.version()}) has no weight compression "
                                f"({exc}); install {micro.WITH_DECODE}, or build with --lut off") from None
    specs = [spec.Tensor(0, c.tensor, [spec.LookUpTableCompression(
        c.bits, spec.PerTensor() if c.axis is None else spec.PerChannel(c.axis))]) for c in chosen]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its "larger than necessary" and expansion notes: choose() decided
        compressed = bytes(compress(data, specs))
    fb = schema()
    model = fb.ModelT.InitFromPackedBuf(bytearray(compressed), 0)
    codes = {i for i, c in enumerate(model.operatorCodes) if c.customCode == DECODE_OP}
    for graph in model.subgraphs:
        for op in graph.operators:
            if op.opcodeIndex in codes:
                for i in op.inputs:
                    graph.tensors[i].quantization = None
    with tempfile.TemporaryDirectory() as folder:
        src, dst = Path(folder) / "in.tflite", Path(folder) / "out.tflite"
        src.write_bytes(pack(model, len(compressed)))
        align.align_tflite_model(str(src), str(dst))
        return dst.read_bytes()


def check_exact(plain: bytes, compressed: bytes, inputs_q: list[np.ndarray]) -> dict[str, Any]:
    """TFLite-Micro on the compressed model against the uncompressed one, sample for sample, every output.

    Args:
        inputs_q: one array of quantized samples per input tensor, in the interpreter's order.

    Raises:
        RuntimeError: an output differs (the decode is exact: a bug in edgec or TFLite-Micro).
    """
    a = micro.run_many(plain, inputs_q)
    b = micro.run_many(compressed, inputs_q)
    differ = np.zeros(len(a[0]), bool)
    for x, y in zip(a, b):
        differ |= np.any(x != y, axis=1)
    if differ.any():
        lsb = max(int(np.abs(x.astype(np.int64) - y).max()) for x, y in zip(a, b))
        raise RuntimeError(f"the LUT-compressed model's TFLite-Micro outputs differ from the uncompressed model's "
                           f"on {int(differ.sum())} of {len(differ)} samples (at most {lsb} LSB); the decode is "
                           "exact, so this is a bug in edgec or TFLite-Micro")
    return {"samples": int(len(differ)), "bit_exact": True}
