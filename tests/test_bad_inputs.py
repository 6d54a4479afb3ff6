"""Thirty-odd distinct bad inputs through the real `edgec` command: each is exit 2 (1 for a budget
failure), one line on stderr naming the problem and the fix, no traceback, and nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE, assert_one_line_error, repacked_tflite, run_cli

SEED_TFLITE = Path(__file__).resolve().parent / "data" / "fuzz" / "tflite" / "seed.tflite"
MODEL, DATA = str(SAMPLE / "digits.keras"), str(SAMPLE / "digits.npz")


def _read_only_dir(tmp: Path) -> Path:
    """A directory nobody can create files in; root ignores permissions, so /proc for root."""
    if os.geteuid() == 0:
        return Path("/proc")
    d = tmp / "ro"
    d.mkdir()
    d.chmod(0o555)
    return d


def _mutated(edit) -> bytes:
    return repacked_tflite(SEED_TFLITE.read_bytes(), edit)


def _negative_scale(m):
    m.subgraphs[0].tensors[0].quantization.scale = [-0.5]


def _flip(data: bytes, pos: int, mask: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= mask
    return bytes(b)


def _write(tmp: Path, name: str, content) -> str:
    path = tmp / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return str(path)


def _npz(tmp: Path, name: str, **arrays) -> str:
    path = tmp / name
    np.savez(path, **arrays)
    return str(path)


def _x(n=20, value=None):
    x = np.random.default_rng(0).random((n, 8, 8, 1)).astype(np.float32)
    if value is not None:
        x[3, 2, 1, 0] = value
    return x


def _lambda_model(tmp: Path) -> str:
    import keras

    inp = keras.Input((8, 8, 1))
    out = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inp)
    path = tmp / "lam.keras"
    keras.Model(inp, keras.layers.Flatten()(out)).save(path)
    return str(path)


def _check(model_path, *extra):
    return ["check", model_path, "-t", "cortex-m4", *extra]


def _build(model=MODEL, data=DATA, *extra, out=None):
    return lambda tmp: ["build", model(tmp) if callable(model) else model, "-t", "cortex-m4",
                        "-d", data(tmp) if callable(data) else data, "-o", out or str(tmp / "out"), *extra]


SEED = SEED_TFLITE.read_bytes()
# id: (arguments for `edgec`, given a temporary directory) , exit code, words the message must hold
CASES = {
    # .tflite files given to `edgec check`
    "tflite truncated to half": (lambda t: _check(_write(t, "m.tflite", SEED[: len(SEED) // 2])), 2, "corrupt"),
    "tflite truncated to 7 bytes": (lambda t: _check(_write(t, "m.tflite", SEED[:7])), 2, "not a TFLite"),
    "tflite root offset flipped": (lambda t: _check(_write(t, "m.tflite", _flip(SEED, 2, 0x40))), 2, "outside"),
    "tflite identifier flipped": (lambda t: _check(_write(t, "m.tflite", _flip(SEED, 5, 0x01))), 2, "TFL3"),
    "random bytes named .tflite": (lambda t: _check(_write(t, "m.tflite", os.urandom(4096))), 2, "TFLite"),
    "empty .tflite": (lambda t: _check(_write(t, "m.tflite", b"")), 2, "not a TFLite"),
    "directory as model": (lambda t: _check(str(t)), 2, "not a file"),
    "keras file given to check": (lambda t: _check(MODEL), 2, "not a TFLite"),
    "tensor buffer out of range": (lambda t: _check(_write(t, "m.tflite", _mutated(
        lambda m: setattr(m.subgraphs[0].tensors[1], "buffer", 99)))), 2, "buffer 99"),
    "negative quantization scale": (lambda t: _check(_write(t, "m.tflite", _mutated(_negative_scale))), 2, "scale"),
    "model over --max-input-size": (lambda t: ["--max-input-size", "1KiB", *_check(str(SEED_TFLITE))], 2,
                                    "input limit"),
    "activations over --max-memory": (lambda t: ["--max-memory", "16", *_check(str(SEED_TFLITE))], 2,
                                      "--max-memory"),
    "--max-memory not a size": (lambda t: ["--max-memory", "lots", *_check(str(SEED_TFLITE))], 2, "not a size"),
    # targets and budgets
    "unknown target": (lambda t: ["check", str(SEED_TFLITE), "-t", "cortex-m99"], 2, "unknown target"),
    "target TOML malformed": (lambda t: ["check", str(SEED_TFLITE), "-t", _write(t, "b.toml", "name = [oops")], 2,
                              "not valid TOML"),
    "target TOML misspelled key": (lambda t: ["check", str(SEED_TFLITE), "-t", _write(
        t, "b.toml", 'extends = "cortex-m4"\nclock_hzz = 1\n')], 2, "clock_hz"),
    "budget with the wrong unit": (lambda t: _check(str(SEED_TFLITE), "--budget", "ram=5ms"), 2, "no valid unit"),
    "unknown budget name": (lambda t: _check(str(SEED_TFLITE), "--budget", "speed=1"), 2, "unknown budget"),
    "budget exceeded": (lambda t: _check(str(SEED_TFLITE), "-q", "--budget", "ram=1KiB"), 1, "ram"),
    "accuracy budget on unlabelled data": (_build(MODEL, "random", "--budget", "accuracy_drop=1%"), 2, "no labels"),
    "ram budget on a phone": (lambda t: ["check", str(SEED_TFLITE), "-t", "mobile", "--budget", "ram=1MiB"], 2,
                              "only on MCU targets"),
    "--summary-md in a read-only directory": (lambda t: _check(
        str(SEED_TFLITE), "--summary-md", str(_read_only_dir(t) / "s.md")), 2, "cannot write"),
    # data given to `edgec build`
    "npz without arrays": (_build(data=lambda t: _npz(t, "d.npz")), 2, "needs 'x'"),
    "npz with x and y of different lengths": (_build(data=lambda t: _npz(t, "d.npz", x=_x(20), y=np.zeros(7))), 2,
                                              "labels for"),
    "npz of the wrong shape": (_build(data=lambda t: _npz(t, "d.npz", x=np.zeros((5, 28, 28, 1)))), 2, "shape"),
    "NaN in the data": (_build(data=lambda t: _npz(t, "d.npz", x=_x(value=np.nan))), 2, "NaN"),
    "Inf in the data": (_build(data=lambda t: _npz(t, "d.npz", x=_x(value=np.inf))), 2, "infinite"),
    "random bytes named .npz": (_build(data=lambda t: _write(t, "d.npz", os.urandom(2048))), 2, "not a readable"),
    "npz holding Python objects": (_build(data=lambda t: _npz(t, "d.npz", x=np.array([{"a": 1}], dtype=object))),
                                   2, "Python objects"),
    "npz expanding past the limit": (lambda t: ["--max-input-size", "1MiB", *_build(data=lambda u: _npz(
        u, "d.npz", x=np.zeros((16000, 8, 8, 1), np.float32)))(t)], 2, "input limit"),
    # models given to `edgec build`
    "h5 that is not a model": (_build(model=lambda t: _h5_data(t)), 2, "could not load"),
    "truncated .keras": (_build(model=lambda t: _write(t, "m.keras", (SAMPLE / "digits.keras").read_bytes()[:900])),
                         2, "not a Keras model"),
    "model with a Lambda layer": (_build(model=_lambda_model), 2, "layer 'double' is a Lambda"),
    # recipes and output
    "recipe TOML malformed": (lambda t: ["build", "--config", _write(t, "edgec.toml", "model = 'a\n")], 2,
                              "not valid TOML"),
    "recipe misspelled key": (lambda t: ["build", "--config", _write(
        t, "edgec.toml", f'model = "{MODEL}"\ndata = "{DATA}"\ntarget = "cortex-m4"\ncalibration_sample = 5\n')], 2,
        "calibration_samples"),
    "recipe budget without a unit": (lambda t: ["build", "--config", _write(
        t, "edgec.toml", f'model = "{MODEL}"\ndata = "{DATA}"\ntarget = "cortex-m4"\n[budgets]\nram = "96 apples"\n')],
        2, "no valid unit"),
    "unknown stage": (_build(MODEL, DATA, "--stage", "shrinkify"), 2, "shrinkify"),
    "output inside a read-only directory": (lambda t: _build(out=str(_read_only_dir(t) / "edgec-out"))(t), 2,
                                            "--out"),
}


def _h5_data(tmp: Path) -> str:
    import h5py

    path = tmp / "data.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    return str(path)


def test_at_least_thirty_distinct_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, tmp_path):
    make_args, code, words = CASES[case]
    args = make_args(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = run_cli(*args)
    if code == 1:  # a budget failure: the one line names the budget
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("edgec: budget exceeded:") and words in lines[0], lines
    else:
        assert_one_line_error(proc, code, words)
    after = sorted(p.name for p in tmp_path.iterdir())
    assert after == before, "a failed command left files behind"
