"""The ops the C generator knows: each turns one TFLite op into a kernel call.

A kernel is a file in ``c/`` (only the kernels a model uses are emitted); an op
emitter checks the op's types and options, computes TFLite's integer parameters
(:mod:`edgec.emit.codegen.quant`) and returns the C statement that runs it.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

from edgec.emit.codegen import lut, quant, tables
from edgec.errors import UnsupportedOpError

RUNTIME = "edgec's C code generator"


class Unsupported(Exception):
    """Raised by an emitter: why this op (as configured) has no C kernel."""


def _int8(em, *indices: int) -> None:
    for i in indices:
        t = em.tfl.tensors[i]
        if t.dtype != "int8":
            raise Unsupported(f"tensor '{t.name}' is {t.dtype}, and only int8 activations are generated")


def _shape_nhwc(tfl, i: int) -> tuple[int, int, int]:
    shape = tfl.tensors[i].shape
    if len(shape) != 4 or shape[0] != 1:
        raise Unsupported(f"tensor '{tfl.tensors[i].name}' has shape {list(shape)}; only batch 1 NHWC is generated")
    return shape[1], shape[2], shape[3]


def _nhwc(em, i: int) -> tuple[int, int, int]:
    return _shape_nhwc(em.tfl, i)


def _zp(em, i: int) -> int:
    return int(em.tfl.tensors[i].zero_point or 0)


def _weights(em, op, expect_dims: int) -> np.ndarray:
    values = em.constant(op.inputs[1])
    t = em.tfl.tensors[op.inputs[1]]
    if values is None or t.dtype != "int8" or len(t.shape) != expect_dims:
        raise Unsupported("its weights are not a constant int8 tensor")
    if any(z != 0 for z in t.zero_points):
        raise Unsupported("its weights have a non-zero zero point")
    return values


def _act(em, op) -> tuple[int, int]:
    o = em.tfl.tensors[op.outputs[0]]
    return quant.activation_range(op.options.get("activation", 0), o.scale, _zp(em, op.outputs[0]))


def _filter_depth(shape, ic: int, oc: int) -> int:
    """CONV_2D: the filter's input depth (less than ``ic`` for a grouped convolution)."""
    fc = shape[3]
    if ic % fc or oc % (ic // fc):
        raise Unsupported(f"its {ic} input channels do not split into groups of {fc}")
    return fc


def _depth_multiplier(shape, ic: int, oc: int) -> int:
    """DEPTHWISE_CONV_2D: output channels per input channel."""
    if shape[3] != oc or oc % ic:
        raise Unsupported(f"its filter has {shape[3]} channels for {ic} inputs and {oc} outputs")
    return oc // ic


def _ceil4(n: int) -> int:
    return -(-n // 4) * 4


def _rows(em, op, w2d: np.ndarray, bias: np.ndarray | None, mult, shift, tag: str = "") -> str:
    """The ``struct ec_rows`` of a matrix product (``c/mat_mult.c``): weights (rows x k) in pairs of rows
    interleaved four bytes at a time, k zero-padded to a multiple of 4 and a zero row added to an odd
    count; the input offset folded into the bias; per-row multipliers and shifts."""
    rows, k = w2d.shape
    k4, even = _ceil4(k), rows + rows % 2
    padded = np.zeros((even, k4), np.int64)
    padded[:rows, :k] = w2d
    paired = padded.reshape(even // 2, 2, k4 // 4, 4).transpose(0, 2, 1, 3)
    in_offset = -_zp(em, op.inputs[0])
    folded = np.zeros(even, np.int64)
    folded[:rows] = (0 if bias is None else bias.astype(np.int64)) + in_offset * w2d.astype(np.int64).sum(axis=1)
    if np.abs(folded).max(initial=0) >= 2 ** 31:
        raise Unsupported("its bias plus the input offset times a row of weights overflows int32")
    ident = f"op{op.index}{tag}"
    bits = em.lut_bits.get(op.index)
    if bits:
        indices, tables_ = lut.pack(w2d, k4, bits)
        table = em.struct(f"{ident}_lut", "ec_lut", {"bits": bits,
                                                     "indices": em.array(f"{ident}_indices", "uint8_t", indices),
                                                     "tables": em.array(f"{ident}_tables", "int8_t", tables_)})
        stored = {"weights": "0", "lut": f"&{table}"}
    else:
        stored = {"weights": em.array(f"{ident}_weights", "int8_t", paired)}
    fields = {
        "k": k4, "rows": rows, **stored,
        "bias": em.array(f"{ident}_bias", "int32_t", folded),
        "mult": em.array(f"{ident}_mult", "int32_t", np.array(mult, np.int64)),
        "shift": em.array(f"{ident}_shift", "int8_t", np.array(shift, np.int64)),
        "out_offset": _zp(em, op.outputs[0]),
    }
    fields["act_min"], fields["act_max"] = _act(em, op)
    return em.initializer(fields)


def _bias_values(em, op, n: int) -> np.ndarray | None:
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return None
    values = em.constant(op.inputs[2])
    if values is None or values.dtype != np.int32 or values.size != n:
        raise Unsupported("its bias is not a constant int32 vector of one value per output channel")
    return values.reshape(-1)


def _channel_scales(em, op, n: int) -> list[float]:
    scales = em.tfl.tensors[op.inputs[1]].scales
    return list(scales) if len(scales) == n else list(scales[:1]) * n


def _conv_geometry(tfl, op) -> dict:
    """CONV_2D's shapes, padding and whether it reads its input in place (no im2col scratch)."""
    ih, iw, ic = _shape_nhwc(tfl, op.inputs[0])
    oh, ow, oc = _shape_nhwc(tfl, op.outputs[0])
    oc_w, kh, kw, fc = tfl.tensors[op.inputs[1]].shape
    sh, sw = op.options["stride"]
    dh, dw = op.options.get("dilation", (1, 1))
    g = {"in_h": ih, "in_w": iw, "in_c": ic, "out_h": oh, "out_w": ow, "out_c": oc, "k_h": kh, "k_w": kw,
         "stride_h": sh, "stride_w": sw, "dilation_h": dh, "dilation_w": dw,
         "pad_h": quant.padding(ih, oh, sh, (kh - 1) * dh + 1),
         "pad_w": quant.padding(iw, ow, sw, (kw - 1) * dw + 1), "group_c": fc}
    g["in_place"] = int(kh == kw == 1 and g["pad_h"] == g["pad_w"] == 0 and fc % 4 == 0)
    g["k"] = _ceil4(kh * kw * fc)
    return g


# A convolution whose rows are at most this long gets its own compiled copy of the kernel (loop bounds
# and strides folded in); longer ones share one copy, where the saving is small against the flash.
SPECIALIZE_MAX_K = 64


def conv_scratch(tfl, op) -> int:
    g = _conv_geometry(tfl, op)
    return 0 if g["in_place"] else 2 * g["k"]


def _product_weights(tfl, data: bytes, op) -> tuple[np.ndarray, int, int] | None:
    """A CONV_2D or FULLY_CONNECTED op's int8 weights as rows (output channels x k), k rounded up to 4, and
    the rows of one group; None for another op or weights that are not constant int8."""
    from edgec.load.tflite_file import constant_values

    if op.name not in ("CONV_2D", "FULLY_CONNECTED") or len(op.inputs) < 2:
        return None
    t = tfl.tensors[op.inputs[1]]
    values = constant_values(data, tfl, op.inputs[1])
    if values is None or t.dtype != "int8" or values.ndim < 2:
        return None
    w2d = values.reshape(values.shape[0], -1)
    if op.name == "FULLY_CONNECTED":
        return w2d, _ceil4(w2d.shape[1]), w2d.shape[0]
    ic, fc = tfl.tensors[op.inputs[0]].shape[-1], values.shape[-1]
    groups = ic // fc if fc and ic % fc == 0 else 1
    return w2d, _ceil4(w2d.shape[1]), w2d.shape[0] // groups


class LutChoice(NamedTuple):
    """How a product's weights are stored as indices and tables (:mod:`edgec.emit.codegen.lut`)."""

    bits: int     # index bits
    saved: int    # flash bytes saved against plain int8
    scratch: int  # bytes of decoded weights in its scratch buffer: a group's rows for a convolution (every
    #               pixel reads them), a pair of rows for a fully connected layer (read once)


def lut_choice(tfl, data: bytes, op) -> LutChoice | None:
    """How a CONV_2D's or FULLY_CONNECTED's weights take fewer bytes as indices and tables; None where plain
    int8 bytes are smaller or the op has no such weights."""
    found = _product_weights(tfl, data, op)
    if found is None:
        return None
    w2d, k4, group_rows = found
    bits = lut.choose(w2d, k4)
    if bits is None:
        return None
    even = w2d.shape[0] + w2d.shape[0] % 2
    scratch = 2 * k4 if op.name == "FULLY_CONNECTED" else (group_rows + group_rows % 2) * k4
    return LutChoice(bits, even * k4 - lut.packed_bytes(even, k4, bits), scratch)


def conv_2d(em, op) -> str:
    _int8(em, op.inputs[0], op.outputs[0])
    _nhwc(em, op.inputs[0])
    _nhwc(em, op.outputs[0])
    w = _weights(em, op, 4)
    g = _conv_geometry(em.tfl, op)
    ic, oc, fc = g["in_c"], g["out_c"], g["group_c"]
    _filter_depth(w.shape, ic, oc)
    groups = ic // fc
    per_group = oc // groups
    mult, shift = quant.per_channel_multipliers(em.tfl.tensors[op.inputs[0]].scale, _channel_scales(em, op, oc),
                                                em.tfl.tensors[op.outputs[0]].scale)
    bias = _bias_values(em, op, oc)
    w2d = w.reshape(oc, -1)
    rows = []
    for k in range(groups):
        part = slice(k * per_group, (k + 1) * per_group)
        rows.append(_rows(em, op, w2d[part], None if bias is None else bias[part], mult[part], shift[part],
                          tag=f"_g{k}" if groups > 1 else ""))
    rows_name = em.struct_array(f"op{op.index}_rows", "ec_rows", rows)
    fields = {key: g[key] for key in ("in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w",
                                      "stride_h", "stride_w", "dilation_h", "dilation_w", "pad_h", "pad_w")}
    fields.update(in_zero_point=_zp(em, op.inputs[0]), in_place=g["in_place"], groups=groups, group_c=fc,
                  rows=rows_name)
    params = em.struct(f"op{op.index}", "ec_conv_2d", fields)
    kernel = "ec_conv_2d" if g["k"] <= SPECIALIZE_MAX_K else "ec_conv_2d_shared"
    return f"{kernel}(&{params}, {em.ptr(op.inputs[0])}, {em.ptr(op.outputs[0])}, {em.scratch(op)});"


def depthwise_conv_2d(em, op) -> str:
    _int8(em, op.inputs[0], op.outputs[0])
    ih, iw, ic = _nhwc(em, op.inputs[0])
    oh, ow, oc = _nhwc(em, op.outputs[0])
    w = _weights(em, op, 4)
    _, kh, kw, _ = w.shape
    multiplier = _depth_multiplier(w.shape, ic, oc)
    sh, sw = op.options["stride"]
    dh, dw = op.options.get("dilation", (1, 1))
    mult, shift = quant.per_channel_multipliers(em.tfl.tensors[op.inputs[0]].scale, _channel_scales(em, op, oc),
                                                em.tfl.tensors[op.outputs[0]].scale)
    bias = _bias_values(em, op, oc)
    lo, hi = _act(em, op)
    fields = {"in_h": ih, "in_w": iw, "in_c": ic, "out_h": oh, "out_w": ow, "out_c": oc, "k_h": kh, "k_w": kw,
              "multiplier": multiplier, "stride_h": sh, "stride_w": sw, "dilation_h": dh, "dilation_w": dw,
              "pad_h": quant.padding(ih, oh, sh, (kh - 1) * dh + 1),
              "pad_w": quant.padding(iw, ow, sw, (kw - 1) * dw + 1),
              "in_offset": -_zp(em, op.inputs[0]), "out_offset": _zp(em, op.outputs[0]),
              "act_min": lo, "act_max": hi,
              **_channel_arrays(em, op, w, bias, mult, shift)}
    params = em.struct(f"op{op.index}", "ec_depthwise_conv_2d", fields)
    return f"ec_depthwise_conv_2d(&{params}, {em.ptr(op.inputs[0])}, {em.ptr(op.outputs[0])});"


def _window_overlap(tfl, op, kernel: tuple[int, int], group: int, reads_while_writing: bool) -> int:
    """How many bytes before its input a windowed op's output may start and still never overwrite an
    input byte it reads later. The kernel writes ``group`` output pixels at a time in order; with
    ``reads_while_writing`` it still reads those pixels' windows while it writes them (else it has
    copied them first). An output pixel reads no input pixel before its window's top-left corner."""
    ih, iw, ic = _shape_nhwc(tfl, op.inputs[0])
    oh, ow, oc = _shape_nhwc(tfl, op.outputs[0])
    (kh, kw), (sh, sw) = kernel, op.options["stride"]
    ph, pw = quant.padding(ih, oh, sh, kh), quant.padding(iw, ow, sw, kw)
    first = [max(y * sh - ph, 0) * iw + max(x * sw - pw, 0) for y in range(oh) for x in range(ow)]
    need = np.minimum.accumulate(np.array(first[::-1]))[::-1]  # the lowest input pixel read from here on
    pixels, distance = oh * ow, 0
    for start in range(0, pixels, group):
        end = min(start + group, pixels)
        later = start if reads_while_writing else end
        if later < pixels:
            distance = max(distance, end * oc - int(need[later]) * ic)
    return distance


def _effective(kh: int, kw: int, op) -> tuple[int, int]:
    """The kernel's extent with its dilation."""
    dh, dw = op.options.get("dilation", (1, 1))
    return (kh - 1) * dh + 1, (kw - 1) * dw + 1


def conv_overlap(tfl, op) -> tuple[int, int] | None:
    g = _conv_geometry(tfl, op)
    if g["group_c"] != g["in_c"]:  # a grouped one writes every pixel of a group before the next group reads
        return None
    return op.inputs[0], _window_overlap(tfl, op, _effective(g["k_h"], g["k_w"], op), 2, bool(g["in_place"]))


def depthwise_overlap(tfl, op) -> tuple[int, int]:
    _, kh, kw, _ = tfl.tensors[op.inputs[1]].shape
    return op.inputs[0], _window_overlap(tfl, op, _effective(kh, kw, op), 1, True)


def pool_overlap(tfl, op) -> tuple[int, int]:
    return op.inputs[0], _window_overlap(tfl, op, tuple(op.options["filter"]), 1, True)


def _fc_geometry(tfl, op) -> tuple[int, int, int]:
    """FULLY_CONNECTED: (batches, depth, units)."""
    units, depth = tfl.tensors[op.inputs[1]].shape
    return tfl.tensors[op.inputs[0]].elements // depth, depth, units


def fc_scratch(tfl, op) -> int:
    _, depth, _ = _fc_geometry(tfl, op)
    return 0 if depth % 4 == 0 else 2 * _ceil4(depth)


def fully_connected(em, op) -> str:
    _int8(em, op.inputs[0], op.outputs[0])
    if op.options.get("weights_format", 0) != 0:
        raise Unsupported("its weights use a shuffled format")
    w = _weights(em, op, 2)
    units, depth = w.shape
    i, o = em.tfl.tensors[op.inputs[0]], em.tfl.tensors[op.outputs[0]]
    if i.elements % depth or o.shape[-1] != units:
        raise Unsupported(f"its input of {i.elements} values does not split into rows of {depth}")
    scales = em.tfl.tensors[op.inputs[1]].scales
    if len(scales) > 1:
        mult, shift = quant.per_channel_multipliers(i.scale, scales, o.scale)
    else:
        m, s = quant.per_tensor_fc_multiplier(i.scale, scales[0], o.scale)
        mult, shift = [m] * units, [s] * units
    rows = _rows(em, op, w, _bias_values(em, op, units), mult, shift)
    params = em.struct(f"op{op.index}", "ec_fully_connected",
                       {"batches": i.elements // depth, "depth": depth, "rows": rows})
    kernel = "ec_fully_connected_padded" if depth % 4 else "ec_fully_connected"
    return f"{kernel}(&{params}, {em.ptr(op.inputs[0])}, {em.ptr(op.outputs[0])}, {em.scratch(op)});"


def _pool(kernel: str):
    def emit(em, op) -> str:
        _int8(em, op.inputs[0], op.outputs[0])
        i, o = em.tfl.tensors[op.inputs[0]], em.tfl.tensors[op.outputs[0]]
        if (i.scale, i.zero_point) != (o.scale, o.zero_point):
            raise Unsupported("its input and output quantization differ")
        ih, iw, c = _nhwc(em, op.inputs[0])
        oh, ow, _ = _nhwc(em, op.outputs[0])
        fh, fw = op.options["filter"]
        sh, sw = op.options["stride"]
        ph, pw = quant.padding(ih, oh, sh, fh), quant.padding(iw, ow, sw, fw)
        lo, hi = _act(em, op)
        return (f"{kernel}({em.ptr(op.inputs[0])}, {ih}, {iw}, {c}, {em.ptr(op.outputs[0])}, {oh}, {ow}, "
                f"{fh}, {fw}, {sh}, {sw}, {ph}, {pw}, {lo}, {hi});")
    return emit


def _strides(shape: tuple[int, ...]) -> list[int]:
    """Element strides of ``shape`` seen as 4-D, 0 along its size-1 dimensions (broadcast)."""
    full = (1,) * (4 - len(shape)) + tuple(shape)
    strides, step = [0] * 4, 1
    for d in range(3, -1, -1):
        strides[d] = 0 if full[d] == 1 else step
        step *= full[d]
    return strides


def _binary_shapes(em, op) -> dict:
    """The ``.shape`` field (``struct ec_broadcast``, c/broadcast.c) of a binary op's parameters."""
    a, b, o = (em.tfl.tensors[k] for k in (*op.inputs[:2], op.outputs[0]))
    if len(o.shape) > 4:
        raise Unsupported(f"its output has {len(o.shape)} dimensions (at most 4 are generated)")
    return {"shape": em.initializer({"dims": em.initializer_list(_dims4(o.shape)),
                                     "a_strides": em.initializer_list(_strides(a.shape)),
                                     "b_strides": em.initializer_list(_strides(b.shape))})}


def _binary_operand(em, op, k: int) -> str:
    """A binary op's input ``k``: an activation, or a constant (written as an array)."""
    i = op.inputs[k]
    if em.tfl.tensors[i].is_constant:
        values = em.constant(i)
        if values is None:
            raise Unsupported(f"its input {k} is a constant edgec cannot read")
        return em.array(f"op{op.index}_in{k}", "int8_t", values)
    return em.ptr(i)


def add(em, op) -> str:
    """ADD (double-precision parameters, as TFLite-Micro's add_common) and SUB (its parameters from float32
    arithmetic, as sub_common computes them)."""
    _int8(em, *op.inputs, op.outputs[0])
    a, b, o = (em.tfl.tensors[k] for k in (*op.inputs[:2], op.outputs[0]))
    if op.name == "SUB":
        fa, fb, fo = (np.float32(t.scale) for t in (a, b, o))
        twice = np.float32(2) * max(fa, fb)
        p = {"left_shift": 20, **dict(zip(("a_mult", "a_shift"), quant.quantize_multiplier(float(fa / twice)))),
             **dict(zip(("b_mult", "b_shift"), quant.quantize_multiplier(float(fb / twice)))),
             **dict(zip(("out_mult", "out_shift"),
                        quant.quantize_multiplier(float(twice / (np.float32(1 << 20) * fo)))))}
    else:
        p = quant.add_params(a.scale, b.scale, o.scale)
    lo, hi = _act(em, op)
    fields = {**_binary_shapes(em, op), "a_offset": -_zp(em, op.inputs[0]), "a_mult": p["a_mult"],
              "a_shift": p["a_shift"], "b_offset": -_zp(em, op.inputs[1]), "b_mult": p["b_mult"],
              "b_shift": p["b_shift"], "left_shift": p["left_shift"], "subtract": int(op.name == "SUB"),
              "out_mult": p["out_mult"], "out_shift": p["out_shift"], "out_offset": _zp(em, op.outputs[0]),
              "act_min": lo, "act_max": hi}
    params = em.struct(f"op{op.index}", "ec_add", fields)
    return (f"ec_add(&{params}, {_binary_operand(em, op, 0)}, {_binary_operand(em, op, 1)}, "
            f"{em.ptr(op.outputs[0])});")


def div(em, op) -> str:
    """DIV: the multiplier from float32 arithmetic, as TFLite-Micro's div.cc computes it."""
    _int8(em, *op.inputs, op.outputs[0])
    a, b, o = (em.tfl.tensors[k] for k in (*op.inputs[:2], op.outputs[0]))
    m, shift = quant.quantize_multiplier(float(np.float32(a.scale) / (np.float32(b.scale) * np.float32(o.scale))))
    lo, hi = _act(em, op)
    fields = {**_binary_shapes(em, op), "a_offset": -_zp(em, op.inputs[0]), "b_offset": -_zp(em, op.inputs[1]),
              "out_offset": _zp(em, op.outputs[0]), "mult": m, "shift": shift, "act_min": lo, "act_max": hi}
    params = em.struct(f"op{op.index}", "ec_div", fields)
    return (f"ec_div(&{params}, {_binary_operand(em, op, 0)}, {_binary_operand(em, op, 1)}, "
            f"{em.ptr(op.outputs[0])});")


def maximum(em, op) -> str:
    _int8(em, *op.inputs, op.outputs[0])
    params = em.struct(f"op{op.index}", "ec_maximum", {**_binary_shapes(em, op),
                                                       "minimum": int(op.name == "MINIMUM")})
    return (f"ec_maximum(&{params}, {_binary_operand(em, op, 0)}, {_binary_operand(em, op, 1)}, "
            f"{em.ptr(op.outputs[0])});")


def reshape(em, op) -> str:
    i, o = em.tfl.tensors[op.inputs[0]], em.tfl.tensors[op.outputs[0]]
    if i.nbytes != o.nbytes:
        raise Unsupported("its input and output sizes differ")
    if (i.scale, i.zero_point) != (o.scale, o.zero_point):
        raise Unsupported("its input and output quantization differ")
    if em.ptr(op.inputs[0]) == em.ptr(op.outputs[0]):
        return "/* RESHAPE: the output shares the input's bytes */"
    return f"ec_copy({em.ptr(op.inputs[0])}, {em.ptr(op.outputs[0])}, {o.nbytes});"


def _softmax_struct(em, op, input_multiplier: int, input_left_shift: int, diff_min: int,
                    reverse_multiplier: int = 0, reverse_shift: int = 0) -> str:
    i = em.tfl.tensors[op.inputs[0]]
    depth = i.shape[-1]
    return em.struct(f"op{op.index}", "ec_softmax", {
        "rows": i.elements // depth, "depth": depth, "input_multiplier": input_multiplier,
        "input_left_shift": input_left_shift, "diff_min": diff_min, "reverse_multiplier": reverse_multiplier,
        "reverse_shift": reverse_shift})


def _fixed_output(em, op, scale: float, zero_point: int, text: str) -> None:
    o = em.tfl.tensors[op.outputs[0]]
    if o.zero_point != zero_point or np.float32(o.scale) != np.float32(scale):
        raise Unsupported(f"its output is not quantized with scale {text} and zero point {zero_point}")


def softmax(em, op) -> str:
    _int8(em, op.inputs[0], op.outputs[0])
    _fixed_output(em, op, 1.0 / 256, -128, "1/256")
    mult, left_shift, diff_min = quant.softmax_params(op.options.get("beta", 1.0), em.tfl.tensors[op.inputs[0]].scale)
    params = _softmax_struct(em, op, mult, left_shift, diff_min)
    return f"ec_softmax(&{params}, {em.ptr(op.inputs[0])}, {em.ptr(op.outputs[0])});"


def log_softmax(em, op) -> str:
    _int8(em, op.inputs[0], op.outputs[0])
    _fixed_output(em, op, 16.0 / 256, 127, "16/256")
    mult, left_shift, diff_min, reverse, reverse_shift = quant.log_softmax_params(em.tfl.tensors[op.inputs[0]].scale)
    if reverse_shift > 0:
        raise Unsupported("its input scale makes the inverse scaling reach 1, which TFLite's kernel does not handle")
    params = _softmax_struct(em, op, mult, left_shift, diff_min, reverse, reverse_shift)
    return f"ec_log_softmax(&{params}, {em.ptr(op.inputs[0])}, {em.ptr(op.outputs[0])});"


def _same_quantization(em, a: int, b: int) -> None:
    ta, tb = em.tfl.tensors[a], em.tfl.tensors[b]
    if (np.float32(ta.scale), ta.zero_point) != (np.float32(tb.scale), tb.zero_point):
        raise Unsupported(f"tensors '{ta.name}' and '{tb.name}' are quantized differently")


def _dims4(shape) -> list[int]:
    if len(shape) > 4:
        raise Unsupported(f"it has {len(shape)} dimensions (at most 4 are generated)")
    return [1] * (4 - len(shape)) + [int(d) for d in shape]


def concatenation(em, op) -> str:
    _int8(em, *op.inputs, op.outputs[0])
    if op.options.get("activation", 0):
        raise Unsupported("it has a fused activation")
    out = em.tfl.tensors[op.outputs[0]]
    axis = op.options.get("axis", 0) % len(out.shape)
    for i in op.inputs:
        _same_quantization(em, i, op.outputs[0])
    blocks = int(np.prod(out.shape[:axis], dtype=np.int64))
    slices = [em.tfl.tensors[i].elements // blocks for i in op.inputs]
    sizes = em.array(f"op{op.index}_slices", "int", np.array(slices))
    pointers = ", ".join(em.ptr(i) for i in op.inputs)
    return (f"{{ const int8_t *const in_{op.index}[{len(op.inputs)}] = {{{pointers}}};\n"
            f"      ec_concatenation(in_{op.index}, {sizes}, {len(op.inputs)}, {blocks}, {em.ptr(op.outputs[0])}); }}")


def split(em, op) -> str:
    """SPLIT (axis, then data), SPLIT_V (data, sizes, axis) and UNPACK (data; the axis an option)."""
    data = op.inputs[1] if op.name == "SPLIT" else op.inputs[0]
    _int8(em, data, *op.outputs)
    shape = em.tfl.tensors[data].shape
    if op.name == "UNPACK":
        axis = op.options.get("axis", 0)
    else:
        given = em.constant(op.inputs[0] if op.name == "SPLIT" else op.inputs[2])
        if given is None:
            raise Unsupported("its axis is not a constant")
        axis = int(np.asarray(given).reshape(-1)[0])
    axis %= max(len(shape), 1)
    blocks = int(np.prod(shape[:axis], dtype=np.int64))
    slices = [em.tfl.tensors[i].elements // blocks for i in op.outputs]
    if sum(slices) * blocks != em.tfl.tensors[data].elements:
        raise Unsupported("its outputs do not add up to its input")
    sizes = em.array(f"op{op.index}_slices", "int", np.array(slices))
    pointers = ", ".join(em.ptr(i) for i in op.outputs)
    return (f"{{ int8_t *const out_{op.index}[{len(op.outputs)}] = {{{pointers}}};\n"
            f"      ec_split({em.ptr(data)}, out_{op.index}, {sizes}, {len(op.outputs)}, {blocks}); }}")


def _mean_geometry(em, op) -> tuple[int, int, int]:
    """MEAN over contiguous axes: (outer, reduced, inner) elements."""
    shape = em.tfl.tensors[op.inputs[0]].shape
    given = em.constant(op.inputs[1])
    if given is None:
        raise Unsupported("its axes are not a constant")
    axes = sorted({int(a) % len(shape) for a in np.asarray(given).reshape(-1)})
    if axes != list(range(axes[0], axes[-1] + 1)):
        raise Unsupported(f"it reduces the non-adjacent axes {axes}")
    outer = int(np.prod(shape[:axes[0]], dtype=np.int64))
    reduced = int(np.prod(shape[axes[0]:axes[-1] + 1], dtype=np.int64))
    return outer, reduced, int(np.prod(shape[axes[-1] + 1:], dtype=np.int64))


def mean_scratch(tfl, op) -> int:
    """The int32 sums of one row of outputs: at most one per output value."""
    return 4 * tfl.tensors[op.outputs[0]].elements


def mean(em, op) -> str:
    _int8(em, op.inputs[0], op.outputs[0])
    outer, reduced, inner = _mean_geometry(em, op)
    i, o = em.tfl.tensors[op.inputs[0]], em.tfl.tensors[op.outputs[0]]
    m, shift = quant.quantize_multiplier(float(np.float32(i.scale)) / float(np.float32(o.scale)))
    # QuantizedMeanOrSum folds 1 / count into the multiplier
    fold = min(reduced.bit_length() - 1, 32, 31 + shift)
    m, shift = (m << fold) // reduced, shift - fold
    params = em.struct(f"op{op.index}", "ec_mean", {
        "outer": outer, "reduced": reduced, "inner": inner, "in_zero_point": _zp(em, op.inputs[0]),
        "mult": m, "shift": shift, "out_zero_point": _zp(em, op.outputs[0])})
    return f"ec_mean(&{params}, {em.ptr(op.inputs[0])}, {em.ptr(op.outputs[0])}, {em.scratch(op)});"


def reduce_max(em, op) -> str:
    _int8(em, op.inputs[0], op.outputs[0])
    _same_quantization(em, op.inputs[0], op.outputs[0])
    outer, reduced, inner = _mean_geometry(em, op)
    params = em.struct(f"op{op.index}", "ec_reduce_max", {"outer": outer, "reduced": reduced, "inner": inner,
                                                          "minimum": int(op.name == "REDUCE_MIN")})
    return f"ec_reduce_max(&{params}, {em.ptr(op.inputs[0])}, {em.ptr(op.outputs[0])});"


def pad(em, op) -> str:
    _int8(em, op.inputs[0], op.outputs[0])
    _same_quantization(em, op.inputs[0], op.outputs[0])
    i, o = em.tfl.tensors[op.inputs[0]], em.tfl.tensors[op.outputs[0]]
    paddings = em.constant(op.inputs[1])
    if paddings is None:
        raise Unsupported("its paddings are not a constant")
    paddings = np.asarray(paddings).reshape(-1, 2)
    before = [0] * (4 - len(paddings)) + [int(b) for b in paddings[:, 0]]
    value = _zp(em, op.outputs[0])
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        given = em.constant(op.inputs[2])
        if given is None:
            raise Unsupported("its padding value is not a constant")
        value = int(np.asarray(given).reshape(-1)[0])
    fields = {"in_dims": em.initializer_list(_dims4(i.shape)), "out_dims": em.initializer_list(_dims4(o.shape)),
              "before": em.initializer_list(before), "value": value}
    params = em.struct(f"op{op.index}", "ec_pad", fields)
    return f"ec_pad(&{params}, {em.ptr(op.inputs[0])}, {em.ptr(op.outputs[0])});"


def mul(em, op) -> str:
    _int8(em, *op.inputs, op.outputs[0])
    a, b, o = (em.tfl.tensors[k] for k in (*op.inputs[:2], op.outputs[0]))
    m, shift = quant.quantize_multiplier(float(np.float32(a.scale)) * float(np.float32(b.scale))
                                         / float(np.float32(o.scale)))
    lo, hi = _act(em, op)
    fields = {**_binary_shapes(em, op),
              "a_offset": -_zp(em, op.inputs[0]), "b_offset": -_zp(em, op.inputs[1]),
              "out_offset": _zp(em, op.outputs[0]), "mult": m, "shift": shift, "act_min": lo, "act_max": hi}
    params = em.struct(f"op{op.index}", "ec_mul", fields)
    return (f"ec_mul(&{params}, {_binary_operand(em, op, 0)}, {_binary_operand(em, op, 1)}, "
            f"{em.ptr(op.outputs[0])});")


def _requantize8(em, op, real: float, lo: int, hi: int) -> str:
    o = em.tfl.tensors[op.outputs[0]]
    m, shift = quant.quantize_multiplier(real)
    return (f"ec_requantize8({em.ptr(op.inputs[0])}, {em.ptr(op.outputs[0])}, {o.elements}, {_zp(em, op.inputs[0])}, "
            f"{m}, {shift}, {_zp(em, op.outputs[0])}, {lo}, {hi});")


def prelu(em, op) -> str:
    _int8(em, *op.inputs[:2], op.outputs[0])
    x, a, o = (em.tfl.tensors[k] for k in (*op.inputs[:2], op.outputs[0]))
    alpha = em.constant(op.inputs[1])
    if alpha is None:
        raise Unsupported("its alpha is not a constant")
    pos = quant.quantize_multiplier(float(np.float32(x.scale)) / float(np.float32(o.scale)))
    neg = quant.quantize_multiplier(float(np.float32(x.scale)) * float(np.float32(a.scale))
                                    / float(np.float32(o.scale)))
    fields = {**_binary_shapes(em, op),
              "x_offset": -_zp(em, op.inputs[0]), "alpha_offset": -_zp(em, op.inputs[1]),
              "out_offset": _zp(em, op.outputs[0]), "mult_pos": pos[0], "shift_pos": pos[1],
              "mult_neg": neg[0], "shift_neg": neg[1]}
    params = em.struct(f"op{op.index}", "ec_prelu", fields)
    values = em.array(f"op{op.index}_alpha", "int8_t", alpha)
    return f"ec_prelu(&{params}, {em.ptr(op.inputs[0])}, {values}, {em.ptr(op.outputs[0])});"


def quantize(em, op) -> str:
    _int8(em, op.inputs[0], op.outputs[0])
    i, o = em.tfl.tensors[op.inputs[0]], em.tfl.tensors[op.outputs[0]]
    return _requantize8(em, op, float(np.float32(i.scale)) / float(np.float32(o.scale)), -128, 127)


def relu(em, op) -> str:
    """RELU: TFLite-Micro's ReluQuantized, its multiplier from the float32 ratio of the scales."""
    _int8(em, op.inputs[0], op.outputs[0])
    i, o = em.tfl.tensors[op.inputs[0]], em.tfl.tensors[op.outputs[0]]
    return _requantize8(em, op, float(np.float32(i.scale) / np.float32(o.scale)),
                        max(-128, _zp(em, op.outputs[0])), 127)


def _one_variable_input(em, op) -> bool:
    """The op's first input is its only one that is not a constant."""
    return [i for i in op.inputs if i >= 0 and not em.tfl.tensors[i].is_constant] == [op.inputs[0]]


def _run_alone(alone: bytes, values: np.ndarray, purpose: str) -> np.ndarray:
    """TFLite-Micro's output (flattened) for an op alone (``single_op_model``) on ``values``."""
    try:
        return tables.run_alone(alone, values, purpose)
    except tables.TableError as exc:
        raise Unsupported(str(exc)) from None


def lookup(em, op) -> str:
    """A unary int8 op as a 256-entry table: TFLite-Micro runs op ``op`` alone on every int8 value (in the
    table's order: 0..127, then -128..-1, as ``(uint8_t)x`` indexes it), so the table is its kernel's own
    function for this op's quantization and options."""
    from edgec.load.tflite_file import single_op_model

    _int8(em, op.inputs[0], op.outputs[0])
    if not _one_variable_input(em, op) or \
            em.tfl.tensors[op.inputs[0]].elements != em.tfl.tensors[op.outputs[0]].elements:
        raise Unsupported("it is not an elementwise function of one int8 input")
    values = np.arange(256, dtype=np.uint8).astype(np.int8).reshape(1, 256)
    table = _run_alone(single_op_model(em.data, op.index, 256), values, "tabulate")
    name = em.array(f"op{op.index}_table", "int8_t", table)
    n = em.tfl.tensors[op.outputs[0]].elements
    return f"ec_lookup({em.ptr(op.inputs[0])}, {em.ptr(op.outputs[0])}, {n}, {name});"


def _source_positions(em, op) -> np.ndarray:
    """For each output element of a data-moving op, the flat index of the input element it copies: TFLite-Micro
    runs the op alone on inputs whose values are the base-256 digits of each element's index, one run per
    digit. Raises Unsupported if an output is not a copy of one input element."""
    from edgec.load.tflite_file import single_op_model

    n = em.tfl.tensors[op.inputs[0]].elements
    alone = single_op_model(em.data, op.index)
    index = np.arange(n, dtype=np.int64)
    source = None
    digits = max(1, int(np.ceil(np.log(max(n, 2)) / np.log(256))))
    for k in range(digits):
        values = ((index >> (8 * k)) & 0xFF).astype(np.uint8).astype(np.int8).reshape(1, n)
        got = _run_alone(alone, values, "trace").astype(np.uint8).astype(np.int64)
        source = got << (8 * k) if source is None else source | (got << (8 * k))
    if source is None or source.max(initial=0) >= n:
        raise Unsupported("its outputs are not copies of its input's elements")
    return source


def gather(em, op) -> str:
    """An op that only moves values, as per-dimension offset tables (``c/gather.c``), traced on TFLite-Micro."""
    _int8(em, op.inputs[0], op.outputs[0])
    if not _one_variable_input(em, op):
        raise Unsupported("it has more than one input that is not a constant")
    # no check that input and output share their quantization: TFLite-Micro moves the bytes whatever it is
    # (a Bidirectional LSTM's REVERSE_V2 has two, measured), and the trace would not be copies otherwise
    shape = [int(d) for d in em.tfl.tensors[op.outputs[0]].shape] or [1]
    shape = [1] * (4 - len(shape)) + shape
    source = _source_positions(em, op).reshape(shape)
    rank = len(shape)
    base = int(source.reshape(-1)[0])
    axis = [source[tuple(slice(None) if d == k else 0 for d in range(rank))].reshape(-1) - base for k in range(rank)]
    rebuilt = base + sum(o.reshape([-1 if d == k else 1 for d in range(rank)]) for k, o in enumerate(axis))
    if not np.array_equal(rebuilt, source):
        raise Unsupported("its outputs do not follow one offset per output coordinate")
    # more than four dimensions: the leading ones become one, its offsets their sums
    lead = rank - 3
    merged = sum(o.reshape([-1 if d == k else 1 for d in range(lead)]) for k, o in enumerate(axis[:lead]))
    offsets = [np.asarray(merged).reshape(-1), *axis[lead:]]
    dims = [len(o) for o in offsets]
    tables = [em.array(f"op{op.index}_offsets{k}", "int32_t", o) for k, o in enumerate(offsets)]
    fields = {"dims": em.initializer_list(dims), "base": base, "offset": "{" + ", ".join(tables) + "}",
              "contiguous": int(np.array_equal(offsets[3], np.arange(dims[3])))}
    params = em.struct(f"op{op.index}", "ec_gather", fields)
    return f"ec_gather(&{params}, {em.ptr(op.inputs[0])}, {em.ptr(op.outputs[0])});"


def _trunc_div(a: int, b: int) -> int:
    """C's integer division (toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _bilinear_axis(out_size: int, in_size: int, align: bool, half: bool) -> tuple[list, list, list]:
    """ResizeBilinearInteger's source indices and 10-bit fractions along one axis."""
    scale = _trunc_div((1 << 10) * in_size + out_size // 2, out_size)
    if align and out_size > 1:
        scale = _trunc_div((1 << 10) * (in_size - 1) + (out_size - 1) // 2, out_size - 1)
    lo, hi, frac = [], [], []
    for v in range(out_size):
        scaled = v * scale + _trunc_div(scale, 2) - (1 << 9) if half else v * scale
        low = max(_trunc_div(scaled, 1 << 10), 0)
        lo.append(low)
        hi.append(min(_trunc_div(scaled + (1 << 10) - 1, 1 << 10), in_size - 1))
        frac.append(scaled - (1 << 10) * low)
    return lo, hi, frac


def resize_bilinear(em, op) -> str:
    _int8(em, op.inputs[0], op.outputs[0])
    ih, iw, c = _nhwc(em, op.inputs[0])
    oh, ow, _ = _nhwc(em, op.outputs[0])
    align, half = op.options.get("align_corners", False), op.options.get("half_pixel_centers", False)
    ys, xs = _bilinear_axis(oh, ih, align, half), _bilinear_axis(ow, iw, align, half)
    weight = max(abs(1024 - f) for f in ys[2] + xs[2]) if ys[2] + xs[2] else 1024
    if 4 * 128 * max(weight, 1024) ** 2 >= 2 ** 31:
        raise Unsupported("its interpolation weights would overflow the int32 sums")
    fields = {"in_w": iw, "channels": c, "out_h": oh, "out_w": ow}
    for axis, (lo, hi, frac) in (("y", ys), ("x", xs)):
        fields[f"{axis}0"] = em.array(f"op{op.index}_{axis}0", "int16_t", np.array(lo))
        fields[f"{axis}1"] = em.array(f"op{op.index}_{axis}1", "int16_t", np.array(hi))
        fields[f"f{axis}"] = em.array(f"op{op.index}_f{axis}", "int16_t", np.array(frac))
    params = em.struct(f"op{op.index}", "ec_resize_bilinear", fields)
    return f"ec_resize_bilinear(&{params}, {em.ptr(op.inputs[0])}, {em.ptr(op.outputs[0])});"


def _channel_arrays(em, op, w, bias, mult, shift) -> dict[str, str]:
    """The weights, bias (zeros if none), multipliers and shifts arrays of a per-channel kernel's struct."""
    n = len(mult)
    return {"weights": em.array(f"op{op.index}_weights", "int8_t", w),
            "bias": em.array(f"op{op.index}_bias", "int32_t", np.zeros(n, np.int64) if bias is None else bias),
            "mult": em.array(f"op{op.index}_mult", "int32_t", np.array(mult, np.int64)),
            "shift": em.array(f"op{op.index}_shift", "int8_t", np.array(shift, np.int64))}


def _transpose_padding(out_size: int, stride: int, kernel: int, padding: int) -> int:
    """TFLite-Micro's TRANSPOSE_CONV padding: ComputePaddingHeightWidth over the output's size."""
    windows = (out_size + stride - 1) // stride if padding == 0 else (out_size + stride - kernel) // stride
    return quant.padding(out_size, windows, stride, kernel)


def transpose_conv_scratch(tfl, op) -> int:
    return 4 * tfl.tensors[op.outputs[0]].elements


def transpose_conv(em, op) -> str:
    x, out = op.inputs[2], op.outputs[0]
    _int8(em, x, out)
    ih, iw, ic = _nhwc(em, x)
    oh, ow, oc = _nhwc(em, out)
    w = em.constant(op.inputs[1])
    t = em.tfl.tensors[op.inputs[1]]
    if w is None or t.dtype != "int8" or len(t.shape) != 4 or t.shape[0] != oc or t.shape[3] != ic:
        raise Unsupported("its weights are not a constant int8 [out, h, w, in] tensor")
    _, kh, kw, _ = t.shape
    sh, sw = op.options["stride"]
    scales = list(t.scales) if len(t.scales) == oc else list(t.scales[:1]) * oc
    mult, shift = quant.per_channel_multipliers(em.tfl.tensors[x].scale, scales, em.tfl.tensors[out].scale)
    bias = None
    if len(op.inputs) > 3 and op.inputs[3] >= 0:
        bias = em.constant(op.inputs[3])
        if bias is None or bias.dtype != np.int32 or bias.size != oc:
            raise Unsupported("its bias is not a constant int32 vector of one value per output channel")
    lo, hi = quant.activation_range(op.options.get("activation", 0), em.tfl.tensors[out].scale, _zp(em, out))
    fields = {"in_h": ih, "in_w": iw, "in_c": ic, "out_h": oh, "out_w": ow, "out_c": oc, "k_h": kh, "k_w": kw,
              "stride_h": sh, "stride_w": sw,
              "pad_h": _transpose_padding(oh, sh, kh, op.options["padding"]),
              "pad_w": _transpose_padding(ow, sw, kw, op.options["padding"]),
              "in_offset": -_zp(em, x), "out_offset": _zp(em, out), "act_min": lo, "act_max": hi,
              **_channel_arrays(em, op, w, bias, mult, shift)}
    params = em.struct(f"op{op.index}", "ec_transpose_conv", fields)
    return f"ec_transpose_conv(&{params}, {em.ptr(x)}, {em.ptr(out)}, {em.scratch(op)});"


# UNIDIRECTIONAL_SEQUENCE_LSTM's inputs (TFLite-Micro's lstm_shared.h): the input, then per gate in the
# kernel's order (forget, input, cell, output) its input weights, recurrent weights and bias; the hidden
# and cell state. The others (peepholes, projection, layer norms) are variants TFLite-Micro refuses too.
_LSTM_GATES = {"forget": (2, 6, 13), "input": (1, 5, 12), "cell": (3, 7, 14), "output": (4, 8, 15)}
_LSTM_HIDDEN, _LSTM_CELL = 18, 19
_LSTM_VARIANTS = (9, 10, 11, 16, 17, 20, 21, 22, 23)


def _lstm_sizes(tfl, op) -> tuple[int, int, int]:
    """(time steps, input depth, units) of a batch-1 LSTM."""
    shape = tfl.tensors[op.inputs[0]].shape
    if len(shape) != 3 or (shape[1] if op.options.get("time_major") else shape[0]) != 1:
        raise Unsupported(f"its input has shape {list(shape)}; only batch 1 [1, steps, features] is generated")
    steps = shape[0] if op.options.get("time_major") else shape[1]
    return steps, shape[2], tfl.tensors[op.inputs[_LSTM_GATES["forget"][0]]].shape[0]


def _sigmoid_table() -> tuple[int, ...]:
    try:
        return tables.sigmoid_table()
    except tables.TableError as exc:
        raise Unsupported(str(exc)) from None


def lstm_scratch(tfl, op) -> int:
    """Four int16 gate vectors, the int16 cell state and the int8 hidden state."""
    _, _, units = _lstm_sizes(tfl, op)
    return 5 * 2 * units + units


def lstm(em, op) -> str:
    """UNIDIRECTIONAL_SEQUENCE_LSTM, int8 x int8 -> int16 cell (TFLite-Micro's lstm_eval_common.cc for the
    parameters): each gate's two FCs requantized to Q3.12, the products of Q0.15 gate outputs to the cell's
    and the hidden state's scales."""
    t = em.tfl.tensors
    ins = op.inputs
    if len(ins) != 24 or any(ins[k] >= 0 for k in _LSTM_VARIANTS):
        raise Unsupported("it uses peepholes, a projection or layer normalization (a variant TFLite-Micro does "
                          "not run either)")
    _int8(em, op.inputs[0], op.outputs[0], ins[_LSTM_HIDDEN])
    hidden, cell = t[ins[_LSTM_HIDDEN]], t[ins[_LSTM_CELL]]
    if cell.dtype != "int16" or hidden.is_constant or cell.is_constant:
        raise Unsupported("its cell state is not an int16 variable (the int8 LSTM has one)")
    if op.options.get("proj_clip", 0.0) > 0:
        raise Unsupported("it clips a projection it does not have")
    steps, depth, units = _lstm_sizes(em.tfl, op)
    gate_scale = 2.0 ** -12     # the FC outputs: Q3.12, the nonlinearities' input
    unit_scale = 2.0 ** -15     # the gates' outputs: Q0.15
    x = t[op.inputs[0]]
    gates = []
    for gate, (w_in, w_rec, b) in _LSTM_GATES.items():
        fields = {}
        for part, w_index, source, bias in (("in", w_in, x, ins[b]), ("rec", w_rec, hidden, -1)):
            w = em.constant(ins[w_index])
            wt = t[ins[w_index]]
            if w is None or wt.dtype != "int8" or len(wt.scales) != 1 or any(wt.zero_points):
                raise Unsupported(f"its {gate} gate's weights are not constant int8, per tensor, zero point 0")
            if w.shape != ((units, depth) if part == "in" else (units, units)):
                raise Unsupported(f"its {gate} gate's weights have shape {list(w.shape)}")
            values = np.zeros(units, np.int64)
            if bias >= 0:
                given = em.constant(bias)
                if given is None or given.dtype != np.int32 or given.size != units:
                    raise Unsupported(f"its {gate} gate's bias is not a constant int32 vector")
                values = given.reshape(-1).astype(np.int64)
            folded = values - int(source.zero_point or 0) * w.astype(np.int64).sum(axis=1)
            if np.abs(folded).max(initial=0) >= 2 ** 31:
                raise Unsupported("a bias plus the input offset times a row of weights overflows int32")
            mult, shift = quant.per_tensor_fc_multiplier(source.scale, wt.scales[0], gate_scale)
            fields.update({f"{part}_weights": em.array(f"op{op.index}_{gate}_{part}_weights", "int8_t", w),
                           f"{part}_bias": em.array(f"op{op.index}_{gate}_{part}_bias", "int32_t", folded),
                           f"{part}_mult": mult, f"{part}_shift": shift})
        fields["tanh"] = int(gate == "cell")
        gates.append(em.initializer(fields))
    if op.options.get("activation") != 4:  # kTfLiteActTanh: the cell gate's nonlinearity
        raise Unsupported(f"its cell gate's activation is {op.options.get('activation')}, not tanh")
    cell_scale = float(np.float32(cell.scale))
    forget = quant.quantize_multiplier(unit_scale * cell_scale / cell_scale)
    product = quant.quantize_multiplier(unit_scale * unit_scale / cell_scale)
    out_mult = quant.quantize_multiplier(unit_scale * unit_scale / float(np.float32(hidden.scale)))
    # tanh(cell state): TFLite-Micro scales it by its power of two, 2^power = the cell's scale
    left = 15 + round(math.log2(cell_scale)) - 3
    tanh_mult, tanh_shift = (3, -left) if left < 0 else (3 << left, 0)
    clip = op.options.get("cell_clip", 0.0)
    quantized_clip = int(min(max(float(np.float32(clip)) / cell_scale, -32768.0), 32767.0)) if clip > 0 else 0
    fields = {"steps": steps, "in_depth": depth, "units": units, "gates": "{" + ", ".join(gates) + "}",
              "forget_mult": forget[0], "forget_shift": forget[1], "input_mult": product[0],
              "input_shift": product[1], "hidden_mult": out_mult[0], "hidden_shift": out_mult[1],
              "hidden_zero_point": _zp(em, ins[_LSTM_HIDDEN]), "cell_clip": quantized_clip,
              "cell_tanh_mult": tanh_mult, "cell_tanh_shift": tanh_shift,
              "sigmoid": em.array(f"op{op.index}_sigmoid", "uint16_t", np.array(_sigmoid_table()))}
    # TFLite-Micro copies the hidden state's bytes to the output whatever the output's quantization (the
    # converter gives a Bidirectional layer's forward output the concatenation's, not the state's: measured)
    if t[op.outputs[0]].elements != steps * units:
        raise Unsupported("its output is not the hidden state at every step")
    params = em.struct(f"op{op.index}", "ec_lstm", fields)
    return f"ec_lstm(&{params}, {em.ptr(op.inputs[0])}, {em.ptr(op.outputs[0])}, {em.scratch(op)});"


def elementwise_overlap(tfl, op) -> tuple[int, int] | None:
    """An op that reads each input element just before it writes the same output element (ADD, MUL,
    QUANTIZE): an input of the output's shape may be overwritten in place (the planner checks it dies)."""
    out = tfl.tensors[op.outputs[0]]
    same = [i for i in op.inputs[:2] if i >= 0 and tfl.tensors[i].shape == out.shape and not tfl.tensors[i].is_constant]
    return (same[0], 0) if same else None


# Elementwise int8 ops computed from a table of TFLite-Micro's own outputs (``lookup``).
LOOKUP_OPS = ("LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU", "ABS", "RELU6", "RELU_N1_TO_1", "ELU", "NEG",
              "GELU", "RSQRT", "SQRT", "LOG", "EXP", "SQUARE")

# Ops that only move values, traced on TFLite-Micro into per-dimension offsets (``gather``).
GATHER_OPS = ("STRIDED_SLICE", "SLICE", "TRANSPOSE", "RESIZE_NEAREST_NEIGHBOR", "BROADCAST_TO", "TILE",
              "REVERSE_V2", "GATHER", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "MIRROR_PAD", "SQUEEZE", "EXPAND_DIMS")

# op name -> (kernel files in c/, the kernel's own file last; emitter; scratch bytes it needs, given
# (model, op), or None). The scratch buffer lives in the planned arena only while its op runs.
SHARED_KERNELS = ("fixedpoint.c", "clamp.c", "simd.c")  # helpers several kernels use
_PRODUCT = (*SHARED_KERNELS, "mat_mult.c")
_BINARY = (*SHARED_KERNELS, "broadcast.c")
HELPER_KERNELS = (*_PRODUCT, "broadcast.c")  # not an op's own kernel


class Op(NamedTuple):
    files: tuple[str, ...]
    emit: Callable
    scratch: Callable | None = None
    # (model, op) -> (input tensor, bytes d): the output may start d bytes before that input's first
    # byte (overlapping it) if the input dies at this op; None if the kernel cannot run in place
    overlap: Callable | None = None


OPS: dict[str, Op] = {
    "CONV_2D": Op((*_PRODUCT, "conv_2d.c"), conv_2d, conv_scratch, conv_overlap),
    "DEPTHWISE_CONV_2D": Op((*SHARED_KERNELS, "depthwise_conv_2d.c"), depthwise_conv_2d, None,
                            depthwise_overlap),
    "FULLY_CONNECTED": Op((*_PRODUCT, "fully_connected.c"), fully_connected, fc_scratch),
    "AVERAGE_POOL_2D": Op(("clamp.c", "average_pool_2d.c"), _pool("ec_average_pool_2d"), None, pool_overlap),
    "MAX_POOL_2D": Op(("clamp.c", "max_pool_2d.c"), _pool("ec_max_pool_2d"), None, pool_overlap),
    "ADD": Op((*_BINARY, "add.c"), add, None, elementwise_overlap),
    "SUB": Op((*_BINARY, "add.c"), add, None, elementwise_overlap),
    "DIV": Op((*_BINARY, "div.c"), div, None, elementwise_overlap),
    "MAXIMUM": Op(("broadcast.c", "maximum.c"), maximum, None, elementwise_overlap),
    "MINIMUM": Op(("broadcast.c", "maximum.c"), maximum, None, elementwise_overlap),
    "MUL": Op((*_BINARY, "mul.c"), mul, None, elementwise_overlap),
    "PRELU": Op((*_BINARY, "prelu.c"), prelu, None, elementwise_overlap),
    "QUANTIZE": Op(("fixedpoint.c", "clamp.c", "requantize.c"), quantize, None, elementwise_overlap),
    "RELU": Op(("fixedpoint.c", "clamp.c", "requantize.c"), relu, None, elementwise_overlap),
    **{kind: Op(("lookup.c",), lookup, None, elementwise_overlap) for kind in LOOKUP_OPS},
    **{kind: Op((*SHARED_KERNELS, "gather.c"), gather) for kind in GATHER_OPS},
    "TRANSPOSE_CONV": Op(("fixedpoint.c", "clamp.c", "transpose_conv.c"), transpose_conv, transpose_conv_scratch),
    "CONCATENATION": Op((*SHARED_KERNELS, "concatenation.c"), concatenation),
    **{kind: Op((*SHARED_KERNELS, "split.c"), split) for kind in ("SPLIT", "SPLIT_V", "UNPACK")},
    "RESIZE_BILINEAR": Op(("resize_bilinear.c",), resize_bilinear),
    "MEAN": Op(("fixedpoint.c", "clamp.c", "mean.c"), mean, mean_scratch),
    "REDUCE_MAX": Op(("reduce_max.c",), reduce_max),
    "REDUCE_MIN": Op(("reduce_max.c",), reduce_max),
    "PAD": Op((*SHARED_KERNELS, "pad.c"), pad),
    "PADV2": Op((*SHARED_KERNELS, "pad.c"), pad),
    "RESHAPE": Op(("reshape.c",), reshape),
    "SOFTMAX": Op((*SHARED_KERNELS, "softmax.c"), softmax),
    "LOG_SOFTMAX": Op((*SHARED_KERNELS, "softmax.c"), log_softmax),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": Op((*SHARED_KERNELS, "lstm.c"), lstm, lstm_scratch),
}

# Ops that only reinterpret bytes: their output may share their input's storage.
ALIAS_OPS = ("RESHAPE",)


WAY_OUT = ("deploy it with TFLite-Micro instead: `edgec build` or `edgec check` with a target that runs it "
           "(cortex-m4, not cortex-m4-c), without --emit c")


def unsupported(op, reason: str) -> UnsupportedOpError:
    return UnsupportedOpError(RUNTIME, op.name, op.index, reason, way_out=WAY_OUT)
