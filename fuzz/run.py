"""Coverage-guided fuzzing of edgec's inputs with atheris (libFuzzer for Python).

    python fuzz/run.py KIND [libFuzzer options]      KIND: tflite, npz, h5, recipe, target, savedmodel_meta

The corpus starts from ``tests/data/fuzz/KIND/`` (valid seed files and every
input that once found a bug) and grows in ``fuzz/corpus/KIND/`` (not kept in
git). A finding is any exception other than an EdgecError: libFuzzer stops
and writes the input as ``crash-*``; copy it into ``tests/data/fuzz/KIND/``
so that ``tests/test_fuzz.py`` replays it forever. At the end, a summary line
gives the executions, the outcomes and the interpreter-process crashes.

Example (the run recorded in the README):
    python fuzz/run.py tflite -atheris_runs=100000
"""

import sys
import time
from collections import Counter
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
with atheris.instrument_imports(include=["edgec"]):
    # The modules the targets call, imported here so that atheris instruments them for coverage.
    import edgec.check.gate  # noqa: F401,E402
    import edgec.check.targets  # noqa: F401,E402
    import edgec.config  # noqa: F401,E402
    import edgec.load.data  # noqa: F401,E402
    import edgec.load.model  # noqa: F401,E402
    import targets  # noqa: E402


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
        sys.exit(f"usage: python fuzz/run.py {{{','.join(targets.TARGETS)}}} [libFuzzer options]")
    kind = sys.argv.pop(1)
    target = targets.TARGETS[kind]
    corpus = Path(__file__).resolve().parent / "corpus" / kind
    corpus.mkdir(parents=True, exist_ok=True)
    outcomes = Counter()
    start = time.time()

    def one_input(data: bytes):
        try:
            outcomes[target(data)] += 1
        except BaseException:
            outcomes["uncaught"] += 1
            raise

    import atexit

    @atexit.register
    def summary():
        n = sum(outcomes.values())
        print(f"edgec fuzz {kind}: {n} executions in {time.time() - start:.0f} s, {outcomes['ok']} accepted, "
              f"{outcomes['error']} refused with an EdgecError, {len(targets.CHILD_CRASHES)} interpreter-process "
              f"crashes or hangs (the CLI survived them), {outcomes['uncaught']} uncaught exceptions", file=sys.stderr)
        for text in sorted(set(targets.CHILD_CRASHES))[:5]:
            print(f"  {text}", file=sys.stderr)

    atheris.Setup([sys.argv[0], str(corpus), str(targets.SEEDS / kind), *sys.argv[1:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
