"""One static activation buffer for the generated C: tensor lifetimes packed by size.

The same greedy strategy as TFLite-Micro's GreedyMemoryPlanner: largest blocks
first, each at the lowest 16-byte-aligned offset that overlaps no block alive at
the same time. The model's input and output are the caller's buffers and take no
space here, nor does a state no op produces (an LSTM's: its kernel keeps it in its
scratch); a RESHAPE's output shares its input's bytes. A kernel's scratch buffer
is one more block, alive only while its op runs.

Unlike TFLite-Micro, an op whose input dies at that op may write its output over
it: the kernel's order of reads and writes (``ops.OPS[...].overlap``) says how far
before the input the output must start so that no byte is overwritten before it
is read. Such tensors form one block at fixed distances; the plan with overlaps
is kept only when it is smaller.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

ALIGN = 16


@dataclasses.dataclass(frozen=True)
class Plan:
    """Where each activation tensor lives: ``offsets`` into the arena, or an alias."""

    offsets: dict[int, int]
    arena_bytes: int
    storage: dict[int, int]  # tensor -> the tensor whose bytes it uses (itself if none)
    scratch: dict[int, int] = dataclasses.field(default_factory=dict)  # op index -> offset of its scratch
    in_place: dict[int, int] = dataclasses.field(default_factory=dict)  # op index -> overlap distance used


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan(tfl, aliases: dict[int, int], scratch: dict[int, int] | None = None,
         overlap: Callable | None = None) -> Plan:
    """Pack the activations of ``tfl`` (a :class:`TFLiteModel`).

    Args:
        tfl: the parsed model.
        aliases: tensor -> tensor whose bytes it reuses (RESHAPE outputs).
        scratch: op index -> bytes of scratch its kernel needs while it runs.
        overlap: op -> (input tensor, distance) or None: how its output may overlap that input.
    """
    separate = _pack(tfl, aliases, scratch or {}, {})
    if overlap is None:
        return separate
    joined = _pack(tfl, aliases, scratch or {}, _overlaps(tfl, aliases, overlap))
    return joined if joined.arena_bytes < separate.arena_bytes else separate


def _root(aliases: dict[int, int], i: int) -> int:
    while i in aliases:
        i = aliases[i]
    return i


def _spans(tfl, aliases: dict[int, int]) -> dict[int, list[int]]:
    """Root tensor -> [first op, last op] over it and its aliases; the caller's buffers left out."""
    external = set(tfl.inputs) | set(tfl.outputs)
    produced = {i for op in tfl.ops for i in op.outputs}
    spans: dict[int, list[int]] = {}
    for i, (first, last) in tfl.lifetimes().items():
        r = _root(aliases, i)
        if r in external or r not in produced:  # the caller's buffers; a state its op keeps in its scratch
            continue
        lo, hi = spans.get(r, [first, last])
        spans[r] = [min(lo, first), max(hi, last)]
    return spans


def _overlaps(tfl, aliases: dict[int, int], overlap: Callable) -> dict[int, tuple[int, int, int]]:
    """op index -> (input root, output root, distance) for every op that may write over its input."""
    spans = _spans(tfl, aliases)
    found = {}
    for op in tfl.ops:
        got = overlap(op)
        if got is None:
            continue
        x, distance = got
        rx, ry = _root(aliases, x), _root(aliases, op.outputs[0])
        if rx in spans and ry in spans and rx != ry and spans[rx][1] == op.index and spans[ry][0] == op.index:
            found[op.index] = (rx, ry, _align(max(distance, 0)))
    return found


def _pack(tfl, aliases, scratch: dict[int, int], overlaps: dict[int, tuple[int, int, int]]) -> Plan:
    spans = _spans(tfl, aliases)
    # blocks of tensors at fixed relative offsets: every tensor alone, then joined op by op
    group = {r: r for r in spans}
    members: dict[int, dict[int, int]] = {r: {r: 0} for r in spans}
    used = {}
    for index, (rx, ry, distance) in sorted(overlaps.items()):
        gx, gy = group[rx], group[ry]
        if gx == gy or len(members[gy]) != 1:
            continue
        rel = members[gx][rx] - distance
        members[gx][ry] = rel
        group[ry] = gx
        del members[gy]
        low = min(members[gx].values())
        members[gx] = {t: o - low for t, o in members[gx].items()}
        used[index] = distance
    blocks: dict[tuple[str, int], tuple[int, int, int]] = {}
    for g, within in members.items():
        size = max(o + _align(tfl.tensors[t].nbytes) for t, o in within.items())
        blocks[("tensor", g)] = (size, min(spans[t][0] for t in within), max(spans[t][1] for t in within))
    blocks.update({("scratch", op): (n, op, op) for op, n in scratch.items() if n})
    order = sorted(blocks, key=lambda key: (-blocks[key][0], key))
    placed: list[tuple[int, int, int, int]] = []  # offset, size, first, last
    offsets: dict[tuple[str, int], int] = {}
    for key in order:
        nbytes, first, last = blocks[key]
        size = _align(nbytes)
        clashes = sorted((o, s) for o, s, start, end in placed if start <= last and first <= end)
        offset = 0
        for o, s in clashes:
            if offset + size <= o:
                break
            offset = max(offset, o + s)
        offsets[key] = offset
        placed.append((offset, size, first, last))
    arena = max((o + s for o, s, _, _ in placed), default=0)
    tensors = {t: offsets[("tensor", g)] + o for g, within in members.items() for t, o in within.items()}
    storage = {i: _root(aliases, i) for i in tfl.lifetimes()}
    return Plan(tensors, arena, storage, {op: o for (kind, op), o in offsets.items() if kind == "scratch"}, used)
