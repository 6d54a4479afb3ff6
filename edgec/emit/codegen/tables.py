"""Tables TFLite-Micro's int16 kernels interpolate, read back from TFLite-Micro itself.

Its int16 sigmoid and tanh (the LSTM's gates) interpolate one table of
``sigmoid(i / 24)`` in 0.16 format, 256 entries, which is not a closed formula
(rounded values are off by one in places). edgec runs TFLite-Micro's int16 LOGISTIC and
TANH on every int16 value, solves for the entries that give exactly those outputs,
and checks that the solved table reproduces all 2 x 65,536 of them.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

# the interpolation's segments: |3x| >> 9 for sigmoid, |3x| >> 8 for tanh, 255 of them each
_SEGMENTS = 255


class TableError(Exception):
    """TFLite-Micro did not run an op alone, or its outputs are not what the generator reads them as."""


def run_alone(alone: bytes, values: np.ndarray, purpose: str) -> np.ndarray:
    """TFLite-Micro's output (flattened) for an op alone (``single_op_model``) on ``values``."""
    from edgec.errors import RuntimeCheckError
    from edgec.runtime import micro

    try:
        return micro.run(alone, values, litert_verify=False).reshape(-1)
    except RuntimeCheckError as exc:
        raise TableError(f"TFLite-Micro did not run it alone to {purpose} it ({exc})") from None


def sigmoid16(table: np.ndarray, v: np.ndarray) -> np.ndarray:
    """TFLite's int16 logistic on inputs already scaled to 3/4096 units (``v = 3x`` for Q3.12)."""
    a = np.abs(v)
    u = np.minimum(a >> 9, _SEGMENTS - 1)
    lo, hi = table[u], table[u + 1]
    r = np.where(a >> 9 >= _SEGMENTS, 0x7FFF << 10, (lo << 9) + (a & 511) * (hi - lo))
    r = np.where(v >= 0, r + 512, (1 << 25) - r + 511)
    return (r >> 10).astype(np.int16).astype(np.int64)


def tanh16(table: np.ndarray, v: np.ndarray) -> np.ndarray:
    """TFLite's int16 tanh on inputs already scaled to 3/4096 units."""
    a = np.abs(v)
    u = np.minimum(a >> 8, _SEGMENTS - 1)
    lo, hi = table[u], table[u + 1]
    r = np.where(a >> 8 >= _SEGMENTS, 0xFFFF << 8, (lo << 8) + (a & 255) * (hi - lo))
    r = np.where(v >= 0, r - (1 << 23) + 128, -r + (1 << 23) + 127)
    return (r >> 8).astype(np.int16).astype(np.int64)


@functools.lru_cache(maxsize=1)
def sigmoid_table() -> tuple[int, ...]:
    """TFLite-Micro's 256-entry sigmoid table, solved from its own int16 LOGISTIC and TANH outputs.

    Raises:
        TableError: TFLite-Micro did not run the ops, or no single table explains its outputs.
    """
    from edgec.load.tflite_file import int16_activation_model

    x = np.arange(-32768, 32768, dtype=np.int64)
    # Q3.12 inputs: TFLite-Micro's power-of-two path, input multiplier 3 and no shift (as the LSTM's gates)
    observed = {op: run_alone(int16_activation_model(op, x.size, 2.0 ** -12), x.astype(np.int16).reshape(1, -1),
                               "read the sigmoid table of").astype(np.int64) for op in ("LOGISTIC", "TANH")}
    v = 3 * x
    guess = np.array([min(65535, round(65536 / (1 + math.exp(-i / 24)))) for i in range(_SEGMENTS + 1)], np.int64)
    sigmoid_segment, tanh_segment = np.abs(v) >> 9, np.abs(v) >> 8
    starts, ends = [], []
    for seg in range(_SEGMENTS):
        s, t = sigmoid_segment == seg, tanh_segment == seg
        fits = []
        for da, db in itertools.product(range(-3, 4), repeat=2):
            table = guess.copy()
            table[seg] += da
            table[seg + 1] += db
            if np.array_equal(sigmoid16(table, v[s]), observed["LOGISTIC"][s]) and \
                    np.array_equal(tanh16(table, v[t]), observed["TANH"][t]):
                fits.append((int(table[seg]), int(table[seg + 1])))
        starts.append({a for a, _ in fits})
        ends.append({b for _, b in fits})
    solved = []
    for i in range(_SEGMENTS + 1):
        options = starts[i] if i < _SEGMENTS else ends[i - 1]
        if 0 < i < _SEGMENTS:
            options = options & ends[i - 1]
        if len(options) != 1:
            raise TableError(f"no single sigmoid table explains TFLite-Micro's int16 LOGISTIC and TANH (entry {i})")
        solved.append(options.pop())
    table = np.array(solved, np.int64)
    if not (np.array_equal(sigmoid16(table, v), observed["LOGISTIC"])
            and np.array_equal(tanh16(table, v), observed["TANH"])):
        raise TableError("the sigmoid table solved from TFLite-Micro does not reproduce its int16 LOGISTIC and TANH")
    return tuple(solved)
