"""Parse a TFLite flatbuffer into plain Python objects: tensors, ops, MACs.

Uses the schema module that ``ai-edge-litert`` ships (it needs only the
``flatbuffers`` package), so reading a model costs milliseconds and no
TensorFlow import.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from edgec.errors import ModelLoadError, UnsupportedOpError
from edgec.load import flatbuffer_check, limits

# TFLite-Micro's DECODE op (LUT-compressed weights, edgec.convert.lut), as an op of TFLiteModel.ops is named
DECODE = "CUSTOM:" + flatbuffer_check.DECODE_OP.decode()
_TENSOR_TYPES = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string",
    6: "bool", 7: "int16", 8: "complex64", 9: "int8", 10: "float64",
    11: "complex128", 12: "uint64", 13: "resource", 14: "variant", 15: "uint32",
    16: "uint16", 17: "int4",
}
_DTYPE_BYTES = {"float32": 4, "float16": 2, "int32": 4, "uint8": 1, "int64": 8,
                "bool": 1, "int16": 2, "int8": 1, "float64": 8, "uint32": 4,
                "uint16": 2, "uint64": 8, "int4": 1}


def schema():
    """LiteRT's generated flatbuffer classes for the TFLite schema (``ModelT`` and the rest)."""
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def pack(model, size_hint: int = 0) -> bytes:
    """A ``schema().ModelT`` (edited) back to flatbuffer bytes, with TFLite's file identifier."""
    import flatbuffers

    builder = flatbuffers.Builder(size_hint + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One tensor of the graph, with its int8 quantization if it has one."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    is_constant: bool

    @property
    def scale(self) -> float | None:
        return self.scales[0] if self.scales else None

    @property
    def zero_point(self) -> int | None:
        return self.zero_points[0] if self.zero_points else None

    @property
    def elements(self) -> int:
        return int(math.prod(self.shape)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.elements * _DTYPE_BYTES.get(self.dtype, 1)

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "scale": self.scale, "zero_point": self.zero_point}


@dataclasses.dataclass(frozen=True)
class Op:
    """One operator: its builtin name, tensor indices, work and weights."""

    index: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    macs: int
    params: int
    options: dict


@dataclasses.dataclass(frozen=True)
class TFLiteModel:
    """What edgec needs to know about a TFLite model, read from its bytes."""

    nbytes: int
    tensors: tuple[Tensor, ...]
    ops: tuple[Op, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    @property
    def input(self) -> Tensor:
        return self.tensors[self.inputs[0]]

    @property
    def output(self) -> Tensor:
        return self.tensors[self.outputs[0]]

    @property
    def op_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(op.name for op in self.ops).items()))

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)

    @property
    def params(self) -> int:
        return sum(op.params for op in self.ops)

    def find_op(self, name: str, index: int | None = None) -> Op | None:
        """The op at ``index`` if it is a ``name``, else the first ``name`` op."""
        if index is not None and 0 <= index < len(self.ops) and self.ops[index].name == name:
            return self.ops[index]
        return next((op for op in self.ops if op.name == name), None)

    def describe_op(self, op: Op) -> str:
        """``op #3 (output tensor 'model/conv/Relu')``: where an op sits, for messages."""
        out = f" (output tensor '{self.tensors[op.outputs[0]].name}')" if op.outputs else ""
        return f"op #{op.index}{out}"

    def locate(self, exc: UnsupportedOpError, describe: Callable[[Op], str] | None = None) -> UnsupportedOpError:
        """``exc`` (an :class:`~edgec.errors.UnsupportedOpError`) naming where its op sits:
        ``describe(op)`` (a Keras layer, say), by default :meth:`describe_op`."""
        op = self.find_op(exc.op, exc.index)
        return exc.at((describe or self.describe_op)(op)) if op else exc

    def lifetimes(self) -> dict[int, tuple[int, int]]:
        """Activation tensor -> (first op, last op) during which it must be kept in memory."""
        last_op = len(self.ops) - 1
        life = {i: (0, 0) for i in self.inputs}
        for op in self.ops:
            for i in op.outputs:
                life.setdefault(i, (op.index, op.index))
            for i in op.inputs:
                if i >= 0 and not self.tensors[i].is_constant:
                    first, _ = life.get(i, (0, 0))
                    life[i] = (first, op.index)
        for i in self.outputs:
            life[i] = (life.get(i, (last_op, last_op))[0], last_op)
        return life

    def live_tensors(self) -> list[list[int]]:
        """Per op, the activation tensors alive while it runs; their bytes summed are what a memory
        plan cannot go below at that op (TFLite-Micro's arena adds alignment and its own structures)."""
        live: list[list[int]] = [[] for _ in self.ops]
        for i, (first, last) in sorted(self.lifetimes().items()):
            for k in range(max(first, 0), min(last, len(self.ops) - 1) + 1):
                live[k].append(i)
        return live

    @property
    def peak_live_bytes(self) -> int:
        """The largest sum of activation bytes live at one op: what any runtime needs at least."""
        return max((sum(self.tensors[i].nbytes for i in live) for live in self.live_tensors()), default=0)

    def float_tensors(self) -> list[Tensor]:
        """Non-constant tensors that are not integer-quantized."""
        return [t for t in self.tensors if not t.is_constant and t.dtype in ("float32", "float16")]

    def activation_types(self) -> set[str]:
        """The element types of the non-constant tensors: int8, int16 in a 16x8 model, int32 shapes and the like."""
        return {t.dtype for t in self.tensors if not t.is_constant}


