"""Look-up-table weights for the generated C: k-bit indices and a table per row.

A matrix product's weights (``c/mat_mult.c``) are laid out in pairs of rows,
four bytes of one row then four of the other. Where every row holds at most
2^k distinct values (clustered, ternary or binary weights), the generator can
store that stream as k-bit indices instead, eight indices (one group of four
per row) in k bytes, the first index in the lowest bits, plus a table of 2^k
int8 values per row; ``ec_lut_decode`` turns them back into the same bytes
before the product reads them. The decode is exact, so the outputs are those
of the plain weights, bit for bit.

Padding positions (k rounded up to 4, the zero row of an odd count) take index
0: the kernel multiplies them by zero inputs or drops their outputs, so their
value does not matter.
"""

from __future__ import annotations

import numpy as np

MAX_BITS = 4
STRUCT_BYTES = 12  # struct ec_lut: bits and two pointers
# The decoder's code on the Cortex-M4 (arm-none-eabi-gcc -O2), measured on a model of five products:
# 306-462 B with one index width compiled, 828 B with all four; on the ternary sample each width added to
# the one compiled added 140-160 B.
CODE_BYTES = 448     # the decoder with its first width
WIDTH_BYTES = 152    # each further width


def bits_for(w2d: np.ndarray) -> int | None:
    """The fewest index bits (1..MAX_BITS) that hold every row's distinct values, or None."""
    most = max((len(np.unique(row)) for row in w2d), default=0)
    for bits in range(1, MAX_BITS + 1):
        if most <= 1 << bits:
            return bits
    return None


def packed_bytes(rows: int, k4: int, bits: int) -> int:
    """Flash for ``rows`` (an even count) rows of ``k4`` weights as ``bits``-bit indices and tables."""
    return rows * k4 * bits // 8 + rows * (1 << bits) + STRUCT_BYTES


def choose(w2d: np.ndarray, k4: int) -> int | None:
    """The index bits for a product's weights (rows x k), or None where the plain bytes are smaller."""
    bits = bits_for(w2d)
    even = w2d.shape[0] + w2d.shape[0] % 2
    if bits is None or packed_bytes(even, k4, bits) >= even * k4:
        return None
    return bits


def pack(w2d: np.ndarray, k4: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, tables)``: uint8 index bytes in the paired layout and int8 tables (2^bits per row, the
    rows' sorted values, the last repeated to fill) for weights ``w2d`` (rows x k) padded to ``k4``."""
    rows, k = w2d.shape
    even = rows + rows % 2
    size = 1 << bits
    tables = np.zeros((even, size), np.int64)
    index = np.zeros((even, k4), np.int64)
    for r in range(rows):
        values = np.unique(w2d[r])
        if len(values) > size:
            raise ValueError(f"row {r} has {len(values)} distinct values, more than {size}")
        tables[r, :len(values)] = values
        tables[r, len(values):] = values[-1]
        index[r, :k] = np.searchsorted(values, w2d[r])
    stream = index.reshape(even // 2, 2, k4 // 4, 4).transpose(0, 2, 1, 3).reshape(-1, 8)
    words = (stream << (bits * np.arange(8))).sum(axis=1)
    data = ((words[:, None] >> (8 * np.arange(bits))) & 0xFF).astype(np.uint8)
    return data.reshape(-1), tables.astype(np.int8)


def unpack(indices: np.ndarray, tables: np.ndarray, k4: int, bits: int) -> np.ndarray:
    """The paired weight stream ``ec_lut_decode`` writes: the reference for its tests."""
    even = tables.shape[0]
    groups = indices.reshape(-1, bits).astype(np.int64)
    words = (groups << (8 * np.arange(bits))).sum(axis=1)
    stream = (words[:, None] >> (bits * np.arange(8))) & ((1 << bits) - 1)
    index = stream.reshape(even // 2, k4 // 4, 2, 4).transpose(0, 2, 1, 3).reshape(even, k4)
    return np.take_along_axis(tables.astype(np.int64), index, axis=1)


def widths(saved: dict[int, int]) -> set[int]:
    """The index widths worth compiling, given the bytes packing saves at each (``{bits: bytes}``): each
    must save more than the code it adds, the first the decoder itself."""
    chosen: set[int] = set()
    for bits, total in sorted(saved.items(), key=lambda kv: -kv[1]):
        if total > (WIDTH_BYTES if chosen else CODE_BYTES):
            chosen.add(bits)
    return chosen
