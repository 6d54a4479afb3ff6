"""Verify a ``.tflite`` flatbuffer before any C++ code reads it.

LiteRT and TFLite-Micro are C++: a corrupt or hostile file can make them read
out of bounds or crash. :func:`verify` checks, in pure Python and without
trusting a single offset:

* the flatbuffer structure of every table the runtimes read (model, operator
  codes, subgraphs, tensors, quantization, sparsity, operators, buffers,
  metadata, signatures): each table's vtable, each field, each vector and
  string lies inside the file, with a bound on the number of tables visited;
* buffers: a buffer's data, or its ``offset``/``size`` (models over 2 GB keep
  data after the flatbuffer), lies inside the file;
* tensors: a known type, non-negative shape, a buffer index in range, constant
  data exactly as long as shape x type says, scales and zero points of
  matching lengths;
* operators: the opcode index, every input, output and intermediate tensor
  index, and the subgraph's inputs and outputs in range.

Builtin-options tables are checked as tables (vtable and inline fields in
bounds) and their vector fields (Reshape, Squeeze, Bucketize,
ConcatEmbeddings) as vectors. StableHLO options (``builtin_options_2``) are
refused: no int8 microcontroller runtime runs those ops. A second, complete
verification happens in the sandboxed child (LiteRT's generated flatbuffer
verifier) before TFLite-Micro sees the bytes; ``fuzz/verifier_diff.py``
checks that this one refuses everything that one refuses.
"""

from __future__ import annotations

import functools
import math
import re
import struct
from typing import Any

from edgec.errors import ModelLoadError

# Field kinds: ("s", size) scalar, ("str",) string, ("v", elem size) scalar vector,
# ("t", table) table, ("tv", table) vector of tables, ("u", type field, {type: table}) union.
_S1, _S4, _S8 = ("s", 1), ("s", 4), ("s", 8)
_V1, _V4, _V8 = ("v", 1), ("v", 4), ("v", 8)
_STR = ("str",)
_Fields = dict[int, tuple[Any, ...]]  # field index -> kind ("s", bytes), ("v", bytes), ("t", table)...
_OPTIONS_VECTORS: dict[str, _Fields] = {
    "ReshapeOptions": {0: _V4}, "SqueezeOptions": {0: _V4}, "BucketizeOptions": {0: _V4},
    "ConcatEmbeddingsOptions": {0: _S4, 1: _V4, 2: _V4}, "VarHandleOptions": {0: _STR, 1: _STR}}
_SCHEMA: dict[str, _Fields] = {
    "Model": {0: _S4, 1: ("tv", "OperatorCode"), 2: ("tv", "SubGraph"), 3: _STR, 4: ("tv", "Buffer"),
              5: _V4, 6: ("tv", "Metadata"), 7: ("tv", "SignatureDef"), 8: ("tv", "ExternalBufferGroup"),
              9: ("tv", "ExternalBuffer")},
    "OperatorCode": {0: _S1, 1: _STR, 2: _S4, 3: _S4},
    "SubGraph": {0: ("tv", "Tensor"), 1: _V4, 2: _V4, 3: ("tv", "Operator"), 4: _STR, 5: _S4},
    "Tensor": {0: _V4, 1: _S1, 2: _S4, 3: _STR, 4: ("t", "QuantizationParameters"), 5: _S1,
               6: ("t", "SparsityParameters"), 7: _V4, 8: _S1, 9: ("tv", "VariantSubType"), 10: _S4},
    "QuantizationParameters": {0: _V4, 1: _V4, 2: _V4, 3: _V8, 4: _S1,
                               5: ("u", 4, {1: "CustomQuantization"}), 6: _S4},
    "CustomQuantization": {0: _V1},
    "SparsityParameters": {0: _V4, 1: _V4, 2: ("tv", "DimensionMetadata")},
    "DimensionMetadata": {0: _S1, 1: _S4, 2: _S1, 3: ("u", 2, {1: "Int32Vector", 2: "Uint16Vector",
                                                               3: "Uint8Vector"}),
                          4: _S1, 5: ("u", 4, {1: "Int32Vector", 2: "Uint16Vector", 3: "Uint8Vector"})},
    "Int32Vector": {0: _V4}, "Uint16Vector": {0: ("v", 2)}, "Uint8Vector": {0: _V1},
    "VariantSubType": {0: _V4, 1: _S1, 2: _S1},
    "Operator": {0: _S4, 1: _V4, 2: _V4, 3: _S1, 4: ("u", 3, "options"), 5: _V1, 6: _S1, 7: _V1, 8: _V4,
                 9: _S8, 10: _S8, 11: _S1, 12: ("u", 11, "options2"), 13: _S4},
    "Buffer": {0: _V1, 1: _S8, 2: _S8},
    "Metadata": {0: _STR, 1: _S4},
    "SignatureDef": {0: ("tv", "TensorMap"), 1: ("tv", "TensorMap"), 2: _STR, 3: _STR, 4: _S4},
    "TensorMap": {0: _STR, 1: _S4},
    "ExternalBufferGroup": {0: _STR},
    "ExternalBuffer": {0: _S4, 1: _S4, 2: _S8, 3: _S8, 4: _STR},
}
_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2}
_KNOWN_TYPES = set(range(0, 20))
_MAX_TABLES_PER_BYTE = 1  # a table takes at least 4 bytes; shared offsets must not multiply the work


