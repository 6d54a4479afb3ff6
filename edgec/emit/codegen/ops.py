"""The ops the C generator knows: each turns one TFLite op into a kernel call.

A kernel is a file in ``c/`` (only the kernels a model uses are emitted); an op
emitter checks the op's types and options, computes TFLite's integer parameters
(:mod:`edgec.emit.codegen.quant`) and returns the C statement that runs it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from edgec.emit.codegen import quant
from edgec.errors import UnsupportedOpError

RUNTIME = "edgec's C code generator"


class Unsupported(Exception):
    """Raised by an emitter: why this op (as configured) has no C kernel."""


def _int8(em, *indices: int) -> None:
    for i in indices:
        t = em.tfl.tensors[i]
        if t.dtype != "int8":
            raise Unsupported(f"tensor '{t.name}' is {t.dtype}, and only int8 activations are generated")


def _nhwc(em, i: int) -> tuple[int, int, int]:
    shape = em.tfl.tensors[i].shape
    if len(shape) != 4 or shape[0] != 1:
        raise Unsupported(f"tensor '{em.tfl.tensors[i].name}' has shape {list(shape)}; only batch 1 NHWC is generated")
    return shape[1], shape[2], shape[3]


def _zp(em, i: int) -> int:
    return int(em.tfl.tensors[i].zero_point or 0)


def _bias(em, op, n: int) -> str:
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return "0"
    values = em.constant(op.inputs[2])
    if values is None or values.dtype != np.int32 or values.size != n:
        raise Unsupported("its bias is not a constant int32 vector of one value per output channel")
    return em.array(f"op{op.index}_bias", "int32_t", values)


def _weights(em, op, expect_dims: int) -> np.ndarray:
    values = em.constant(op.inputs[1])
    t = em.tfl.tensors[op.inputs[1]]
    if values is None or t.dtype != "int8" or len(t.shape) != expect_dims:
        raise Unsupported("its weights are not a constant int8 tensor")
    if any(z != 0 for z in t.zero_points):
        raise Unsupported("its weights have a non-zero zero point")
    return values


def _requant(em, op, scales) -> tuple[str, str]:
    i, o = em.tfl.tensors[op.inputs[0]], em.tfl.tensors[op.outputs[0]]
    mult, shift = quant.per_channel_multipliers(i.scale, scales, o.scale)
    return (em.array(f"op{op.index}_mult", "int32_t", np.array(mult, np.int64)),
            em.array(f"op{op.index}_shift", "int32_t", np.array(shift, np.int64)))


def _act(em, op) -> tuple[int, int]:
    o = em.tfl.tensors[op.outputs[0]]
    return quant.activation_range(op.options.get("activation", 0), o.scale, _zp(em, op.outputs[0]))


def _no_dilation(op) -> None:
    # The converter lowers Keras' dilated convolutions to SPACE_TO_BATCH_ND + CONV_2D +
    # BATCH_TO_SPACE_ND, so a dilated CONV_2D never reached a test: refused, not guessed.
    if tuple(op.options.get("dilation", (1, 1))) != (1, 1):
        raise Unsupported(f"its dilation {tuple(op.options['dilation'])} is not generated (only 1x1)")


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


def _convolution(kernel: str, per_filter: Callable):
    """CONV_2D and DEPTHWISE_CONV_2D, whose kernels take the same arguments but one:
    ``per_filter(filter shape, in channels, out channels)`` checks the filter and returns it."""
    def emit(em, op) -> str:
        _int8(em, op.inputs[0], op.outputs[0])
        _no_dilation(op)
        ih, iw, ic = _nhwc(em, op.inputs[0])
        oh, ow, oc = _nhwc(em, op.outputs[0])
        w = _weights(em, op, 4)
        _, kh, kw, _ = w.shape
        extra = per_filter(w.shape, ic, oc)
        sh, sw = op.options["stride"]
        ph, pw = quant.padding(ih, oh, sh, kh), quant.padding(iw, ow, sw, kw)
        scales = em.tfl.tensors[op.inputs[1]].scales
        scales = scales if len(scales) == oc else scales[:1] * oc
        mult, shift = _requant(em, op, scales)
        lo, hi = _act(em, op)
        wname = em.array(f"op{op.index}_weights", "int8_t", w)
        return (f"{kernel}({em.ptr(op.inputs[0])}, {ih}, {iw}, {ic}, {wname}, {kh}, {kw}, {extra}, "
                f"{_bias(em, op, oc)}, {em.ptr(op.outputs[0])}, {oh}, {ow}, {oc}, {sh}, {sw}, {ph}, {pw}, "
                f"{-_zp(em, op.inputs[0])}, {_zp(em, op.outputs[0])}, {mult}, {shift}, {lo}, {hi});")
    return emit


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
        mult, shift = _requant(em, op, scales)
        per_channel = 1
    else:
        m, s = quant.per_tensor_fc_multiplier(i.scale, scales[0], o.scale)
        mult = em.array(f"op{op.index}_mult", "int32_t", np.array([m], np.int64))
        shift = em.array(f"op{op.index}_shift", "int32_t", np.array([s], np.int64))
        per_channel = 0
    lo, hi = _act(em, op)
    wname = em.array(f"op{op.index}_weights", "int8_t", w)
    return (f"ec_fully_connected({em.ptr(op.inputs[0])}, {i.elements // depth}, {depth}, {wname}, "
            f"{_bias(em, op, units)}, {em.ptr(op.outputs[0])}, {units}, {-_zp(em, op.inputs[0])}, 0, "
            f"{_zp(em, op.outputs[0])}, {mult}, {shift}, {per_channel}, {lo}, {hi});")


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


def add(em, op) -> str:
    _int8(em, *op.inputs, op.outputs[0])
    a, b, o = (em.tfl.tensors[k] for k in (*op.inputs[:2], op.outputs[0]))
    if len(o.shape) > 4:
        raise Unsupported(f"its output has {len(o.shape)} dimensions (at most 4 are generated)")
    out = (1,) * (4 - len(o.shape)) + tuple(o.shape)
    p = quant.add_params(a.scale, b.scale, o.scale)
    lo, hi = _act(em, op)
    dims = em.array(f"op{op.index}_dims", "int", np.array(out))
    sa = em.array(f"op{op.index}_a_strides", "int", np.array(_strides(a.shape)))
    sb = em.array(f"op{op.index}_b_strides", "int", np.array(_strides(b.shape)))
    return (f"ec_add({em.ptr(op.inputs[0])}, {em.ptr(op.inputs[1])}, {em.ptr(op.outputs[0])}, {dims}, "
            f"{sa}, {sb}, {-_zp(em, op.inputs[0])}, {p['a_mult']}, {p['a_shift']}, "
            f"{-_zp(em, op.inputs[1])}, {p['b_mult']}, {p['b_shift']}, {p['left_shift']}, "
            f"{p['out_mult']}, {p['out_shift']}, {_zp(em, op.outputs[0])}, {lo}, {hi});")


def reshape(em, op) -> str:
    i, o = em.tfl.tensors[op.inputs[0]], em.tfl.tensors[op.outputs[0]]
    if i.nbytes != o.nbytes:
        raise Unsupported("its input and output sizes differ")
    if (i.scale, i.zero_point) != (o.scale, o.zero_point):
        raise Unsupported("its input and output quantization differ")
    if em.ptr(op.inputs[0]) == em.ptr(op.outputs[0]):
        return "/* RESHAPE: the output shares the input's bytes */"
    return f"ec_copy({em.ptr(op.inputs[0])}, {em.ptr(op.outputs[0])}, {o.nbytes});"


def softmax(em, op) -> str:
    _int8(em, op.inputs[0], op.outputs[0])
    i, o = em.tfl.tensors[op.inputs[0]], em.tfl.tensors[op.outputs[0]]
    if o.zero_point != -128 or np.float32(o.scale) != np.float32(1.0 / 256):
        raise Unsupported("its output is not quantized with scale 1/256 and zero point -128")
    mult, left_shift, diff_min = quant.softmax_params(op.options.get("beta", 1.0), i.scale)
    depth = i.shape[-1]
    return (f"ec_softmax({em.ptr(op.inputs[0])}, {em.ptr(op.outputs[0])}, {i.elements // depth}, {depth}, "
            f"{mult}, {left_shift}, {diff_min});")


# op name -> (kernel files in c/, the kernel's own file last; emitter)
SHARED_KERNELS = ("fixedpoint.c", "clamp.c")  # helpers several kernels use
OPS: dict[str, tuple[tuple[str, ...], Callable]] = {
    "CONV_2D": ((*SHARED_KERNELS, "conv_2d.c"), _convolution("ec_conv_2d", _filter_depth)),
    "DEPTHWISE_CONV_2D": ((*SHARED_KERNELS, "depthwise_conv_2d.c"),
                          _convolution("ec_depthwise_conv_2d", _depth_multiplier)),
    "FULLY_CONNECTED": ((*SHARED_KERNELS, "fully_connected.c"), fully_connected),
    "AVERAGE_POOL_2D": (("clamp.c", "average_pool_2d.c"), _pool("ec_average_pool_2d")),
    "MAX_POOL_2D": (("clamp.c", "max_pool_2d.c"), _pool("ec_max_pool_2d")),
    "ADD": ((*SHARED_KERNELS, "add.c"), add),
    "RESHAPE": (("reshape.c",), reshape),
    "SOFTMAX": ((*SHARED_KERNELS, "softmax.c"), softmax),
}

# Ops that only reinterpret bytes: their output may share their input's storage.
ALIAS_OPS = ("RESHAPE",)


def unsupported(op, reason: str) -> UnsupportedOpError:
    return UnsupportedOpError(RUNTIME, op.name, op.index, reason)
