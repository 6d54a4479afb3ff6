"""Eighty-odd distinct bad inputs through the `edgec` command (CASES in a fresh process each, BAD
in-process through the same ``edgec.cli.main``): each is exit 2 (1 for a budget failure), one line on
stderr naming the problem and the fix, no traceback, nothing on stdout and nothing written."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE, assert_one_line_error, recipe_file, repacked_tflite

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
def test_bad_input(case, edgec, tmp_path):
    make_args, code, words = CASES[case]
    args = make_args(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = edgec(*args)
    if code == 1:  # a budget failure: the one line names the budget
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("edgec: budget exceeded:") and words in lines[0], lines
    else:
        assert_one_line_error(proc, code, words)
    after = sorted(p.name for p in tmp_path.iterdir())
    assert after == before, "a failed command left files behind"


# ---- issue 28: bad values that printed tracebacks, exited wrongly or hung; run in-process ---------

def _profile(tmp: Path, text: str) -> str:
    path = tmp / "board.toml"
    path.write_text(f'extends = "cortex-m4"\nname = "board"\n{text}\n')
    return str(path)


def _check_args(tmp, *extra):
    from conftest import DATA as TEST_DATA

    return ["check", str(TEST_DATA / "fuzz" / "tflite" / "seed.tflite"), "-t", "cortex-m4", *extra]


def _extends_chain(tmp: Path) -> str:
    for i in range(1200):
        parent = f"p{i + 1}.toml" if i < 1199 else "cortex-m4"
        (tmp / f"p{i}.toml").write_text(f'extends = "{tmp / parent if i < 1199 else parent}"\nname = "p{i}"\n')
    return str(tmp / "p0.toml")


def _text(tmp: Path, name: str, text: str) -> str:
    (tmp / name).write_text(text)
    return str(tmp / name)


def _fifo(tmp: Path, name: str) -> str:
    path = tmp / name
    os.mkfifo(path)
    return str(path)


def _huge_config(tmp: Path) -> str:
    layers = [{"class_name": "Dense", "config": {"name": f"d{i}", "units": 1}} for i in range(10_000)]
    path = tmp / "huge.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"layers": layers}}))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
    return str(path)


def _pagemap_link(tmp: Path) -> str:
    link = tmp / "m.tflite"
    link.symlink_to("/proc/self/pagemap")
    return str(link)


def _bad_fingerprint(tmp: Path) -> str:
    from edgec import frameworks

    tfk = frameworks.tf_keras()
    inp = tfk.Input((8, 8, 1))
    path = tmp / "sm"
    tfk.Model(inp, tfk.layers.Dense(2)(tfk.layers.Flatten()(inp))).save(path, save_format="tf")
    (path / "fingerprint.pb").write_bytes(b"\xff\xff\xff garbage")
    return str(path)


def _build_args(model=MODEL, data=DATA, *extra):
    return lambda t: ["build", model(t) if callable(model) else model, "-t", "cortex-m4",
                      "-d", data(t) if callable(data) else data, "-o", str(t / "out"), *extra]


def _recipe_case(text: str, words: str):
    """A recipe that builds the sample on random data, plus ``text``; the words its refusal must hold."""
    return lambda t: ["build", "--config", recipe_file(t, f'data = "random"\n{text}')], words


BAD = {
    "recipe budgets = 5": _recipe_case('budgets = 5', "budgets must be a table"),
    "recipe seed = 'abc'": _recipe_case('seed = "abc"', "seed must be a whole number"),
    "recipe seed = -1": _recipe_case('seed = -1', "seed must be a whole number"),
    "recipe name = 5": _recipe_case('name = 5', "name must be a string"),
    "recipe training = 5": _recipe_case('training = 5', "[training] must be a table"),
    "recipe epochs = 1e9": _recipe_case('[training]\nepochs = 1000000000',
                                        "epochs must be a whole number from 0 to 10,000"),
    "recipe learning_rate = nan": _recipe_case('[training]\nlearning_rate = nan', "learning_rate"),
    "recipe budget nan": _recipe_case('[budgets]\nlatency = nan', "finite number"),
    "recipe budget negative": _recipe_case('[budgets]\nram = -5', ">= 0"),
    "--seed -1": (_build_args(MODEL, "random", "--seed", "-1"), "--seed"),
    "--max-input-size 1e400": (lambda t: ["--max-input-size", "1e400", *_check_args(t)], "is not a size"),
    "--max-memory 1e400": (lambda t: ["--max-memory", "1e400", *_check_args(t)], "is not a size"),
    "--budget ram=1e400": (lambda t: _check_args(t, "--budget", "ram=1e400"), "finite number"),
    "--budget latency=nan": (lambda t: _check_args(t, "--budget", "latency=nan"), "no valid unit"),
    "profile budgets = 5": (lambda t: ["check", MODEL, "-t", _profile(t, "budgets = 5")], "budgets must be a table"),
    "profile npu = 5": (lambda t: ["check", MODEL, "-t", _profile(t, "npu = 5")], "npu must be a table"),
    "profile instructions = 5": (lambda t: ["check", MODEL, "-t", _profile(t, "instructions = 5")],
                                 "instructions must be a table"),
    "profile cycle count a string": (lambda t: ["check", MODEL, "-t", _profile(
        t, '[instructions.tflm-reference]\nCONV_2D = { per_mac = "fast" }')], "per_mac must be a number"),
    "profile cycles_per_instruction = nan": (lambda t: ["check", MODEL, "-t", _profile(
        t, "[cycles_per_instruction]\nc = nan")], "cycles_per_instruction"),
    "profile flash_bytes = true": (lambda t: ["check", MODEL, "-t", _profile(t, "flash_bytes = true")],
                                   "flash_bytes must be a whole number"),
    "profile phone_macs_per_second = 0": (lambda t: ["check", MODEL, "-t", _profile(
        t, "phone_macs_per_second = 0")], "phone_macs_per_second must be a number > 0"),
    "profile extends chain of 1,200 files": (lambda t: ["check", MODEL, "-t", _extends_chain(t)],
                                             "more than 16 profiles"),
    "profile extends = 5": (lambda t: ["check", MODEL, "-t", _text(t, "x.toml", "extends = 5\nname = 'x'\n")],
                            "extends must be"),
    "one-hot labels of the wrong width": (_build_args(MODEL, lambda t: _npz(
        t, "d.npz", x=_x(40), y=np.eye(7)[np.arange(40) % 7])), "7 values per sample"),
    "labels out of range": (_build_args(MODEL, lambda t: _npz(t, "d.npz", x=_x(40), y=np.arange(40) % 12)),
                            "class ids from 0 to 11"),
    "negative labels": (_build_args(MODEL, lambda t: _npz(t, "d.npz", x=_x(40), y=np.arange(40) % 10 - 1)),
                        "class ids from -1"),
    "fractional labels": (_build_args(MODEL, lambda t: _npz(t, "d.npz", x=_x(40), y=np.linspace(0, 9, 40))),
                          "fractional"),
    "--summary-md is a FIFO": (lambda t: _check_args(t, "--summary-md", _fifo(t, "fifo")), "not a regular file"),
    "model is a FIFO": (lambda t: ["build", _fifo(t, "m.keras"), "-t", "cortex-m4", "-d", "random", "-o",
                                   str(t / "out")], "not a regular file"),
    "data is a FIFO": (_build_args(MODEL, lambda t: _fifo(t, "d.npz")), "not a regular file"),
    "tflite linked to /proc/self/pagemap": (lambda t: ["check", _pagemap_link(t), "-t", "cortex-m4"],
                                            "says it is empty but has content"),
    "recipe linked to /proc/self/status": (lambda t: ["build", "--config", str(
        (t / "r.toml").symlink_to("/proc/self/status") or t / "r.toml")], "not valid TOML"),
    "SavedModel with a garbage fingerprint.pb": (_build_args(_bad_fingerprint, "random"), "fingerprint.pb is damaged"),
    "config with 10,000 layers": (_build_args(_huge_config, "random"), "lists 10,000 layers"),
    "npz whose float32 copy is over the limit": (lambda t: ["--max-input-size", "1MiB", *_build_args(
        MODEL, lambda u: _npz(u, "d.npz", x=np.zeros((5000, 8, 8, 1), np.uint8)))(t)], "input limit"),
    "--out is the current directory": (lambda t: ["build", MODEL, "-t", "cortex-m4", "-d", "random", "-o", "."],
                                       "current directory"),
    "--out a dangling link": (lambda t: ["build", MODEL, "-t", "cortex-m4", "-d", "random", "-o", str(
        (t / "link").symlink_to(t / "nowhere") or t / "link")], "does not exist"),
    "--task unknown": (_build_args(MODEL, "random", "--task", "segmentation"), "--task"),
    "recipe task unknown": _recipe_case('task = "segmentation"', "task 'segmentation' is not known"),
    "recipe strict = 'yes'": _recipe_case('strict = "yes"', "strict must be true or false"),
    "recipe code_folders": _recipe_case('code_folders = ["/"]', "code_folders cannot be set in a recipe"),
    "--custom-objects a path outside the folder": (_build_args(MODEL, "random", "--custom-objects", "/etc/x.py"),
                                                   "no such .py file"),
}


def test_at_least_forty_bad_values():
    assert len(BAD) >= 40


@pytest.mark.parametrize("case", list(BAD))
def test_bad_value(case, edgec, tmp_path):
    args = BAD[case][0](tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = edgec(*args)
    assert_one_line_error(proc, 2, BAD[case][1])
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "a failed command left files behind"