def _options(op, schema) -> dict:
    """The builtin options edgec reads: strides, padding, filters and fused activations of the
    conv/pool/fully-connected/elementwise ops, softmax's beta, concatenation's axis, a reduction's keep_dims."""
    t = op.BuiltinOptionsType()
    table = op.BuiltinOptions()
    if table is None:
        return {}
    kinds = schema.BuiltinOptions
    if t == kinds.Conv2DOptions:
        o = schema.Conv2DOptions()
        o.Init(table.Bytes, table.Pos)
        return {"stride": (o.StrideH(), o.StrideW()), "padding": o.Padding(),
                "dilation": (o.DilationHFactor(), o.DilationWFactor()),
                "activation": o.FusedActivationFunction()}
    if t == kinds.DepthwiseConv2DOptions:
        o = schema.DepthwiseConv2DOptions()
        o.Init(table.Bytes, table.Pos)
        return {"stride": (o.StrideH(), o.StrideW()), "padding": o.Padding(),
                "depth_multiplier": o.DepthMultiplier(),
                "dilation": (o.DilationHFactor(), o.DilationWFactor()),
                "activation": o.FusedActivationFunction()}
    if t == kinds.Pool2DOptions:
        o = schema.Pool2DOptions()
        o.Init(table.Bytes, table.Pos)
        return {"filter": (o.FilterHeight(), o.FilterWidth()),
                "stride": (o.StrideH(), o.StrideW()), "padding": o.Padding(),
                "activation": o.FusedActivationFunction()}
    if t == kinds.FullyConnectedOptions:
        o = schema.FullyConnectedOptions()
        o.Init(table.Bytes, table.Pos)
        return {"activation": o.FusedActivationFunction(), "weights_format": o.WeightsFormat()}
    if t in (kinds.AddOptions, kinds.SubOptions, kinds.MulOptions, kinds.DivOptions):
        o = {kinds.AddOptions: schema.AddOptions, kinds.SubOptions: schema.SubOptions,
             kinds.MulOptions: schema.MulOptions, kinds.DivOptions: schema.DivOptions}[t]()
        o.Init(table.Bytes, table.Pos)
        return {"activation": o.FusedActivationFunction()}
    if t == kinds.UnidirectionalSequenceLSTMOptions:
        o = schema.UnidirectionalSequenceLSTMOptions()
        o.Init(table.Bytes, table.Pos)
        return {"time_major": bool(o.TimeMajor()), "activation": o.FusedActivationFunction(),
                "cell_clip": float(o.CellClip()), "proj_clip": float(o.ProjClip())}
    if t == kinds.SoftmaxOptions:
        o = schema.SoftmaxOptions()
        o.Init(table.Bytes, table.Pos)
        return {"beta": float(o.Beta())}
    if t == kinds.TransposeConvOptions:
        o = schema.TransposeConvOptions()
        o.Init(table.Bytes, table.Pos)
        return {"stride": (o.StrideH(), o.StrideW()), "padding": o.Padding(),
                "activation": o.FusedActivationFunction()}
    if t == kinds.ResizeBilinearOptions:
        o = schema.ResizeBilinearOptions()
        o.Init(table.Bytes, table.Pos)
        return {"align_corners": bool(o.AlignCorners()), "half_pixel_centers": bool(o.HalfPixelCenters())}
    if t == kinds.UnpackOptions:
        o = schema.UnpackOptions()
        o.Init(table.Bytes, table.Pos)
        return {"axis": o.Axis(), "num": o.Num()}
    if t == kinds.ConcatenationOptions:
        o = schema.ConcatenationOptions()
        o.Init(table.Bytes, table.Pos)
        return {"axis": o.Axis(), "activation": o.FusedActivationFunction()}
    if t == kinds.ReducerOptions:
        o = schema.ReducerOptions()
        o.Init(table.Bytes, table.Pos)
        return {"keep_dims": bool(o.KeepDims())}
    return {}


