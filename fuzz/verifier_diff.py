"""Differential check of edgec's Python flatbuffer verifier against LiteRT's generated C++ verifier.

Flips 1-3 random bits of each .tflite seed in tests/data/fuzz/tflite/, many
times, and asks both verifiers (the C++ one in edgec's sandbox). Prints how
many mutants the C++ verifier refused and how many of those the Python one
accepted (missed: should be 0), and how many the Python one refused that the
C++ one accepted (it is stricter on purpose: kernel preconditions, schema
semantics). Usage: ``.venv/bin/python fuzz/verifier_diff.py [MUTANTS_PER_SEED] [SEED]``.
"""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgec.errors import EdgecError, ModelLoadError  # noqa: E402
from edgec.load import flatbuffer_check  # noqa: E402
from edgec.runtime import micro, sandbox  # noqa: E402


def _accepted(check, data: bytes) -> bool:
    try:
        check(data)
    except ModelLoadError:
        return False
    except EdgecError:  # the sandbox's own errors: the C++ verifier did not refuse
        return True
    return True


def main(per_seed: int = 2000, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    counts = {"mutants": 0, "cpp_refused": 0, "python_missed": 0, "python_stricter": 0}
    missed = []
    for path in sorted((ROOT / "tests" / "data" / "fuzz" / "tflite").glob("seed*")):
        original = path.read_bytes()
        for _ in range(per_seed):
            b = bytearray(original)
            for _ in range(int(rng.integers(1, 4))):
                b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
            b = bytes(b)
            counts["mutants"] += 1
            py = _accepted(flatbuffer_check.verify, b)
            cpp = _accepted(lambda d: sandbox.call(micro.verified, d, runtime="LiteRT"), b)
            counts["cpp_refused"] += not cpp
            counts["python_stricter"] += cpp and not py
            if py and not cpp:
                counts["python_missed"] += 1
                missed.append(b)
    for i, b in enumerate(missed):
        Path(f"missed-{i}.tflite").write_bytes(b)
    print(f"verifier diff: {counts['mutants']} bit-flipped mutants, the C++ verifier refused {counts['cpp_refused']}, "
          f"the Python verifier accepted {counts['python_missed']} of those (written as missed-*.tflite) and "
          f"refused {counts['python_stricter']} the C++ one accepts")
    return counts


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
