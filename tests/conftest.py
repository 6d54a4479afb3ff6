"""Shared fixtures: tiny seeded models, the bundled sample, the shared reference models."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "digits"
SHARED_MODELS = ROOT.parent / "shared" / "models"
DATA = Path(__file__).resolve().parent / "data"


def shared_model(name: str) -> Path:
    """Path of a reference model in ../shared/models, or skip the test (a user's clone has none)."""
    path = SHARED_MODELS / name
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is only beside the project's own checkouts)")
    return path


def run_cli(*args: str, cwd: Path | None = None, fresh: bool = False) -> subprocess.CompletedProcess:
    """``edgec ARGS`` with its exit code and its stdout and stderr (fd-level, C++ output included).

    By default in this process: the same code path as the command (``edgec.cli.main``), without a new
    TensorFlow import (8 s) per call. ``fresh`` runs a real child process, for what needs one: a crash, a
    signal, what a process imports, its environment.
    """
    if fresh:
        return subprocess.run([sys.executable, "-m", "edgec", *args], capture_output=True, text=True,
                              cwd=cwd, timeout=600)
    return _in_process([str(a) for a in args], cwd)


def _in_process(args: list[str], cwd: Path | None) -> subprocess.CompletedProcess:
    from edgec import cli
    from edgec.load import limits

    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds = {fd: os.dup(fd) for fd in (1, 2)}
    files = {fd: tempfile.TemporaryFile() for fd in (1, 2)}
    streams, here = (sys.stdout, sys.stderr), os.getcwd()
    try:
        for fd, f in files.items():
            os.dup2(f.fileno(), fd)
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)
        if cwd is not None:
            os.chdir(cwd)
        try:
            cli.main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = streams
        for fd, copy in saved_fds.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.chdir(here)
        limits.set_current(limits.Limits())  # what the command set for its own process
        log = logging.getLogger("edgec")
        log.handlers[:], log.propagate = [], True
    text = {}
    for fd, f in files.items():
        f.seek(0)
        text[fd] = f.read().decode("utf-8", "replace")
        f.close()
    return subprocess.CompletedProcess(["edgec", *args], code, text[1], text[2])


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *words: str) -> None:
    """Exit code, a single stderr line starting with 'edgec: error:', no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("edgec: error:"), lines[0]
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])
    assert proc.stdout == ""


@pytest.fixture(scope="session")
def tfk():
    from edgec import frameworks

    return frameworks.tf_keras()


@pytest.fixture(scope="session")
def k3():
    from edgec import frameworks

    return frameworks.keras3()


@pytest.fixture(scope="session")
def tiny_cnn(tfk):
    """A seeded tf_keras CNN with Conv2D, BatchNorm, DepthwiseConv2D, Add, pooling and Dense."""
    tfk.utils.set_random_seed(1)
    inp = tfk.Input((8, 8, 1))
    x = tfk.layers.Conv2D(4, 3, padding="same", name="c1")(inp)
    x = tfk.layers.BatchNormalization(name="bn")(x)
    x = tfk.layers.ReLU(name="r1")(x)
    y = tfk.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = tfk.layers.Add(name="add")([x, y])
    x = tfk.layers.MaxPooling2D(2, name="mp")(x)
    x = tfk.layers.Flatten(name="flat")(x)
    out = tfk.layers.Dense(5, activation="softmax", name="fc")(x)
    model = tfk.Model(inp, out)
    rng = np.random.default_rng(1)
    bn = model.get_layer("bn")
    bn.set_weights([rng.uniform(0.5, 1.5, 4), rng.normal(0, 0.1, 4), rng.normal(0, 0.2, 4), rng.uniform(0.5, 2, 4)])
    return model


@pytest.fixture(scope="session")
def tiny_x():
    return np.random.default_rng(2).uniform(0, 1, (64, 8, 8, 1)).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_tflite(tiny_cnn, tiny_x):
    from edgec.convert.int8 import convert_int8

    return convert_int8(tiny_cnn, tiny_x)


@pytest.fixture(scope="session")
def sample_build(tmp_path_factory):
    """One real build of the bundled sample through the CLI, shared by several tests."""
    out = tmp_path_factory.mktemp("sample") / "out"
    proc = run_cli("build", str(SAMPLE / "digits.keras"), "--target", "cortex-m4",
                   "--data", str(SAMPLE / "digits.npz"), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    return out, proc


def repacked_tflite(data: bytes, edit) -> bytes:
    """``data`` after ``edit(model)`` on the flatbuffers object API's model, packed again."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    obj = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    edit(obj)
    b = flatbuffers.Builder(1024)
    b.Finish(obj.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def have(*tools: str) -> bool:
    return all(shutil.which(t) for t in tools)


@pytest.fixture
def edgec(monkeypatch, tmp_path):
    """``edgec ARGS`` in this process (:func:`run_cli`), from ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    return lambda *args: run_cli(*(str(a) for a in args))


def recipe_file(tmp: Path, text: str) -> Path:
    """An edgec.toml building the bundled sample for cortex-m4 into out/, plus ``text``."""
    path = tmp / "edgec.toml"
    path.write_text(f'model = "{SAMPLE / "digits.keras"}"\ntarget = "cortex-m4"\nout = "out"\n{text}\n')
    return path