def _decoded(model, graph, tensors: list[Tensor], ins: tuple[int, ...], outs: tuple[int, ...]) -> list[dict]:
    """What a DECODE op decodes, per output (its inputs are an (encoded, ancillary) pair per output): the LUT
    index bits from the ancillary tensor's metadata (None for another kind of decompression), the element
    type, and the output's channels and whether they are its last axis, which pick TFLite-Micro's decoder."""
    out = []
    for k, index in enumerate(outs):
        t, q = tensors[index], graph.Tensors(index).Quantization()
        last = len(t.scales) > 1 and q.QuantizedDimension() == len(t.shape) - 1
        bits = None
        if 2 * k + 1 < len(ins) and ins[2 * k + 1] >= 0:
            buf = model.Buffers(graph.Tensors(ins[2 * k + 1]).Buffer())
            dcm = buf.DataAsNumpy() if buf.DataLength() >= 16 else None
            if dcm is not None and dcm[0] == 0:  # decode type 0: LUT (byte 5: its index bits)
                bits = int(dcm[5]) & 0x07
        out.append({"bits": bits, "dtype": t.dtype, "elements": t.elements, "channels": max(len(t.scales), 1),
                    "channels_last": last})
    return out


def _work(name: str, ins: list[Tensor | None], outs: list[Tensor], options: dict) -> tuple[int, int]:
    """(MACs, weight parameters) of one op, from its tensor shapes."""
    out = outs[0] if outs else None
    if name == DECODE:  # TFLite-Micro's weight decompression: its outputs are the weights
        return 0, sum(t.elements for t in outs)
    consts = [t for t in ins if t is not None and t.is_constant]
    params = sum(t.elements for t in consts)
    if out is None:
        return 0, params
    if name == "CONV_2D" and len(ins) > 1 and ins[1] is not None:
        _, kh, kw, cin = ins[1].shape
        return out.elements * kh * kw * cin, params
    if name == "DEPTHWISE_CONV_2D" and len(ins) > 1 and ins[1] is not None:
        _, kh, kw, _ = ins[1].shape
        return out.elements * kh * kw, params
    if name == "FULLY_CONNECTED" and len(ins) > 1 and ins[1] is not None:
        return out.elements * ins[1].shape[-1], params
    if name == "TRANSPOSE_CONV" and len(ins) > 2 and ins[1] is not None and ins[2] is not None:
        cout, kh, kw, _ = ins[1].shape
        return ins[2].elements * kh * kw * cout, params
    if name == "BATCH_MATMUL" and len(ins) > 1 and ins[0] is not None:
        return out.elements * ins[0].shape[-1], params
    if name in ("UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM") and ins and ins[0] is not None:
        return _lstm_macs(name, ins, options), params
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D") and "filter" in options:
        fh, fw = options["filter"]
        return out.elements * fh * fw, params
    return 0, params


