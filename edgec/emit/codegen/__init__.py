"""Interpreter-free C for an int8 TFLite model.

``generate`` writes portable C99: one ``<name>_infer(const int8_t *in, int8_t
*out)`` (``in0, in1, ..., out0, ...`` for several inputs and outputs), the
weights as ``const`` arrays, one static activation buffer planned
by :mod:`edgec.emit.codegen.plan`, and kernels (``c/*.c``) only for the ops the model
uses, each following TFLite's integer arithmetic so that outputs are bit-exact
with TFLite-Micro (checked by :mod:`edgec.emit.codegen.crosscheck`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from importlib import resources

import numpy as np

from edgec.emit.c_array import c_identifier
from edgec.emit.codegen import ops as op_registry
from edgec.emit.codegen.lut import widths as lut_widths
from edgec.emit.codegen.plan import plan
from edgec.errors import ConfigError
from edgec.load.tflite_file import TFLiteModel, constant_values

_C_TYPES = {"int8_t": np.int8, "int32_t": np.int32, "int": np.int32}


@dataclasses.dataclass
class Generated:
    """The generated sources and what edgec knows about them."""

    name: str
    files: dict[str, str]
    arena_bytes: int
    input_bytes: int     # every input, packed
    output_bytes: int    # every output, packed
    kernels: list[str]
    scratch: dict[int, int] = dataclasses.field(default_factory=dict)   # op index -> scratch bytes in the arena
    in_place: dict[int, int] = dataclasses.field(default_factory=dict)  # op index -> bytes its output starts
    #                                                                      before the input it overwrites
    lut_bits: dict[int, int] = dataclasses.field(default_factory=dict)  # op index -> bits of its indexed weights

    def to_dict(self) -> dict:
        return {"name": self.name, "files": sorted(self.files), "arena_bytes": self.arena_bytes,
                "input_bytes": self.input_bytes, "output_bytes": self.output_bytes,
                "kernels": self.kernels, "scratch_bytes": sum(self.scratch.values()),
                "ops_in_place": len(self.in_place),
                "lut_ops": [{"op": k, "bits": v} for k, v in sorted(self.lut_bits.items())]}


def _kernel(file: str) -> str:
    return resources.files("edgec.emit.codegen").joinpath("c", file).read_text()


class _Emitter:
    """Collects constant arrays and resolves tensors to C pointers while ops are emitted."""

    def __init__(self, name: str, data: bytes, tfl: TFLiteModel, layout, lut_bits: dict[int, int]):
        self.name, self.data, self.tfl = name, data, tfl
        self.lut_bits = lut_bits  # op index -> index bits of its look-up-table weights
        self.storage, self.offsets, self.scratch_offsets = layout.storage, layout.offsets, layout.scratch
        self.arrays: list[str] = []
        self.reads_input: set[int] = set()

    def constant(self, index: int):
        return constant_values(self.data, self.tfl, index)

    def array(self, ident: str, ctype: str, values) -> str:
        flat = np.asarray(values).reshape(-1).astype(np.int64)
        lines = [", ".join(str(int(v)) for v in flat[k:k + 16]) for k in range(0, flat.size, 16)]
        body = ",\n    ".join(lines)
        full = f"{self.name}_{ident}"
        self.arrays.append(f"static const {ctype} {full}[{flat.size}] = {{\n    {body}\n}};\n")
        return full

    @staticmethod
    def initializer(fields: dict, separator: str = ", ") -> str:
        """A C99 designated initializer, ``{ .k = 16, .rows = 8, ... }``."""
        return "{ " + separator.join(f".{key} = {value}" for key, value in fields.items()) + " }"

    @staticmethod
    def initializer_list(values) -> str:
        """``{1, 2, 3}``: an array member's initializer."""
        return "{" + ", ".join(str(int(v)) for v in values) + "}"

    def struct(self, ident: str, ctype: str, fields: dict) -> str:
        """A ``static const struct <ctype>`` of a kernel's parameters, by field name."""
        full = f"{self.name}_{ident}"
        body = self.initializer(fields, separator=",\n    ")
        self.arrays.append(f"static const struct {ctype} {full} = {body};\n")
        return full

    def struct_array(self, ident: str, ctype: str, initializers: list[str]) -> str:
        full = f"{self.name}_{ident}"
        body = ",\n    ".join(initializers)
        self.arrays.append(f"static const struct {ctype} {full}[{len(initializers)}] = {{\n    {body}\n}};\n")
        return full

    def scratch(self, op) -> str:
        """The kernel's scratch buffer in the arena (a null pointer when it needs none)."""
        offset = self.scratch_offsets.get(op.index)
        return "0" if offset is None else f"({self.name}_arena + {offset})"

    def ptr(self, index: int) -> str:
        root = self.storage.get(index, index)
        if root in self.tfl.inputs:
            self.reads_input.add(self.tfl.inputs.index(root))
            return _argument("in", self.tfl.inputs.index(root), len(self.tfl.inputs))
        if index in self.tfl.outputs:
            return _argument("out", self.tfl.outputs.index(index), len(self.tfl.outputs))
        if root not in self.offsets:
            raise op_registry.Unsupported(f"tensor '{self.tfl.tensors[index].name}' is a constant where the kernel "
                                          "takes an activation")
        return f"({self.name}_arena + {self.offsets[root]})"