class _Invalid(Exception):
    pass


class _Reader:
    """Bounds-checked reads of a flatbuffer, counting the tables it visits."""

    def __init__(self, data: bytes):
        self.data = data
        self.n = len(data)
        self.tables = 0
        self.limit = max(64, self.n * _MAX_TABLES_PER_BYTE)

    def need(self, pos: int, size: int, what: str):
        if pos < 0 or size < 0 or pos + size > self.n:
            raise _Invalid(f"{what} lies outside the file (bytes {pos}..{pos + size} of {self.n})")

    def u8(self, pos, what):
        self.need(pos, 1, what)
        return self.data[pos]

    def u16(self, pos, what):
        self.need(pos, 2, what)
        return struct.unpack_from("<H", self.data, pos)[0]

    def u32(self, pos, what):
        self.need(pos, 4, what)
        return struct.unpack_from("<I", self.data, pos)[0]

    def i32(self, pos, what):
        self.need(pos, 4, what)
        return struct.unpack_from("<i", self.data, pos)[0]

    def deref(self, pos, what):
        """The position a uoffset at ``pos`` points to."""
        if pos % 4:
            raise _Invalid(f"{what} is misaligned")
        offset = self.u32(pos, what)
        if offset == 0:  # points at itself (the generated verifiers refuse it)
            raise _Invalid(f"{what} points at itself")
        target = pos + offset
        self.need(target, 4, what)
        return target

    def table(self, pos: int, what: str) -> "_Table":
        self.tables += 1
        if self.tables > self.limit:
            raise _Invalid("the flatbuffer references more tables than it could hold (shared or looping offsets)")
        if pos % 4:
            raise _Invalid(f"{what} is misaligned")
        vt = pos - self.i32(pos, what)
        if vt % 2:
            raise _Invalid(f"{what}'s vtable is misaligned")
        vt_size = self.u16(vt, f"{what}'s vtable")
        obj_size = self.u16(vt + 2, f"{what}'s vtable")
        if vt_size < 4 or vt_size % 2:
            raise _Invalid(f"{what}'s vtable has an impossible size {vt_size}")
        self.need(vt, vt_size, f"{what}'s vtable")
        self.need(pos, obj_size, what)
        fields = {}
        for i in range((vt_size - 4) // 2):
            off = self.u16(vt + 4 + 2 * i, f"{what}'s vtable")
            if off:
                if off >= obj_size:
                    raise _Invalid(f"{what} field {i} lies outside its table")
                fields[i] = pos + off
        return _Table(self, pos, obj_size, fields, what)

    def vector(self, pos: int, elem: int, what: str) -> tuple[int, int]:
        """(start, length) of the vector a field at ``pos`` points to."""
        start = self.deref(pos, what)
        if start % 4 or (elem == 8 and (start + 4) % 8):
            raise _Invalid(f"{what} is misaligned")
        length = self.u32(start, what)
        self.need(start + 4, length * elem, what)
        return start + 4, length


class _Table:
    def __init__(self, r: _Reader, pos: int, size: int, fields: dict[int, int], what: str):
        self.r, self.pos, self.size, self.fields, self.what = r, pos, size, fields, what

    def scalar(self, i: int, size: int, signed: bool = False, default: int = 0) -> int:
        p = self.fields.get(i)
        if p is None:
            return default
        if p + size > self.pos + self.size or p % size:
            raise _Invalid(f"{self.what} field {i} lies outside its table or is misaligned")
        self.r.need(p, size, f"{self.what} field {i}")
        fmt = {1: "b", 2: "h", 4: "i", 8: "q"}[size]
        return struct.unpack_from("<" + (fmt if signed else fmt.upper()), self.r.data, p)[0]

    def numbers(self, i: int, code: str = "i") -> list:
        """Vector field ``i`` of 4-byte numbers: ``code`` "i" (int32) or "f" (float32)."""
        p = self.fields.get(i)
        if p is None:
            return []
        start, n = self.r.vector(p, 4, f"{self.what} field {i}")
        return list(struct.unpack_from(f"<{n}{code}", self.r.data, start))

    def tables(self, i: int) -> list["_Table"]:
        p = self.fields.get(i)
        if p is None:
            return []
        start, n = self.r.vector(p, 4, f"{self.what} field {i}")
        return [self.r.table(self.r.deref(start + 4 * k, self.what), f"{self.what}[{k}]") for k in range(n)]

    def sub(self, i: int) -> "_Table | None":
        p = self.fields.get(i)
        return None if p is None else self.r.table(self.r.deref(p, self.what), f"{self.what} field {i}")


def _walk(r: _Reader, table: _Table | None, name: str, options_fields: dict[str, _Fields]) -> None:
    """Check every field of ``table`` (a ``name``) against the schema, recursively."""
    if table is None:
        return
    for i, kind in _SCHEMA.get(name, options_fields.get(name, {})).items():
        p = table.fields.get(i)
        if p is None:
            continue
        what = f"{table.what} field {i}"
        if kind[0] == "s":
            table.scalar(i, kind[1])
        elif kind[0] == "str":
            start, n = r.vector(p, 1, what)
            if r.u8(start + n, what) != 0:
                raise _Invalid(f"{what} (a string) is not terminated")
        elif kind[0] == "v":
            r.vector(p, kind[1], what)
        elif kind[0] == "t":
            _walk(r, table.sub(i), kind[1], options_fields)
        elif kind[0] == "tv":
            for t in table.tables(i):
                _walk(r, t, kind[1], options_fields)
        elif kind[0] == "u":
            utype = table.scalar(kind[1], 1)
            if kind[2] == "options2":
                raise _Invalid(f"{table.what} has StableHLO options, which no int8 microcontroller runtime runs")
            target = _options_schema()[0].get(utype) if kind[2] == "options" else kind[2].get(utype)
            if utype == 0:
                r.deref(p, what)  # NONE: the generated verifiers still check the value's offset
                continue
            if target is None and kind[2] != "options":
                raise _Invalid(f"{what} has an unknown union type {utype}")
            _walk(r, table.sub(i), target or "", options_fields)


_FLAG_BYTES = {"Bool": 1, "Uint8": 1, "Int8": 1, "Uint16": 2, "Int16": 2, "Uint32": 4, "Int32": 4, "Float32": 4,
               "Uint64": 8, "Int64": 8, "Float64": 8}
_ACCESSOR = re.compile(r"Offset\((\d+)\)\)\n\s+if o != 0:\n\s+(?:return |x = |a = )?(.*)")


@functools.lru_cache(maxsize=1)
def op_names() -> dict[int, str]:
    """BuiltinOperator code -> name (``3`` -> ``"CONV_2D"``), from the schema module LiteRT ships."""
    from ai_edge_litert import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


@functools.lru_cache(maxsize=1)
def _options_schema() -> tuple[dict[int, str], dict[str, _Fields]]:
    """(BuiltinOptions union type -> table name, table name -> field kinds), the kinds read from the
    accessors of the schema module LiteRT ships (generated code)."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOptions).items() if not k.startswith("_") and isinstance(v, int)}
    with open(schema.__file__, encoding="utf-8") as fh:
        sources = {chunk.split("(", 1)[0]: chunk for chunk in fh.read().split("\nclass ")}
    fields_of: dict[str, _Fields] = {}
    for name in names.values():
        if name not in sources:
            continue
        fields: _Fields = {}
        for offset, body in _ACCESSOR.findall(sources[name]):
            field = (int(offset) - 4) // 2
            if m := re.search(r"GetVectorAsNumpy\(flatbuffers\.number_types\.(\w+)Flags", body):
                fields[field] = ("v", _FLAG_BYTES[m.group(1)])
            elif m := re.search(r"Get\(flatbuffers\.number_types\.(\w+)Flags, o \+ self\._tab\.Pos\)", body):
                fields.setdefault(field, ("s", _FLAG_BYTES[m.group(1)]))
            elif "self._tab.String(" in body:
                fields[field] = _STR
            elif "self._tab.Vector(o)" in body:
                fields.setdefault(field, ("v", 1))  # the length is checked; elements are not read here
        fields_of[name] = {**fields, **_OPTIONS_VECTORS.get(name, {})}
    return names, fields_of


_CUSTOM = 32  # BuiltinOperator.CUSTOM
DECODE_OP = b"TFLM_DECODE"  # TFLite-Micro's DECODE (weight decompression), a custom op: its inputs are raw bytes
_ZP_RANGE = {9: (-128, 127), 3: (0, 255), 7: (-32768, 32767)}
# Operands each kernel reads without checking their count, and the options table it expects.
_ARITY = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "AVERAGE_POOL_2D": 1, "MAX_POOL_2D": 1,
          "ADD": 2, "SUB": 2, "MUL": 2, "SOFTMAX": 1, "RESHAPE": 1, "CONCATENATION": 1, "LOGISTIC": 1,
          "TANH": 1, "QUANTIZE": 1, "DEQUANTIZE": 1, "MEAN": 2, "PAD": 2, "RELU": 1, "RELU6": 1}
_OPTIONS_OF = {"CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
               "FULLY_CONNECTED": "FullyConnectedOptions", "AVERAGE_POOL_2D": "Pool2DOptions",
               "MAX_POOL_2D": "Pool2DOptions", "ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions",
               "SOFTMAX": "SoftmaxOptions", "RESHAPE": "ReshapeOptions", "CONCATENATION": "ConcatenationOptions"}


class _ScalesOffShape(_Invalid):
    """Per-channel scales that do not match the tensor's shape: harmless on a tensor no kernel reads as
    numbers (the raw bytes a DECODE op unpacks), so judged once the ops that read it are known."""


def _quantization(r: _Reader, t: _Table, shape: list[int], ttype: int, where: str) -> tuple[float, ...]:
    """The tensor's scales, after checking them and its zero points; () if it has none.

    Raises:
        _ScalesOffShape: the scales are per channel and do not match the shape.
    """
    q = t.sub(4)
    if q is None:
        return ()
    scales = q.numbers(2, "f")
    zps = []
    if 3 in q.fields:
        start, n = r.vector(q.fields[3], 8, where)
        zps = list(struct.unpack_from(f"<{n}q", r.data, start))
    if scales and zps and len(scales) != len(zps):
        raise _Invalid(f"{where} has {len(scales)} scales but {len(zps)} zero points")
    if any(not (math.isfinite(s) and s > 0) for s in scales):
        raise _Invalid(f"{where} has a scale that is not a positive number")
    lo, hi = _ZP_RANGE.get(ttype, (-(2**63), 2**63 - 1))
    if any(not lo <= z <= hi for z in zps):
        raise _Invalid(f"{where} has a zero point outside its type's range {lo}..{hi}")
    dim = q.scalar(6, 4, signed=True)
    # Some converters write a 1-D tensor (a bias) with its weights' quantized_dimension (3 in TFLM's own
    # person_detect.tflite); no kernel reads it there and TFLite-Micro runs the file: one scale per element.
    vector = len(shape) == 1 and not 0 <= dim < len(shape) and shape[0] == len(scales)
    if len(scales) > 1 and not vector and not (0 <= dim < len(shape) and shape[dim] == len(scales)):
        raise _ScalesOffShape(f"{where} has {len(scales)} per-channel scales that do not match its shape "
                       f"{shape} on dimension {dim}")
    return tuple(scales)


def _kernel_preconditions(name: str, op: _Table, ins: list[int], outs: list[int], scales: dict, where: str,
                          option_names: dict[int, str]):
    """What TFLite's kernels assert (and abort on) rather than report, checked here instead."""
    if len(outs) < 1 or len(ins) < _ARITY.get(name, 0) or any(i < 0 for i in ins[:_ARITY.get(name, 0)]):
        raise _Invalid(f"{where} ({name}) has {len(ins)} inputs and {len(outs)} outputs, too few")
    expected = _OPTIONS_OF.get(name)
    utype = op.scalar(3, 1)
    if expected and utype and option_names.get(utype) != expected:
        raise _Invalid(f"{where} ({name}) carries {option_names.get(utype, utype)} instead of {expected}")
    s_in = [scales.get(i, ()) for i in ins]
    s_out = scales.get(outs[0], ())
    if name in ("ADD", "SUB") and len(s_in) >= 2 and s_in[0] and s_in[1] and s_out:
        twice_max = 2 * max(s_in[0][0], s_in[1][0])
        # left shift 20 for int8 (QuantizeMultiplierSmallerThanOneExp)
        if not 0 < twice_max / ((1 << 20) * s_out[0]) < 1:
            raise _Invalid(f"{where} ({name}) has input and output scales no integer kernel can rescale")
    if name == "SOFTMAX" and s_in and s_in[0] and utype and option_names.get(utype) == "SoftmaxOptions":
        options = op.sub(4)
        beta = struct.unpack("<f", struct.pack("<I", options.scalar(0, 4)))[0] if options else 1.0
        if not beta * s_in[0][0] * (1 << 26) > 1:  # PreprocessSoftmaxScaling needs a multiplier over 1
            raise _Invalid(f"{where} (SOFTMAX) has beta x input scale {beta * s_in[0][0]:.3g}, too small for "
                           "the integer kernel")


def _semantics(r: _Reader, model: _Table, option_names: dict[int, str]):
    """Indices in range, buffers inside the file, tensor data consistent with shape and type,
    quantization parameters the integer kernels accept."""
    names = op_names()
    buffers = model.tables(4)
    codes = model.tables(1)
    subgraphs = model.tables(2)
    if not subgraphs:
        raise _Invalid("the model has no subgraph")
    data_size = []
    for k, b in enumerate(buffers):
        p = b.fields.get(0)
        n = r.vector(p, 1, f"buffer {k}")[1] if p is not None else 0
        offset, size = b.scalar(1, 8), b.scalar(2, 8)
        if offset > 1:  # data after the flatbuffer (TFLite treats offset 1 as a placeholder)
            if offset + size > r.n:
                raise _Invalid(f"buffer {k} points at bytes {offset}..{offset + size}, outside the file of {r.n}")
            n = size
        data_size.append(n)
    for s, g in enumerate(subgraphs):
        tensors = g.tables(0)
        nt = len(tensors)
        scales: dict[int, tuple[float, ...]] = {}
        off_shape: dict[int, str] = {}  # tensor -> why its scales do not fit it
        for k, t in enumerate(tensors):
            where = f"subgraph {s} tensor {k}"
            ttype = t.scalar(1, 1, signed=True)
            if ttype not in _KNOWN_TYPES:
                raise _Invalid(f"{where} has unknown type {ttype}")
            shape = t.numbers(0)
            if any(d < 0 for d in shape):
                raise _Invalid(f"{where} has a negative dimension {shape}")
            buf = t.scalar(2, 4)
            if buf >= max(len(buffers), 1):
                raise _Invalid(f"{where} refers to buffer {buf} of {len(buffers)}")
            if buffers and data_size[buf] and ttype in _TYPE_BYTES and 6 not in t.fields:  # not sparse
                expected = math.prod(shape) * _TYPE_BYTES[ttype]
                if data_size[buf] != expected:
                    raise _Invalid(f"{where} has shape {shape} of type {ttype} ({expected} bytes) but its "
                                   f"buffer {buf} holds {data_size[buf]} bytes")
            try:
                scales[k] = _quantization(r, t, shape, ttype, where)
            except _ScalesOffShape as exc:
                scales[k], off_shape[k] = (), str(exc)
        for field, role in ((1, "input"), (2, "output")):
            for i in g.numbers(field):
                if not 0 <= i < nt:
                    raise _Invalid(f"subgraph {s} {role} {i} is not one of its {nt} tensors")
        for k, op in enumerate(g.tables(3)):
            code = op.scalar(0, 4)
            if code >= len(codes):
                raise _Invalid(f"subgraph {s} op {k} uses operator code {code} of {len(codes)}")
            for field, role in ((1, "input"), (2, "output"), (8, "intermediate")):
                for i in op.numbers(field):
                    if not (-1 <= i < nt) or (i == -1 and role != "input"):
                        raise _Invalid(f"subgraph {s} op {k} {role} {i} is not one of its {nt} tensors")
            c = codes[code]
            builtin = max(c.scalar(3, 4, signed=True), c.scalar(0, 1, signed=True))
            if not (builtin == _CUSTOM and _string(r, c, 1) == DECODE_OP):
                for i in op.numbers(1):
                    if i in off_shape:  # read as numbers by a kernel
                        raise _Invalid(off_shape[i])
            _kernel_preconditions(names.get(builtin, ""), op, op.numbers(1), op.numbers(2), scales,
                                  f"subgraph {s} op {k}", option_names)
        for i in g.numbers(1) + g.numbers(2):
            if i in off_shape:
                raise _Invalid(off_shape[i])


def _string(r: _Reader, table: _Table, i: int) -> bytes:
    """String field ``i`` of ``table`` (b"" when absent)."""
    p = table.fields.get(i)
    if p is None:
        return b""
    start, n = r.vector(p, 1, f"{table.what} field {i}")
    return r.data[start:start + n]


def verify(data: bytes, source: str = "<bytes>", fix=None) -> None:
    """Raise :class:`ModelLoadError` (one line, naming ``source``) unless ``data`` is a well-formed
    TFLite flatbuffer whose offsets, indices, shapes and buffers are consistent.

    ``fix`` (called only on failure) says what the user should do about the file."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelLoadError(f"{source} is not a TFLite flatbuffer (no 'TFL3' identifier); "
                             "pass a .tflite file written by a TFLite converter")
    r = _Reader(bytes(data))
    try:
        model = r.table(r.deref(0, "the root offset"), "model")
        option_names, options_fields = _options_schema()
        _walk(r, model, "Model", options_fields)
        _semantics(r, model, option_names)
    except (_Invalid, struct.error, OverflowError) as exc:
        advice = fix() if fix else "regenerate it with the tool that wrote it"
        raise ModelLoadError(f"{source} is a corrupt TFLite model: {exc}; {advice}") from None