# Inputs of UNIDIRECTIONAL_SEQUENCE_LSTM that multiply the input or the state each time step: input
# (1-4) and recurrent (5-8) weights of the four gates, and the projection (16); absent ones (CIFG,
# no projection) are -1. BIDIRECTIONAL_SEQUENCE_LSTM has the backward direction's at 18-21, 22-25, 33.
_LSTM_WEIGHTS = {"UNIDIRECTIONAL_SEQUENCE_LSTM": (*range(1, 9), 16),
                 "BIDIRECTIONAL_SEQUENCE_LSTM": (*range(1, 9), 16, *range(18, 26), 33)}


def _lstm_macs(name: str, ins: list, options: dict) -> int:
    """MACs of a sequence LSTM op: per time step, each gate's input and recurrent weight matrix
    (4 gates x (input + hidden) x hidden) and the projection, times the time steps."""
    shape = ins[0].shape
    steps = (shape[0] if options.get("time_major") else shape[1]) if len(shape) == 3 else 1
    batch = (shape[1] if options.get("time_major") else shape[0]) if len(shape) == 3 else shape[0]
    weights = sum(ins[i].elements for i in _LSTM_WEIGHTS[name] if i < len(ins) and ins[i] is not None)
    return int(weights * steps * batch)


EDGEC_BUILT = "edgec"  # ``made_by`` of a flatbuffer edgec converted itself


def producer(data: bytes) -> str:
    """What the file says about the tool that wrote it: the flatbuffer's ``description``
    (``MLIR Converted.``, ``TOCO Converted.``, Vela's ...) and its ``min_runtime_version``
    record; "" when it says nothing (or cannot be read that far)."""
    try:
        m = schema().Model.GetRootAsModel(data, 0)
        parts = [m.Description().decode("utf-8", "replace").strip()] if m.Description() else []
        for i in range(m.MetadataLength()):
            meta = m.Metadata(i)
            if meta.Name() == b"min_runtime_version" and 0 <= meta.Buffer() < m.BuffersLength():
                raw = m.Buffers(meta.Buffer()).DataAsNumpy()
                if not isinstance(raw, int):
                    version = bytes(raw).split(b"\0")[0].decode("ascii", "replace")
                    parts.append(f"min_runtime_version {version}")
        return ", ".join(p for p in parts if p)[:120]
    except Exception:  # noqa: BLE001 - a corrupt file may not get that far; it then says nothing
        return ""


def fix_for(data: bytes, made_by: str | None = None) -> str:
    """What to do about a flatbuffer the runtimes or checks refuse: a file edgec converted is
    edgec's bug to report; any other file goes back to the tool that wrote it (never "rebuild
    with edgec build", which cannot help with a file someone else made)."""
    if made_by == EDGEC_BUILT:
        return ("edgec converted this file itself, so this is a bug in edgec or in the TFLite converter; please "
                "report it with the model")
    said = producer(data)
    tool = (f"the tool that wrote it (the file says: {said})" if said
            else "the tool that wrote it (the file does not say which)")
    return f"regenerate it with {tool}, or report the file to that tool's authors"


