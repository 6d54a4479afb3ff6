"""TFLite-Micro's own code for one model, measured in the x86-64 build the
tflite-micro wheel ships.

A firmware that runs a model with TFLite-Micro links the interpreter, the op
resolver and the kernels of the model's ops, and the linker's ``--gc-sections``
drops everything else. Building TFLite-Micro for a Cortex-M needs its source
tree, which no package registry this project reaches ships; but the wheel's
``_runtime.so`` is an unstripped build of the same library (reference kernels,
GCC, x86-64, position-independent). This module does on that file what
``--gc-sections`` does when the firmware is linked, one symbol at a time: it
starts from what a firmware calls (the MicroInterpreter constructor that takes
an arena, AllocateTensors, Invoke, input, output, the destructor; for each of
the model's ops its ``Register_`` function and the parser
``MicroMutableOpResolver`` pairs with it; the resolver's lookups) and follows
every reference: direct calls and jumps, RIP-relative addresses in code, calls
through the PLT and loads through the GOT resolved to the definition inside the
file, and the relocations inside data (vtables, tables of function pointers).

What is counted, per reached piece: code (``.text``), read-only data
(``.rodata``, and ``.data.rel.ro``, which holds vtables that a static firmware
keeps in flash), and writable data (``.data``: flash and RAM; ``.bss``: RAM).
Read-only data without a symbol (strings, jump tables, constants) is split at
every address that anything in the file refers to, and a piece is counted when
reached code refers to its start. Not counted, as a firmware built with
``-fno-exceptions`` has none of them: ``.eh_frame`` and ``.gcc_except_table``;
the C and C++ libraries, which the file imports (the generated C's side,
measured the same way, does not count them either); and tensor decompression,
which the wheel is built with (``USE_TFLM_COMPRESSION``) and a default firmware
build is not (reported beside the total).

The same walk is run over the generated C, compiled with the host's gcc into a
shared object, from its one entry point; ``tests/test_benchmarks.py`` checks it
there against the sizes of the object's sections.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
import subprocess
from collections import deque
from pathlib import Path

# TFLite-Micro's MicroMutableOpResolver::AddXxx() pairs each builtin op with its
# Register_ function and one of these parsers (micro_mutable_op_resolver.h).
PARSERS = {
    "ADD": "ParseAdd", "AVERAGE_POOL_2D": "ParsePool", "CONV_2D": "ParseConv2D",
    "DEPTHWISE_CONV_2D": "ParseDepthwiseConv2D", "FULLY_CONNECTED": "ParseFullyConnected",
    "MAX_POOL_2D": "ParsePool", "RESHAPE": "ParseReshape", "SOFTMAX": "ParseSoftmax",
}
FRAMEWORK_ROOTS = (
    re.compile(r"MicroInterpreter::MicroInterpreter\(tflite::Model const\*, [\w:]+MicroOpResolver const&, "
               r"unsigned char\*"),
    re.compile(r"MicroInterpreter::(AllocateTensors|Invoke|input|output|~MicroInterpreter)\("),
    re.compile(r"MicroMutableOpResolver<\d+u?>::(FindOp|GetOpDataParser)\("),
)
# Tensor decompression, compiled only with USE_TFLM_COMPRESSION: the wheel is built
# with it, a default firmware build is not, so the walk treats it as absent.
COMPRESSION = re.compile(r"[Cc]ompress")
NOT_FIRMWARE = (".eh_frame", ".eh_frame_hdr", ".gcc_except_table")


def runtime_library() -> Path:
    import tflite_micro
    path = Path(tflite_micro.__file__).parent / "python" / "tflite_micro" / "_runtime.so"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; is the tflite-micro wheel installed?")
    return path


def _out(cmd: list[str], stdin: str | None = None) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, input=stdin).stdout


@dataclasses.dataclass(frozen=True)
class Section:
    name: str
    start: int
    size: int
    flags: str

    @property
    def kind(self) -> str | None:
        """code, rodata, data or bss: where a piece of it goes in a firmware; None if nowhere."""
        if "A" not in self.flags or self.name in NOT_FIRMWARE or self.name in (".got", ".got.plt", ".plt"):
            return None
        if "X" in self.flags:
            return "code"
        if self.name == ".bss":
            return "bss"
        if "W" not in self.flags or self.name.startswith(".data.rel.ro"):
            return "rodata" if self.name.startswith((".rodata", ".data.rel.ro")) else None
        return "data" if self.name == ".data" else None


@dataclasses.dataclass(frozen=True)
class Piece:
    start: int
    size: int
    name: str
    kind: str


@dataclasses.dataclass
class Footprint:
    code: int = 0
    rodata: int = 0
    data: int = 0
    bss: int = 0
    pieces: int = 0

    @property
    def flash(self) -> int:
        return self.code + self.rodata + self.data

    @property
    def ram(self) -> int:
        return self.data + self.bss

    def to_dict(self) -> dict:
        return {"code": self.code, "rodata": self.rodata, "data": self.data, "bss": self.bss,
                "flash": self.flash, "ram": self.ram, "pieces": self.pieces}


class Binary:
    """The symbols, pieces and references of one ELF shared object."""

    def __init__(self, path: Path):
        self.path = path
        self.sections = self._sections()
        self.by_name: dict[str, int] = {}           # mangled name -> start of its piece
        self.demangled: dict[int, list[str]] = {}    # piece start -> demangled names
        self.got: dict[int, str] = {}                # GOT slot -> symbol name it holds
        self.relocs: list[tuple[int, int]] = []     # (where in data, address it holds)
        symbols = self._symbols()
        refs = self._code_refs()
        self._dynamic_relocs()
        self.pieces = self._pieces(symbols, refs)
        self.starts = [p.start for p in self.pieces]
        self.edges: dict[int, set[int]] = {}
        for source, target, name in refs:
            self._edge(source, target, name)
        for where, target in self.relocs:
            self._edge(where, target, None)

    # --- reading the file ---------------------------------------------------
    def _sections(self) -> list[Section]:
        rows = []
        for line in _out(["readelf", "-S", "-W", str(self.path)]).splitlines():
            m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\S+\s+(\S*)", line)
            if m and int(m.group(2), 16):
                rows.append(Section(m.group(1), int(m.group(2), 16), int(m.group(3), 16), m.group(4)))
        return rows

    def section_at(self, address: int) -> Section | None:
        return next((s for s in self.sections if s.start <= address < s.start + s.size), None)

    def _symbols(self) -> list[tuple[int, int, str]]:
        rows = []
        for line in _out(["nm", "-S", "--defined-only", str(self.path)]).splitlines():
            parts = line.split()
            if len(parts) == 4 and int(parts[1], 16) > 0:
                rows.append((int(parts[0], 16), int(parts[1], 16), parts[3]))
        names = _out(["c++filt"], "\n".join(r[2] for r in rows) + "\n").splitlines()
        for (start, _, name), plain in zip(rows, names):
            self.by_name.setdefault(name, start)
            self.demangled.setdefault(start, []).append(plain)
        return rows

    def _code_refs(self) -> list[tuple[int, int | None, str | None]]:
        """(instruction address, target address, target name) for every address an
        instruction names: branch targets and RIP-relative operands."""
        refs = []
        for line in _out(["objdump", "-d", "-w", "--no-show-raw-insn", str(self.path)]).splitlines():
            m = re.match(r"\s+([0-9a-f]+):\t(.*)", line)
            if not m:
                continue
            where = int(m.group(1), 16)
            for target, label in re.findall(r"\b([0-9a-f]+) <([^>]*)>", m.group(2)):
                plt = label.split("@plt")[0] if "@plt" in label else None
                refs.append((where, int(target, 16), plt))
        return refs

    def _dynamic_relocs(self) -> None:
        for line in _out(["readelf", "-r", "-W", str(self.path)]).splitlines():
            m = re.match(r"([0-9a-f]{8,})\s+[0-9a-f]+\s+(R_X86_64_\w+)\s+(.*)", line)
            if not m:
                continue
            where, kind, rest = int(m.group(1), 16), m.group(2), m.group(3).strip()
            if kind == "R_X86_64_RELATIVE":
                self.relocs.append((where, int(rest, 16)))
                continue
            s = re.match(r"[0-9a-f]+\s+(\S+?)(?:@\S+)?\s*\+\s*([0-9a-f]+)", rest)
            if not s:
                continue
            name, addend = s.group(1), int(s.group(2), 16)
            if kind in ("R_X86_64_GLOB_DAT", "R_X86_64_JUMP_SLOT"):
                self.got[where] = name
            elif name in self.by_name:                     # defined here: a plain address
                self.relocs.append((where, self.by_name[name] + addend))

    def _pieces(self, symbols, refs) -> list[Piece]:
        """One piece per distinct symbol range; read-only data outside symbols split at
        every referenced address."""
        pieces: dict[int, Piece] = {}
        for start, size, name in sorted(symbols):
            section = self.section_at(start)
            if section is None or section.kind is None or start in pieces:
                continue
            pieces[start] = Piece(start, size, name, section.kind)
        covered = sorted((p.start, p.start + p.size) for p in pieces.values())
        cuts = sorted({t for _, t, _ in refs} | {t for _, t in self.relocs})
        for section in self.sections:
            if section.kind not in ("rodata", "data"):
                continue
            end = section.start + section.size
            inside = [c for c in cuts if section.start <= c < end]
            bounds = sorted(set(inside) | {s for s, e in covered if section.start <= s < end}
                            | {e for s, e in covered if section.start < e <= end} | {end})
            for a, b in zip(bounds, bounds[1:]):
                if a in inside and not _within(covered, a):
                    pieces.setdefault(a, Piece(a, b - a, f"<anonymous {section.name}+{a - section.start:#x}>",
                                               section.kind))
        return sorted(pieces.values(), key=lambda p: p.start)

    # --- the graph ------------------------------------------------------------
    def piece_at(self, address: int) -> Piece | None:
        i = bisect.bisect_right(self.starts, address) - 1
        if i >= 0 and address < self.pieces[i].start + max(self.pieces[i].size, 1):
            return self.pieces[i]
        return None

    def _edge(self, where: int, target: int | None, name: str | None) -> None:
        source = self.piece_at(where)
        if source is None:
            return
        if target is not None and target in self.got:      # a load through the GOT
            name, target = self.got[target], None
        if name is not None:                                # through the PLT or a named relocation
            target = self.by_name.get(name)
        if target is None:
            return
        dest = self.piece_at(target)
        if dest is not None and dest.start != source.start:
            self.edges.setdefault(source.start, set()).add(dest.start)

    def roots(self, patterns: list[re.Pattern]) -> list[Piece]:
        found = []
        for p in self.pieces:
            if p.kind == "code" and any(rx.search(n) for rx in patterns for n in self.names(p)):
                found.append(p)
        return found

    def names(self, piece: Piece) -> list[str]:
        return self.demangled.get(piece.start) or [piece.name]

    def reach(self, roots: list[Piece], skip: re.Pattern | None = None) -> tuple[Footprint, list[Piece]]:
        """Everything ``roots`` refer to, directly or not; pieces named by ``skip`` are
        treated as absent (neither counted nor followed)."""
        def absent(start: int) -> bool:
            return skip is not None and any(skip.search(n) for n in self.names(self.piece_at(start)))

        seen = {r.start for r in roots}
        queue = deque(seen)
        while queue:
            for nxt in self.edges.get(queue.popleft(), ()):
                if nxt not in seen and not absent(nxt):
                    seen.add(nxt)
                    queue.append(nxt)
        reached = [self.piece_at(s) for s in sorted(seen)]
        total = Footprint(pieces=len(reached))
        for p in reached:
            setattr(total, p.kind, getattr(total, p.kind) + p.size)
        return total, reached


def _within(covered: list[tuple[int, int]], address: int) -> bool:
    i = bisect.bisect_right(covered, (address, float("inf"))) - 1
    return i >= 0 and covered[i][0] <= address < covered[i][1]


def op_roots(ops: list[str]) -> list[re.Pattern]:
    missing = sorted(set(ops) - set(PARSERS))
    if missing:
        raise KeyError(f"no TFLite-Micro parser known for {', '.join(missing)}")
    patterns = list(FRAMEWORK_ROOTS)
    for op in sorted(set(ops)):
        patterns.append(re.compile(rf"::Register_{op}\(\)$"))
        patterns.append(re.compile(rf"::{PARSERS[op]}\(tflite::Operator const\*"))
    return patterns


def tflm_footprint(ops: list[str], binary: Binary) -> tuple[Footprint, Footprint]:
    """What TFLite-Micro's framework and the kernels of ``ops`` take in a firmware
    (``binary``: the wheel's x86-64 build, read once by the caller), found by the walk
    described above: (without the compression support, with it)."""
    patterns = op_roots(ops)
    roots = binary.roots(patterns)
    matched = {rx.pattern for rx in patterns for r in roots for n in binary.names(r) if rx.search(n)}
    unmatched = [rx.pattern for rx in patterns if rx.pattern not in matched]
    if unmatched:
        raise LookupError(f"{binary.path.name} defines nothing matching {unmatched}")
    default, _ = binary.reach(roots, skip=COMPRESSION)
    with_compression, _ = binary.reach(roots)
    return default, with_compression


def c_footprint(gen, workdir: Path) -> tuple[Footprint, Footprint]:
    """The generated C built with the host's gcc -O2 -fPIC into a shared object:
    (the walk from ``<name>_infer``, the object file's own section sizes)."""
    from edgec.emit.codegen import toolchain

    model_c = toolchain.write_sources(gen, workdir)
    obj, so = workdir / f"{gen.name}_x86.o", workdir / f"lib{gen.name}_x86.so"
    flags = [*toolchain.C_FLAGS, "-O2", "-fPIC", "-I", str(workdir)]
    subprocess.run(["gcc", *flags, "-c", str(model_c), "-o", str(obj)], check=True, capture_output=True)
    subprocess.run(["gcc", "-shared", str(obj), "-o", str(so)], check=True, capture_output=True)
    binary = Binary(so)
    roots = [p for p in binary.pieces if p.name == f"{gen.name}_infer"]
    if len(roots) != 1:
        raise LookupError(f"{so.name} does not define {gen.name}_infer")
    walked, _ = binary.reach(roots)
    return walked, object_sections(obj)


def object_sections(obj: Path) -> Footprint:
    """Sizes of an object file's sections by where they go in a firmware."""
    total = Footprint()
    for line in _out(["size", "-A", str(obj)]).splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            continue
        name, size = parts[0], int(parts[1])
        if name.startswith(".text"):
            total.code += size
        elif name.startswith((".rodata", ".data.rel.ro")):
            total.rodata += size
        elif name.startswith(".data"):
            total.data += size
        elif name.startswith(".bss"):
            total.bss += size
    return total
