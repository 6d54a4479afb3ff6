"""The fuzzer's corpus as regression tests, and a short fuzz run (slow).

Every file in tests/data/fuzz/KIND/ (valid seeds, and inputs that once raised
something other than an EdgecError) goes through the fuzz target of its kind:
the only allowed outcomes are success and an EdgecError.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fuzz"))
import targets  # noqa: E402

CORPUS = sorted(p for p in targets.SEEDS.glob("*/*") if p.is_file())


def test_corpus_holds_every_kind_and_its_regressions():
    kinds = {p.parent.name for p in CORPUS}
    assert kinds == set(targets.TARGETS)
    assert any(p.name.startswith("regress-") for p in CORPUS)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_input_gives_a_result_or_an_edgec_error(path, monkeypatch):
    from edgec.load import hdf5

    monkeypatch.setattr(hdf5, "TIMEOUT_BASE_S", 5.0)  # regress-libhdf5-hang.h5 sends libhdf5 into an endless loop
    outcome = targets.TARGETS[path.parent.name](path.read_bytes())
    assert outcome in ("ok", "error")
    if path.name.startswith("seed"):
        assert outcome == "ok", f"the seed {path.name} must be valid, or the fuzzer starts from nothing"


@pytest.mark.slow
@pytest.mark.parametrize("kind,runs", [("tflite", 3000), ("npz", 3000), ("recipe", 3000), ("target", 3000),
                                       ("h5", 300), ("savedmodel_meta", 200)])
def test_short_fuzz_run(kind, runs, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "fuzz" / "run.py"), kind, f"-atheris_runs={runs}"],
                          capture_output=True, text=True, timeout=1800, cwd=tmp_path)
    summary = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgec fuzz")]
    assert proc.returncode == 0 and summary, proc.stderr[-3000:]
    assert summary[0].endswith(" 0 uncaught exceptions"), summary[0]