def read_tflite(data: bytes, source: str = "<bytes>", made_by: str | None = None) -> TFLiteModel:
    """Parse TFLite flatbuffer bytes.

    Args:
        data: the file's bytes.
        source: a name for error messages.
        made_by: :data:`EDGEC_BUILT` when edgec converted the bytes itself (its messages then
            say it is a bug to report, not a file to regenerate).

    Returns:
        The parsed :class:`TFLiteModel` (first subgraph).

    Raises:
        ModelLoadError: the bytes are not a TFLite flatbuffer.
    """
    fb = schema()
    flatbuffer_check.verify(data, source, fix=lambda: fix_for(data, made_by))
    try:
        model = fb.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("no subgraph")
        graph = model.Subgraphs(0)
        names = flatbuffer_check.op_names()
        codes = []
        for i in range(model.OperatorCodesLength()):
            c = model.OperatorCodes(i)
            code = max(c.BuiltinCode(), c.DeprecatedBuiltinCode())
            if code == fb.BuiltinOperator.CUSTOM:
                codes.append("CUSTOM:" + (c.CustomCode() or b"?").decode("utf-8", "replace"))
            else:
                codes.append(names.get(code, f"BUILTIN_{code}"))
        tensors = []
        for i in range(graph.TensorsLength()):
            t = graph.Tensors(i)
            q = t.Quantization()
            scales = tuple(float(s) for s in q.ScaleAsNumpy()) if q is not None and q.ScaleLength() else ()
            zps = tuple(int(z) for z in q.ZeroPointAsNumpy()) if q is not None and q.ZeroPointLength() else ()
            buf = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
            has_data = buf is not None and (buf.DataLength() > 0 or buf.Size() > 0)
            shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            tensors.append(Tensor(i, (t.Name() or b"").decode("utf-8", "replace"), shape,
                                  _TENSOR_TYPES.get(t.Type(), f"type{t.Type()}"),
                                  scales, zps, bool(has_data)))
        ops = []
        for i in range(graph.OperatorsLength()):
            o = graph.Operators(i)
            name = codes[o.OpcodeIndex()]
            ins = tuple(int(x) for x in o.InputsAsNumpy()) if o.InputsLength() else ()
            outs = tuple(int(x) for x in o.OutputsAsNumpy()) if o.OutputsLength() else ()
            opts = _options(o, fb) if name != DECODE else {"lut": _decoded(model, graph, tensors, ins, outs)}
            macs, params = _work(name, [tensors[x] if x >= 0 else None for x in ins],
                                 [tensors[x] for x in outs], opts)
            ops.append(Op(i, name, ins, outs, macs, params, opts))
        inputs = tuple(int(x) for x in graph.InputsAsNumpy())
        outputs = tuple(int(x) for x in graph.OutputsAsNumpy())
    except ModelLoadError:
        raise
    except Exception as exc:  # flatbuffers raises assorted errors on bad bytes
        raise ModelLoadError(f"{source} is not a readable TFLite model ({type(exc).__name__}: {exc}); "
                             f"{fix_for(data, made_by)}") from None
    return TFLiteModel(len(data), tuple(tensors), tuple(ops), inputs, outputs)


def with_every_op_output(data: bytes, tfl: TFLiteModel) -> tuple[bytes, list[int]]:
    """A copy of ``data`` whose graph outputs are every op's first output, in execution order
    (the model's own outputs first), so an interpreter that returns only graph outputs
    (TFLite-Micro's Python runtime) shows each op's result.

    Returns:
        The rewritten flatbuffer and, per graph output of it, the op index that writes it
        (-1 for the model's own outputs).
    """
    fb = schema()
    model = fb.ModelT.InitFromPackedBuf(bytearray(data), 0)
    graph = model.subgraphs[0]
    extra = [(op.index, op.outputs[0]) for op in tfl.ops if op.outputs and op.outputs[0] not in tfl.outputs]
    graph.outputs = [*tfl.outputs, *(t for _, t in extra)]
    return pack(model, len(data)), [-1] * len(tfl.outputs) + [i for i, _ in extra]


