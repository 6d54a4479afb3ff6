"""One static activation buffer for the generated C: tensor lifetimes packed by size.

The same greedy strategy as TFLite-Micro's GreedyMemoryPlanner: largest tensors
first, each at the lowest 16-byte-aligned offset that overlaps no tensor alive
at the same time. The model's input and output are the caller's buffers and take
no space here; a RESHAPE's output shares its input's bytes.
"""

from __future__ import annotations

import dataclasses

ALIGN = 16


@dataclasses.dataclass(frozen=True)
class Plan:
    """Where each activation tensor lives: ``offsets`` into the arena, or an alias."""

    offsets: dict[int, int]
    arena_bytes: int
    storage: dict[int, int]  # tensor -> the tensor whose bytes it uses (itself if none)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan(tfl, aliases: dict[int, int]) -> Plan:
    """Pack the activations of ``tfl`` (a :class:`TFLiteModel`).

    Args:
        tfl: the parsed model.
        aliases: tensor -> tensor whose bytes it reuses (RESHAPE outputs).
    """
    def root(i: int) -> int:
        while i in aliases:
            i = aliases[i]
        return i

    external = set(tfl.inputs) | set(tfl.outputs)
    spans: dict[int, list[int]] = {}
    for i, (first, last) in tfl.lifetimes().items():
        r = root(i)
        if r in external:
            continue
        lo, hi = spans.get(r, [first, last])
        spans[r] = [min(lo, first), max(hi, last)]
    order = sorted(spans, key=lambda i: (-tfl.tensors[i].nbytes, i))
    placed: list[tuple[int, int, int, int]] = []  # offset, size, first, last
    offsets: dict[int, int] = {}
    for i in order:
        size = _align(tfl.tensors[i].nbytes)
        first, last = spans[i]
        clashes = sorted((o, s) for o, s, start, end in placed if start <= last and first <= end)
        offset = 0
        for o, s in clashes:
            if offset + size <= o:
                break
            offset = max(offset, o + s)
        offsets[i] = offset
        placed.append((offset, size, first, last))
    arena = max((o + s for o, s, _, _ in placed), default=0)
    storage = {i: root(i) for i in tfl.lifetimes()}
    return Plan(offsets, arena, storage)