def _comment_safe(text: str) -> str:
    """A tensor name inside a C comment: printable ASCII, no comment delimiters."""
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text).replace("*/", "*?").replace("/*", "?*")[:80]


def _argument(kind: str, k: int, count: int) -> str:
    """The entry point's parameter for input or output ``k``: ``in``/``out`` when there is one."""
    return kind if count == 1 else f"{kind}{k}"


def _io_macros(up: str, kind: str, tensors: list) -> list[str]:
    """``<UP>_INFER_INPUT_SIZE`` ... for one tensor, ``<UP>_INFER_INPUT0_SIZE`` ... for several."""
    lines = []
    for k, t in enumerate(tensors):
        tag = _argument(kind, k, len(tensors))
        where = f"tensor '{_comment_safe(t.name)}', shape {list(t.shape)}"
        lines += [f"#define {up}_INFER_{tag}_SIZE {t.elements}  /* {where} */",
                  f"#define {up}_INFER_{tag}_SCALE {float(np.float32(t.scale))!r}f",
                  f"#define {up}_INFER_{tag}_ZERO_POINT ({t.zero_point})"]
    return lines


def _lut_choices(tfl: TFLiteModel, data: bytes) -> dict[int, op_registry.LutChoice]:
    """op index -> how its weights are packed, for the products whose packed weights save more flash than
    the decoder for their width adds."""
    choices = {op.index: c for op in tfl.ops if (c := op_registry.lut_choice(tfl, data, op))}
    saved: dict[int, int] = {}
    for c in choices.values():
        saved[c.bits] = saved.get(c.bits, 0) + c.saved
    kept = lut_widths(saved)
    return {k: c for k, c in choices.items() if c.bits in kept}


def _lut_defines(lut_bits: dict[int, int]) -> str:
    """The macros that compile look-up-table decoding into the kernels, for the widths the model uses."""
    if not lut_bits:
        return ""
    return "\n/* look-up-table weights (c/mat_mult.c) */\n#define EC_LUT 1\n" + "".join(
        f"#define EC_LUT_BITS_{bits} 1\n" for bits in sorted(set(lut_bits.values())))