def with_signature(data: bytes, key: str = "serving_default") -> bytes:
    """A copy of a one-subgraph ``data`` with a signature ``key`` naming its inputs ``input_<k>`` and outputs
    ``output_<k>`` (a conversion from a concrete function has none; tools that run signatures need one)."""
    fb = schema()
    model = fb.ModelT.InitFromPackedBuf(bytearray(data), 0)
    graph = model.subgraphs[0]

    def entries(kind: str, indices) -> list:
        out = []
        for k, index in enumerate(indices):
            entry = fb.TensorMapT()
            entry.name, entry.tensorIndex = f"{kind}_{k}".encode(), int(index)
            out.append(entry)
        return out

    signature = fb.SignatureDefT()
    signature.inputs, signature.outputs = entries("input", graph.inputs), entries("output", graph.outputs)
    signature.signatureKey, signature.subgraphIndex = key.encode(), 0
    model.signatureDefs = [signature]
    return pack(model, len(data))


def single_op_model(data: bytes, op_index: int, elements: int | None = None) -> bytes:
    """A model of op ``op_index`` of ``data`` alone (same types and quantization, same options; its
    constant inputs kept), its first input and its output resized to ``[1, elements]`` when ``elements`` is
    given: to evaluate an op on chosen values, for example an elementwise one on all 256 int8 values."""
    import copy


    fb = schema()
    model = fb.ModelT.InitFromPackedBuf(bytearray(data), 0)
    graph = model.subgraphs[0]
    op = graph.operators[op_index]
    tensors: list = []
    remap: dict[int, int] = {}
    for role, index in [("io", op.inputs[0]), ("io", op.outputs[0]), *(("const", i) for i in op.inputs[1:] if i >= 0)]:
        t = copy.copy(graph.tensors[index])
        if role == "io":
            t.shapeSignature, t.buffer = None, 0
            if elements is not None:
                t.shape = [1, elements]
        remap[index] = len(tensors)
        tensors.append(t)
    op.inputs = [remap.get(i, -1) if i >= 0 else -1 for i in op.inputs]
    op.outputs = [remap[op.outputs[0]]]
    op.intermediates = []
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [0], [1], [op]
    model.subgraphs, model.signatureDefs = [graph], []
    return pack(model, len(data))


def int16_activation_model(op_name: str, elements: int, input_scale: float) -> bytes:
    """A model of one int16 elementwise op (``LOGISTIC``, ``TANH``): input ``[1, elements]`` with
    ``input_scale``, output Q0.15 (the scale TFLite requires), both zero point 0."""
    fb = schema()
    code = getattr(fb.BuiltinOperator, op_name)
    model = fb.ModelT()
    model.version = 3
    model.operatorCodes = [fb.OperatorCodeT()]
    model.operatorCodes[0].builtinCode = code
    model.operatorCodes[0].deprecatedBuiltinCode = min(code, 127)
    model.operatorCodes[0].version = 1
    model.buffers = [fb.BufferT()]
    tensors = []
    for name, scale in (("x", input_scale), ("y", 1.0 / 32768)):
        t = fb.TensorT()
        t.shape, t.type, t.buffer, t.name = [1, elements], fb.TensorType.INT16, 0, name
        t.quantization = fb.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = [scale], [0]
        tensors.append(t)
    op = fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    graph = fb.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [0], [1], [op]
    model.subgraphs = [graph]
    return pack(model)


def read_tflite_file(path: str | Path) -> tuple[bytes, TFLiteModel]:
    """Read and parse a ``.tflite`` file; errors name the path and the fix."""
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"model file {p} does not exist; check the path")
    if not p.is_file():
        raise ModelLoadError(f"{p} is not a file; pass a .tflite file")
    limits.check_file_size(p, "model")
    data = p.read_bytes()
    tfl = read_tflite(data, str(p))
    limits.check_memory(tfl.peak_live_bytes, f"{p}'s activations")
    return data, tfl


_INTEGER_RANGES = {"int8": (-128, 127, np.int8), "int16": (-32768, 32767, np.int16)}