def generate(data: bytes, tfl: TFLiteModel, name: str, source: str = "model", lut: bool = False) -> Generated:
    """C99 sources ``<name>_infer.h`` and ``<name>_infer.c`` for the int8 model ``tfl`` (bytes ``data``);
    with ``lut``, the weights of convolutions and fully connected layers with few values per output
    channel are stored as indices and tables where that takes less flash (:mod:`edgec.emit.codegen.lut`).

    Raises:
        UnsupportedOpError: an op has no C kernel, or its types/options are not generated.
        ConfigError: an output is also an input, or a tensor is an output twice.
    """
    name = c_identifier(name).lower()
    up = name.upper()
    if set(tfl.inputs) & set(tfl.outputs) or len(set(tfl.outputs)) != len(tfl.outputs):
        raise ConfigError(f"{source} passes an input straight to an output (or names one output twice); "
                          "C code is generated for outputs that an op computes")
    for op in tfl.ops:
        if op.name not in op_registry.OPS:
            raise op_registry.unsupported(op, "it has no C kernel (there are kernels for "
                                          + ", ".join(sorted(op_registry.OPS)) + ")")
    aliases = {}
    for op in tfl.ops:
        if op.name in op_registry.ALIAS_OPS and op.outputs[0] not in tfl.outputs:
            aliases[op.outputs[0]] = op.inputs[0]
    def ask(op, what: str, otherwise):
        """An op's registry answer (its scratch bytes, how it may overlap its input), or ``otherwise`` where
        it has none or its shapes are wrong (its emitter then says what is wrong)."""
        entry = getattr(op_registry.OPS[op.name], what)
        try:
            return entry(tfl, op) if entry else otherwise
        except (op_registry.Unsupported, ValueError, KeyError):
            return otherwise

    packed = _lut_choices(tfl, data) if lut else {}
    lut_bits = {k: c.bits for k, c in packed.items()}
    scratch = {op.index: ask(op, "scratch", 0) + (packed[op.index].scratch if op.index in packed else 0)
               for op in tfl.ops}
    layout = plan(tfl, aliases, scratch, lambda op: ask(op, "overlap", None))
    em = _Emitter(name, data, tfl, layout, lut_bits)
    calls, kernels = [], []
    for op in tfl.ops:
        files, emit = op_registry.OPS[op.name][:2]
        try:
            call = emit(em, op)
        except op_registry.Unsupported as exc:
            raise op_registry.unsupported(op, str(exc)) from None
        shapes = " -> ".join("x".join(map(str, tfl.tensors[i].shape)) for i in (op.inputs[0], op.outputs[0]))
        calls.append(f"    /* op {op.index}: {op.name} {shapes} */\n    {call}\n    {up}_OP_DONE({op.index});")
        if not call.startswith("/*"):  # a comment: the op needs no code (an alias)
            kernels += [f for f in files if f not in kernels]
    ins = [tfl.tensors[k] for k in tfl.inputs]
    outs = [tfl.tensors[k] for k in tfl.outputs]
    params = ", ".join([f"const int8_t *{_argument('in', k, len(ins))}" for k in range(len(ins))]
                       + [f"int8_t *{_argument('out', k, len(outs))}" for k in range(len(outs))])
    packed_in = np.cumsum([0] + [t.nbytes for t in ins]).tolist()
    packed_out = np.cumsum([0] + [t.nbytes for t in outs]).tolist()
    packed_args = ", ".join([f"(in) + {packed_in[k]}" for k in range(len(ins))]
                            + [f"(out) + {packed_out[k]}" for k in range(len(outs))])
    described = "; ".join([f"`{_argument('in', k, len(ins))}` holds {up}_INFER_{_argument('INPUT', k, len(ins))}_SIZE "
                           "int8 values" for k in range(len(ins))]
                          + [f"`{_argument('out', k, len(outs))}` receives "
                             f"{up}_INFER_{_argument('OUTPUT', k, len(outs))}_SIZE" for k in range(len(outs))])
    digest = hashlib.sha256(data).hexdigest()[:16]
    guard = f"{up}_INFER_H"
    header = f"""/* Generated by edgec from {source} (sha256 {digest}...). Do not edit.
 * Interpreter-free int8 inference, bit-exact with TFLite-Micro's reference kernels. */
#ifndef {guard}
#define {guard}

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

/* {up}_INFER_*: named apart from {name}_model_settings.h's macros, so that a firmware can include
 * both (to compare this code with the interpreter). */
{chr(10).join(_io_macros(up, "INPUT", ins) + _io_macros(up, "OUTPUT", outs))}
/* bytes of the static activation buffer inside {name}.c */
#define {up}_INFER_ARENA_SIZE {layout.arena_bytes}

/* Runs one inference: {described}. Not reentrant: it uses one static buffer. */
void {name}_infer({params});

/* The same with every input packed one after another in `in` and every output in `out`. */
#define {up}_INFER_PACKED_INPUT_SIZE {packed_in[-1]}
#define {up}_INFER_PACKED_OUTPUT_SIZE {packed_out[-1]}
#define {up}_INFER_PACKED(in, out) {name}_infer({packed_args})

#ifdef __cplusplus
}}
#endif

#endif /* {guard} */
"""
    # words, so that a kernel may keep int32 sums in its scratch
    arena = (f"static int32_t {name}_arena_words[{(layout.arena_bytes + 3) // 4}];\n"
             f"#define {name}_arena ((int8_t *){name}_arena_words)\n" if layout.arena_bytes else "")
    body = "\n".join(calls)
    unused = "".join(f"    (void){_argument('in', k, len(ins))};\n" for k in range(len(ins)) if k not in em.reads_input)
    source_text = f"""/* Generated by edgec from {source} (sha256 {digest}...). Do not edit.
 * Kernels follow TFLite's integer reference kernels: per-channel requantization
 * with fixed-point multipliers and shifts, zero points, fused activations. */
#include <stdint.h>
#include <string.h>

#include "{name}_infer.h"

/* {up}_OP_DONE(k) runs after op k: define it (for example to read a cycle counter) to time each op. */
#ifndef {up}_OP_DONE
#define {up}_OP_DONE(k) ((void)0)
#endif
{_lut_defines(lut_bits)}
{"".join(_kernel(k) + chr(10) for k in kernels)}
{"".join(em.arrays)}
{arena}
void {name}_infer({params})
{{
{unused}{body}
}}
"""
    return Generated(name, {f"{name}_infer.h": header, f"{name}_infer.c": source_text}, layout.arena_bytes,
                     packed_in[-1], packed_out[-1],
                     [k[:-2].upper() for k in kernels if k not in op_registry.HELPER_KERNELS],
                     {k: v for k, v in scratch.items() if v}, dict(layout.in_place), lut_bits)