def quantize(x: np.ndarray, tensor: Tensor) -> np.ndarray:
    """Float values to the tensor's integer representation (int8, or int16 for 16x8 models), as TFLite's
    QUANTIZE kernel does: round half away from zero (``std::round``; ``np.round`` would round half to
    even), add the zero point, clip."""
    scale, zero_point = _qparams(tensor)
    lo, hi, dtype = _INTEGER_RANGES.get(tensor.dtype, _INTEGER_RANGES["int8"])
    v = np.asarray(x, np.float64) / scale
    q = np.sign(v) * np.floor(np.abs(v) + 0.5) + zero_point
    return np.clip(q, lo, hi).astype(dtype)


def integer_range(tensor: Tensor) -> tuple[int, int]:
    """The representable values of a quantized tensor (int8 unless it is int16)."""
    lo, hi, _ = _INTEGER_RANGES.get(tensor.dtype, _INTEGER_RANGES["int8"])
    return lo, hi


def dequantize(q: np.ndarray, tensor: Tensor) -> np.ndarray:
    """Integer values to float with the tensor's scale and zero point."""
    scale, zero_point = _qparams(tensor)
    return (np.asarray(q, np.float32) - zero_point) * scale


def _qparams(tensor: Tensor) -> tuple[float, int]:
    if tensor.scale is None or tensor.zero_point is None:
        raise ValueError(f"tensor '{tensor.name}' ({tensor.dtype}) is not quantized")
    return tensor.scale, tensor.zero_point


_WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


_NUMPY_TYPES = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "uint8": np.uint8,
                "int64": np.int64, "bool": np.bool_, "int16": np.int16, "int8": np.int8,
                "float64": np.float64, "uint32": np.uint32, "uint16": np.uint16, "uint64": np.uint64}


def constant_values(data: bytes, tfl: TFLiteModel, index: int) -> np.ndarray | None:
    """The values of constant tensor ``index`` with its dtype and shape, or None if it has no data."""
    t = tfl.tensors[index]
    dtype = _NUMPY_TYPES.get(t.dtype)
    if not t.is_constant or dtype is None:
        return None
    fb = schema()
    model = fb.Model.GetRootAsModel(data, 0)
    buf = model.Buffers(model.Subgraphs(0).Tensors(index).Buffer())
    if buf.DataLength():
        raw = buf.DataAsNumpy().tobytes()
    elif buf.Size():  # data stored after the flatbuffer (models over 2 GB)
        raw = data[int(buf.Offset()):int(buf.Offset()) + int(buf.Size())]
    else:
        return None
    values: np.ndarray = np.frombuffer(raw, dtype)
    return values.reshape(t.shape) if values.size == t.elements else values


def weight_inputs(tfl: TFLiteModel) -> Iterator[tuple[Op, int]]:
    """(op, weight tensor index) of every conv/depthwise/fully-connected/transposed-conv op with int8 weights."""
    for op in tfl.ops:
        if op.name not in _WEIGHT_OPS or len(op.inputs) < 2:
            continue
        w_index = op.inputs[1]  # TRANSPOSE_CONV's too: its inputs are output shape, weights, input
        if w_index >= 0 and tfl.tensors[w_index].dtype == "int8":
            yield op, w_index


def weight_arrays(data: bytes, tfl: TFLiteModel) -> list[tuple[int, np.ndarray]]:
    """(op index, int8 weight values) of every conv/depthwise/fully-connected op with constant weights."""
    out = []
    for op, w_index in weight_inputs(tfl):
        values = constant_values(data, tfl, w_index)
        if values is not None:
            out.append((op.index, values.reshape(-1)))
    return out


def weight_sparsity(data: bytes, tfl: TFLiteModel) -> float:
    """Fraction of zero int8 weight values over all conv/depthwise/fully-connected weights."""
    arrays = [v for _, v in weight_arrays(data, tfl)]
    total = sum(v.size for v in arrays)
    return float(sum(int((v == 0).sum()) for v in arrays) / total) if total else 0.0
