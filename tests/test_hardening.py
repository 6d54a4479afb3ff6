"""Hostile and broken inputs: code in model files, corrupt flatbuffers, crashing interpreters,
interrupted writes, oversized files."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, SAMPLE, assert_one_line_error, recipe_file, repacked_tflite, run_cli
from edgec.emit import artifacts
from edgec.errors import ModelLoadError, OutputError, RuntimeCheckError
from edgec.load import flatbuffer_check, limits
from edgec.load.model import load_model
from edgec.load.tflite_file import read_tflite
from edgec.runtime import litert, micro, sandbox

MODEL = str(SAMPLE / "digits.keras")


# ---- safe loading ----------------------------------------------------------------------------

def _writer(marker: Path):
    """A lambda that writes ``marker`` (its path a constant in the code, not a closure)."""
    return eval(f"lambda t: (open({str(marker)!r}, 'w').write('ran'), t * 2.0)[1]")


def _lambda_model_keras3(path: Path, marker: Path):
    import keras

    inp = keras.Input((4,), name="x")
    out = keras.layers.Lambda(_writer(marker), name="doubler")(inp)
    keras.Model(inp, keras.layers.Dense(2, name="head")(out)).save(path)
    marker.unlink(missing_ok=True)  # building the model ran the lambda once


def test_lambda_model_does_not_run_its_code_by_default(tmp_path):
    model, marker = tmp_path / "lam.keras", tmp_path / "marker.txt"
    _lambda_model_keras3(model, marker)
    with pytest.raises(ModelLoadError, match="layer 'doubler' is a Lambda layer.*--allow-custom-code"):
        load_model(model)
    assert not marker.exists()
    # Negative control: the file does carry code that writes the marker once it is allowed to run.
    try:
        load_model(model, safe_mode=False)
    except ModelLoadError:
        pass  # the Keras 3 -> tf_keras bridge may refuse a Lambda, after Keras ran it
    assert marker.read_text() == "ran"


def test_lambda_in_hdf5_is_refused_before_loading(tfk, tmp_path):
    model, marker = tmp_path / "lam.h5", tmp_path / "marker.txt"
    inp = tfk.Input((4,))
    out = tfk.layers.Lambda(_writer(marker), name="writer")(inp)
    tfk.Model(inp, out).save(model)
    marker.unlink(missing_ok=True)
    with pytest.raises(ModelLoadError, match="layer 'writer' is a Lambda layer"):
        load_model(model)
    assert not marker.exists()


def test_hdf5_is_read_in_the_sandbox_before_keras_sees_it(tfk, tmp_path, monkeypatch):
    """A crash of libhdf5 on the first read is an error naming the file, and Keras never opens it."""
    model = tmp_path / "m.h5"
    inp = tfk.Input((4,))
    tfk.Model(inp, tfk.layers.Dense(2)(inp)).save(model)
    calls = []

    def crashed(fn, *args, runtime, **kwargs):
        calls.append((fn.__module__, runtime))
        raise RuntimeCheckError(f"{runtime} crashed (SIGSEGV) on {sandbox._LABEL.get()}")  # as sandbox.call does

    monkeypatch.setattr(sandbox, "call", crashed)
    monkeypatch.setattr("edgec.load.model._load_any", lambda *a: pytest.fail("Keras opened the file"))
    with pytest.raises(RuntimeCheckError, match=r"libhdf5 \(h5py\) crashed \(SIGSEGV\) on m.h5"):
        load_model(model)
    assert calls == [("edgec.load.hdf5", "libhdf5 (h5py)")]


@pytest.mark.parametrize("name", ["regress-libhdf5-segv-1.h5", "regress-libhdf5-segv-2.h5"])
def test_hdf5_that_crashes_libhdf5_is_an_error_naming_the_file(tmp_path, name):
    """Bit-flipped Keras .h5 files (found by fuzzing) on which h5py segfaults; edgec 06fefa3 died with them."""
    model = tmp_path / "model.h5"
    model.write_bytes((ROOT / "tests" / "data" / "fuzz" / "h5" / name).read_bytes())
    proc = run_cli("build", str(model), "--target", "cortex-m4", "--data", "random", "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, 2, "libhdf5 (h5py) crashed (SIGSEGV) on model.h5", "re-save the model")
    assert not (tmp_path / "out").exists()


def test_a_keras_loader_that_never_finishes_is_stopped(tfk, tmp_path, monkeypatch):
    """Fuzzing found a damaged model_config that kept tf_keras busy for minutes: the loader has a time limit."""
    from edgec.load import model as models

    model = tmp_path / "m.h5"
    inp = tfk.Input((4,))
    tfk.Model(inp, tfk.layers.Dense(2)(inp)).save(model)

    def busy(*args):
        while True:
            pass

    monkeypatch.setattr(models, "_load_any", busy)
    monkeypatch.setattr(models, "LOAD_TIMEOUT_S", 1.0)
    t0 = time.monotonic()
    with pytest.raises(ModelLoadError, match="took more than 1 s and was stopped"):
        load_model(model)
    assert time.monotonic() - t0 < 10
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_hdf5_dataset_expanding_past_the_limit_is_refused(tmp_path):
    import h5py

    model = tmp_path / "bomb.h5"
    with h5py.File(model, "w") as f:
        f.create_dataset("w", shape=(1 << 22,), dtype="f4", compression="gzip", fillvalue=0.0)
        f.attrs["model_config"] = "{}"
    assert model.stat().st_size < 100_000
    proc = run_cli("--max-input-size", "4MiB", "build", str(model), "--target", "cortex-m4", "--data", "random",
                   "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, 2, "dataset /w expands to 16,777,216 bytes", "--max-input-size")


def test_hdf5_reading_other_files_is_refused(tmp_path):
    import h5py

    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x01" * 64)
    model = tmp_path / "ext.h5"
    with h5py.File(model, "w") as f:
        f.create_dataset("w", shape=(16,), dtype="f4", external=[(str(secret), 0, 64)])
    with pytest.raises(ModelLoadError, match="reads its data from other files"):
        load_model(model)


CUSTOM_LAYER = '''
import tf_keras as k

class Scale(k.layers.Layer):
    def call(self, x):
        return x * 3.0
'''


def test_custom_class_needs_custom_objects(tfk, tmp_path, monkeypatch):
    (tmp_path / "mylayers.py").write_text(CUSTOM_LAYER)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)  # --custom-objects modules are the user's own files, in the current folder
    import mylayers

    inp = tfk.Input((4,))
    path = tmp_path / "custom.h5"
    tfk.Model(inp, tfk.layers.Dense(2)(mylayers.Scale(name="triple")(inp))).save(path)
    with pytest.raises(ModelLoadError, match="layer 'triple' uses class Scale.*--custom-objects"):
        load_model(path)
    loaded = load_model(path, custom_objects=("mylayers",))
    assert [layer.name for layer in loaded.keras.layers][1] == "triple"


def _savedmodel(tfk, path: Path, marker: Path | None = None, rnn: bool = False) -> Path:
    """A tf_keras functional model saved as a SavedModel; with ``marker``, a resource rides along
    whose initializer (run by TensorFlow when the SavedModel loads) writes that file."""
    import tensorflow as tf

    inp = tfk.Input((6, 4) if rnn else (4,))
    x = tfk.layers.LSTM(3)(inp) if rnn else inp
    model = tfk.Model(inp, tfk.layers.Dense(2, name="head")(tfk.layers.Dropout(0.2)(x)))
    if marker is not None:
        class Writer(tf.saved_model.experimental.TrackableResource):
            def _create_resource(self):
                return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="w")

            def _initialize(self):
                tf.io.write_file(str(marker), "written by the SavedModel")
                return tf.raw_ops.AssignVariableOp(resource=self.resource_handle, value=tf.constant(1.0))

        model.writer = Writer()
    model.save(path, save_format="tf")
    return path


def test_savedmodel_that_writes_a_file_at_load_is_refused_before_loading(tfk, tmp_path):
    marker = tmp_path / "written.txt"
    path = _savedmodel(tfk, tmp_path / "sm", marker)
    assert not marker.exists()
    out = tmp_path / "out"
    proc = run_cli("build", str(path), "--target", "mobile", "--data", "random", "--out", str(out))
    assert_one_line_error(proc, 2, "op WriteFile", "initializer", "--allow-custom-code")
    assert not marker.exists() and not out.exists()


def test_plain_keras_savedmodels_load(tfk, tmp_path):
    """No false alarm: tf_keras's SavedModel metadata (TensorShape values), dropout's random
    numbers, LSTM's cuDNN kernels and the save/restore functions are all allowed."""
    assert load_model(_savedmodel(tfk, tmp_path / "dense")).format == "savedmodel"
    assert load_model(_savedmodel(tfk, tmp_path / "lstm", rnn=True)).format == "savedmodel"


def test_savedmodel_graph_scan_refuses_each_kind_of_op(tfk, tmp_path):
    from tensorflow.core.protobuf import saved_model_pb2

    from edgec.load import savedmodel_ops

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((_savedmodel(tfk, tmp_path / "sm") / "saved_model.pb").read_bytes())
    assert savedmodel_ops.refused_ops(proto) == []
    library = proto.meta_graphs[0].graph_def.library.function
    saver = next(f for f in library if "traced_save" in f.signature.name)
    other = next(f for f in library if "traced_" not in f.signature.name)
    saver.node_def.add(name="leak", op="ReadFile")          # not a checkpoint op
    other.node_def.add(name="py", op="EagerPyFunc")         # Python
    other.node_def.add(name="q", op="FIFOQueueV2")          # stateful, no Keras layer uses it
    proto.meta_graphs[0].graph_def.node.add(name="x", op="NoSuchOpAnywhere")
    reasons = {(op, why.split(" ")[0]) for op, _, why in savedmodel_ops.refused_ops(proto)}
    assert reasons == {("ReadFile", "a"), ("EagerPyFunc", "it"), ("FIFOQueueV2", "it"), ("NoSuchOpAnywhere",
                                                                                         "TensorFlow")}


# ---- flatbuffer verification -----------------------------------------------------------------

def _conv_weights(m):
    g = m.subgraphs[0]
    return next(t for t in g.tensors if m.buffers[t.buffer].data is not None and len(m.buffers[t.buffer].data) > 16)


def _set_buffer_offset(m):
    b = m.buffers[_conv_weights(m).buffer]
    b.data, b.offset, b.size = None, 10**9, 64


def _put(obj, field: str, index: int, value: int):
    """``obj.field[index] = value`` on the object API's (read-only NumPy) lists."""
    seq = [int(v) for v in getattr(obj, field)]
    seq[index] = value
    setattr(obj, field, seq)


SEMANTIC_CASES = {
    "tensor buffer index out of range": (lambda m: setattr(m.subgraphs[0].tensors[0], "buffer", 999), "buffer 999"),
    "operator input out of range": (lambda m: _put(m.subgraphs[0].operators[0], "inputs", 0, 777), "input 777"),
    "operator output -1": (lambda m: _put(m.subgraphs[0].operators[0], "outputs", 0, -1), "output -1"),
    "opcode index out of range": (lambda m: setattr(m.subgraphs[0].operators[0], "opcodeIndex", 55), "code 55"),
    "subgraph input out of range": (lambda m: _put(m.subgraphs[0], "inputs", 0, 4000), "input 4000"),
    "negative dimension": (lambda m: _put(m.subgraphs[0].tensors[0], "shape", 0, -3), "negative"),
    "unknown tensor type": (lambda m: setattr(m.subgraphs[0].tensors[0], "type", 99), "unknown type"),
    "data shorter than the shape": (lambda m: _put(_conv_weights(m), "shape", 0, 1000), "holds"),
    "buffer offset outside the file": (_set_buffer_offset, "outside the file"),
    "no subgraph": (lambda m: setattr(m, "subgraphs", []), "no subgraph"),
}


@pytest.mark.parametrize("case", sorted(SEMANTIC_CASES))
def test_inconsistent_flatbuffers_are_refused(tiny_tflite, case):
    edit, words = SEMANTIC_CASES[case]
    bad = repacked_tflite(tiny_tflite, edit)
    with pytest.raises(ModelLoadError, match=words):
        flatbuffer_check.verify(bad, "bad.tflite")


def test_scales_that_made_tflite_micro_abort_are_refused():
    found = Path(__file__).parent / "data" / "fuzz" / "tflite" / "regress-add-scale-aborted-tflite-micro"
    with pytest.raises(ModelLoadError, match=r"op 2 \(ADD\) has input and output scales no integer kernel"):
        flatbuffer_check.verify(found.read_bytes())


def test_repacked_model_still_verifies(tiny_tflite):
    flatbuffer_check.verify(repacked_tflite(tiny_tflite, lambda m: None))  # the oracle for the edits above


def test_misaligned_union_value_of_type_none_is_refused(tiny_tflite):
    """Quantization ``details`` of type NONE whose offset field is misaligned: LiteRT's verifier checks the
    offset regardless of the type, and so must edgec's (found by fuzz/verifier_diff.py)."""
    import struct

    from ai_edge_litert import schema_py_generated as schema

    graph = schema.Model.GetRootAsModel(tiny_tflite, 0).Subgraphs(0)
    for i in range(graph.TensorsLength()):
        q = graph.Tensors(i).Quantization()
        vt = q._tab.Pos - struct.unpack_from("<i", tiny_tflite, q._tab.Pos)[0] if q else 0
        if q and struct.unpack_from("<H", tiny_tflite, vt)[0] >= 4 + 2 * 6:  # the vtable has field 5 (details)
            b = bytearray(tiny_tflite)
            struct.pack_into("<H", b, vt + 4 + 2 * 5, 1)  # details at table offset 1: misaligned
            break
    else:
        pytest.skip("no quantization vtable with a details slot in this model")
    with pytest.raises(ModelLoadError, match="misaligned"):
        flatbuffer_check.verify(bytes(b))
    with pytest.raises(ModelLoadError, match="LiteRT's verifier refuses it"):
        sandbox.call(micro.verified, bytes(b), runtime="LiteRT")


def test_structural_damage_never_reaches_tflite_micro(tiny_tflite):
    """A file LiteRT's generated C++ verifier refuses is refused by edgec's Python verifier too, in the
    CLI process (and, should it ever miss one, by that C++ verifier in the sandboxed child)."""
    from ai_edge_litert import interpreter as lrt


    rng = np.random.default_rng(1)
    refused, missed = 0, 0
    for _ in range(300):
        b = bytearray(tiny_tflite)
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
        try:
            lrt.Interpreter(model_content=bytes(b))
        except ValueError as exc:
            if "not a valid Flatbuffer" in str(exc):
                refused += 1
                try:
                    flatbuffer_check.verify(bytes(b))
                except ModelLoadError:
                    continue
                missed += 1
                with pytest.raises(ModelLoadError, match="LiteRT's verifier refuses it"):
                    micro.measure_arena(bytes(b))
        except RuntimeError:
            pass
    assert refused > 50 and missed == 0, (refused, missed)


# ---- the interpreter sandbox -----------------------------------------------------------------

def test_a_crash_in_the_interpreter_is_an_error_naming_the_model(tiny_tflite):
    result = {}

    def long_call():
        try:
            with sandbox.model_label("models/evil.tflite"):
                litert.sandbox.call(litert._host_latency_ms, tiny_tflite, 10**9, 0, 1, runtime="LiteRT")
        except RuntimeCheckError as exc:
            result["error"] = exc.one_line()

    litert.host_latency_ms(tiny_tflite, runs=1, warmup=0)  # the child is up
    pid = sandbox._child.proc.pid
    t = threading.Thread(target=long_call)
    t.start()
    time.sleep(1.0)
    os.kill(pid, signal.SIGSEGV)
    t.join(30)
    assert "LiteRT crashed (SIGSEGV) on models/evil.tflite" in result["error"]
    assert litert.host_latency_ms(tiny_tflite, runs=3, warmup=0) > 0  # a fresh child takes over


def test_a_hanging_interpreter_is_stopped(tiny_tflite):
    with pytest.raises(RuntimeCheckError, match="did not finish .* within 1 s"):
        sandbox.call(litert._host_latency_ms, tiny_tflite, 10**9, 0, 1, runtime="LiteRT", timeout=1.0)


def test_the_interpreter_process_dies_with_edgec(tiny_tflite, tmp_path):
    """A child stuck in C code (here: a very long LiteRT loop) does not outlive a killed edgec."""
    import subprocess
    import sys

    model = tmp_path / "m.tflite"
    model.write_bytes(tiny_tflite)
    code = ("import sys; from edgec.runtime import litert, sandbox; litert.host_latency_ms(open(sys.argv[1], 'rb')"
            ".read(), runs=1, warmup=0); print(sandbox._child.proc.pid, flush=True); "
            "sandbox.call(litert._host_latency_ms, open(sys.argv[1], 'rb').read(), 10**9, 0, 1, runtime='LiteRT')")
    edgec = subprocess.Popen([sys.executable, "-c", code, str(model)], stdout=subprocess.PIPE, text=True)
    child = int(edgec.stdout.readline())
    time.sleep(0.5)
    edgec.kill()
    edgec.wait()
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{child}/stat") as fh:  # a zombie waiting for init to reap it is gone too
            if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the interpreter process outlived edgec")


def test_only_interpreter_functions_run_in_the_child():
    with pytest.raises(ValueError):
        sandbox.call(os.system, "true", runtime="none")


# ---- atomic outputs --------------------------------------------------------------------------

def _previous(out: Path) -> dict:
    out.mkdir()
    (out / "model.tflite").write_bytes(b"old model")
    (out / "notes.txt").write_text("mine")
    return {p.name: p.read_bytes() for p in out.iterdir()}


def _state(out: Path) -> dict:
    return {p.name: p.read_bytes() for p in out.iterdir()}


def test_full_disk_leaves_the_previous_output(tmp_path, monkeypatch):
    out = tmp_path / "out"
    before = _previous(out)
    calls = {"n": 0}

    class FullFile:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.fh.write(data)

        def __getattr__(self, name):
            return getattr(self.fh, name)

    real_open = open
    monkeypatch.setattr("builtins.open", lambda *a, **k: FullFile(real_open(*a, **k)))
    with pytest.raises(OutputError, match="No space left on device.*previous contents are unchanged"):
        artifacts.write_artifacts(out, {"model.tflite": b"new model", "model.h": b"new header"})
    monkeypatch.undo()
    assert _state(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging directory left behind


def test_ctrl_c_while_writing_leaves_the_previous_output(tmp_path, monkeypatch):
    out = tmp_path / "out"
    before = _previous(out)
    real_fsync = os.fsync

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        artifacts.write_artifacts(out, {"model.tflite": b"new", "model.h": b"new"})
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert _state(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def _ctrl_c_as_at_a_terminal() -> None:
    """SIGINT's default action: a shell without job control starts background jobs with it ignored, and
    the tests' processes inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_interrupted_swap_never_mixes_old_and_new(tmp_path, monkeypatch):
    """Every file of the new output appears at once. Where the directories cannot be exchanged in one
    step, the writer swaps them with two os.rename calls; a real SIGINT arriving between the two must
    wait until both are done (it is held back), so the destination is never missing or mixed."""
    out = tmp_path / "out"
    before = _previous(out)
    real_rename, calls = os.rename, []

    def rename_then_sigint(src, dst):
        calls.append((src, dst))
        real_rename(src, dst)
        if len(calls) == 1:  # out moved aside, the new directory not yet in place: Ctrl-C, taken by another
            signal.pthread_kill(helper.ident, signal.SIGINT)  # thread (as TensorFlow's may take it in a build)
            time.sleep(0.2)  # time for the signal to arrive: the handler runs here if nothing holds it

    monkeypatch.setattr(artifacts, "_exchange", lambda a, b: False)  # a filesystem without RENAME_EXCHANGE
    helper = threading.Thread(target=time.sleep, args=(3,), daemon=True)
    helper.start()
    monkeypatch.setattr(os, "rename", rename_then_sigint)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own, whatever launched pytest
    try:
        with pytest.raises(KeyboardInterrupt):
            artifacts.write_artifacts(out, {"model.tflite": b"new", "model.h": b"new"})
    finally:
        signal.signal(signal.SIGINT, previous)
    monkeypatch.setattr(os, "rename", real_rename)
    assert len(calls) == 3  # out -> backup, staging -> out, backup -> staging: all before the interrupt
    assert _state(out) == {**before, "model.tflite": b"new", "model.h": b"new"}  # unrelated files kept


def test_exchange_is_the_one_step_the_writer_takes(tmp_path, monkeypatch):
    """With RENAME_EXCHANGE the destination is replaced by one renameat2 call: no os.rename at all."""
    out = tmp_path / "out"
    before = _previous(out)
    calls = []
    monkeypatch.setattr(os, "rename", lambda *a: calls.append(a))
    artifacts.write_artifacts(out, {"model.tflite": b"new"})
    assert calls == [] and _state(out) == {**before, "model.tflite": b"new"}


def test_ctrl_c_during_a_build_leaves_the_previous_output(tmp_path):
    """A real SIGINT to a real `edgec build`, sent when it reports measuring the arena (mid-build,
    with the interpreter process running)."""
    import subprocess
    import sys

    out = tmp_path / "out"
    before = _previous(out)
    proc = subprocess.Popen([sys.executable, "-m", "edgec", "build", str(SAMPLE / "digits.keras"), "-t",
                             "cortex-m4", "-d", str(SAMPLE / "digits.npz"), "-o", str(out), "--verbose"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ctrl_c_as_at_a_terminal)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "measuring the TFLite-Micro arena" in line:
            proc.send_signal(signal.SIGINT)
            break
    _, rest = proc.communicate(timeout=120)
    err = "".join(seen) + rest
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "edgec: interrupted; nothing was written" in err
    assert _state(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name != "out"]


# ---- resource limits -------------------------------------------------------------------------

def test_npz_expanding_past_the_limit_is_refused_before_loading(tmp_path):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((16000, 8, 8, 1), np.float32))  # 3.9 MiB of zeros, ~4 KiB on disk
    assert path.stat().st_size < 20_000
    proc = run_cli("--max-input-size", "1MiB", "build", str(SAMPLE / "digits.keras"), "-t", "cortex-m4",
                   "-d", str(path), "-o", str(tmp_path / "out"))
    assert_one_line_error(proc, 2, "would take 3.9 MiB", "--max-input-size")
    assert not (tmp_path / "out").exists()


def test_activations_past_the_memory_limit_are_refused(tiny_tflite, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(tiny_tflite)
    peak = read_tflite(tiny_tflite).peak_live_bytes
    proc = run_cli("--max-memory", str(peak - 1), "check", str(path), "-t", "cortex-m4")
    assert_one_line_error(proc, 2, "activations needs at least", "--max-memory")


def test_limits_parse_sizes():
    assert limits.parse_size("2GiB", "--x") == 2 << 30
    with pytest.raises(Exception, match="not a size"):
        limits.parse_size("lots", "--x")


# ---- issue 28: the twelve holes of the adversarial trial, rebuilt -----------------------------
# Each payload writes a marker file, the evidence that it ran; most cases run in-process through
# edgec.cli.main (the `edgec` fixture of conftest.py).

def _refused(proc, *words):
    assert_one_line_error(proc, 2, *words)


def _payload(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('the payload ran')"


def _save_lambda_model(tfk, path: Path, marker: Path, **save_kwargs) -> Path:
    """A tf_keras model whose Lambda writes ``marker`` whenever Keras builds it (so also when a loader
    rebuilds it), saved to ``path``; the marker its construction wrote is removed."""
    inp = tfk.Input((4,))
    code = _payload(marker)
    x = tfk.layers.Lambda(lambda t: (exec(code), t)[1], name="payload")(inp)  # noqa: S102
    tfk.Model(inp, tfk.layers.Dense(2)(x)).save(path, **save_kwargs)
    assert marker.exists()  # the payload works: building the model ran it
    marker.unlink()
    return path


def _edit_keras_config(keras_file: Path, edit) -> None:
    """Rewrite the ``config.json`` of a ``.keras`` zip with ``edit(config)``."""
    with zipfile.ZipFile(keras_file) as z:
        files = {n: z.read(n) for n in z.namelist()}
    stored = json.loads(files["config.json"])
    edit(stored)
    files["config.json"] = json.dumps(stored).encode()
    with zipfile.ZipFile(keras_file, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)


def _module(tmp: Path, name: str, marker: Path, body: str = "") -> None:
    (tmp / f"{name}.py").write_text(f"{_payload(marker)}\n{body}\n")

def test_hole1_zip_and_hdf5_polyglot_is_refused(edgec, tfk, tmp_path):
    marker = tmp_path / "PWNED"
    _save_lambda_model(tfk, tmp_path / "real.h5", marker)
    import io

    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"layers": []}}))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
    head = zbuf.getvalue()
    poly = tmp_path / "model.h5"
    poly.write_bytes(head + b"\0" * (4096 - len(head)) + (tmp_path / "real.h5").read_bytes())
    (tmp_path / "real.h5").unlink()
    _refused(edgec("build", poly, "-t", "mobile", "-d", "random", "-o", "out"), "re-save the model with Keras")
    assert not marker.exists() and not (tmp_path / "out").exists()


def _tf_keras_savedmodel(tfk, tmp: Path, marker: Path) -> Path:
    return _save_lambda_model(tfk, tmp / "sm", marker, save_format="tf")


def test_hole2_savedmodel_metadata_in_saved_model_pb_is_scanned(edgec, tfk, tmp_path):
    """The older layout: no keras_metadata.pb, the metadata in saved_model.pb's object graph."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tf_keras.protobuf import saved_metadata_pb2

    marker = tmp_path / "PWNED"
    path = _tf_keras_savedmodel(tfk, tmp_path, marker)
    meta = saved_metadata_pb2.SavedMetadata()
    meta.ParseFromString((path / "keras_metadata.pb").read_bytes())
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    nodes = proto.meta_graphs[0].object_graph_def.nodes
    for node in meta.nodes:
        nodes[node.node_id].user_object.metadata = node.metadata
    (path / "saved_model.pb").write_bytes(proto.SerializeToString())
    (path / "keras_metadata.pb").unlink()
    _refused(edgec("build", path, "-t", "mobile", "-d", "random", "-o", "out"), "Lambda", "--allow-custom-code")
    assert not marker.exists()


def test_hole3_unparsable_metadata_node_is_a_refusal_not_a_skip(edgec, tfk, tmp_path):
    from tf_keras.protobuf import saved_metadata_pb2

    marker = tmp_path / "PWNED"
    path = _tf_keras_savedmodel(tfk, tmp_path, marker)
    meta = saved_metadata_pb2.SavedMetadata()
    meta.ParseFromString((path / "keras_metadata.pb").read_bytes())
    meta.nodes[0].metadata = "{not json"
    (path / "keras_metadata.pb").write_bytes(meta.SerializeToString())
    _refused(edgec("build", path, "-t", "mobile", "-d", "random", "-o", "out"), "not valid JSON")
    assert not marker.exists()


def test_hole4_saver_def_naming_an_initializer_does_not_make_it_a_checkpoint_function(edgec, tfk, tmp_path):
    """A resource initializer that writes a checkpoint (SaveV2) at load; the save node names it too."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    marker = tmp_path / "PWNED"
    inp = tfk.Input((4,))
    model = tfk.Model(inp, tfk.layers.Dense(2)(inp))

    class Writer(tf.saved_model.experimental.TrackableResource):
        def _create_resource(self):
            return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="w")

        def _initialize(self):
            tf.raw_ops.SaveV2(prefix=str(marker), tensor_names=["x"], shape_and_slices=[""],
                              tensors=[tf.constant(1.0)])
            return tf.raw_ops.AssignVariableOp(resource=self.resource_handle, value=tf.constant(1.0))

    model.writer = Writer()
    path = tmp_path / "sm"
    model.save(path, save_format="tf")
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    mg = proto.meta_graphs[0]
    initializer = next(f.signature.name for f in mg.graph_def.library.function
                       if any(n.op == "SaveV2" for n in f.node_def) and "traced_save" not in f.signature.name)
    head = mg.saver_def.save_tensor_name.split(":")[0]
    node = next(n for n in mg.graph_def.node if n.name == head)
    node.attr["g"].func.name = initializer
    (path / "saved_model.pb").write_bytes(proto.SerializeToString())
    _refused(edgec("build", path, "-t", "mobile", "-d", "random", "-o", "out"), "op SaveV2", initializer)
    assert not list(tmp_path.glob("PWNED*"))


def test_hole5_tfoplambda_calling_tf_print_is_refused(edgec, tfk, tmp_path):
    import h5py
    import tensorflow as tf

    marker = tmp_path / "PWNED"
    inp = tfk.Input((4,))
    model = tfk.Model(inp, tf.math.multiply(inp, 2.0))
    for name in ("m.h5", "m.keras"):
        model.save(tmp_path / name)
    config = json.loads(json.dumps(model.get_config()))
    op = next(layer for layer in config["layers"] if layer["class_name"] == "TFOpLambda")
    op["config"]["function"] = "print"
    op["inbound_nodes"][0][-1] = {"output_stream": f"file://{marker}"}
    with h5py.File(tmp_path / "m.h5", "a") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Functional", "config": config})
    _refused(edgec("build", tmp_path / "m.h5", "-t", "mobile", "-d", "random", "-o", "out"),
             "TFOpLambda calling tf.print")
    keras_file = tmp_path / "m.keras"

    def to_print(stored):
        next(layer for layer in stored["config"]["layers"] if layer["class_name"] == "TFOpLambda")["config"][
            "function"] = "print"

    _edit_keras_config(keras_file, to_print)
    _refused(edgec("build", keras_file, "-t", "mobile", "-d", "random", "-o", "out"), "TFOpLambda calling tf.print")
    assert not marker.exists()


@pytest.mark.parametrize("tag", ["__typespec__", "function"])
def test_hole6_typespec_and_function_objects_naming_a_module_are_refused(edgec, tfk, tmp_path, tag):
    marker = tmp_path / "PWNED"
    _module(tmp_path, "evil_mod", marker, "def act(x):\n    return x\n")
    inp = tfk.Input((4,))
    keras_file = tmp_path / "m.keras"
    tfk.Model(inp, tfk.layers.Dense(2, name="d")(inp)).save(keras_file)

    def import_evil(stored):
        dense = next(layer for layer in stored["config"]["layers"] if layer["class_name"] == "Dense")
        dense["config"]["activation"] = {"class_name": tag, "config": "act", "spec_name": "act",
                                         "module": "evil_mod", "registered_name": "act"}

    _edit_keras_config(keras_file, import_evil)
    _refused(edgec("build", keras_file, "-t", "mobile", "-d", "random", "-o", "out"), "from module 'evil_mod'")
    assert not marker.exists()


def test_hole7_allow_custom_code_in_a_recipe_is_refused(edgec, tmp_path):
    recipe = recipe_file(tmp_path, 'data = "random"\nallow_custom_code = true')
    _refused(edgec("build", "--config", recipe), "allow_custom_code cannot be set in a recipe",
             "--allow-custom-code")


def test_hole8_recipe_data_loader_runs_only_with_trustrecipe_file(edgec, tmp_path):
    marker = tmp_path / "PWNED"
    _module(tmp_path, "evil_loader", marker, "def load():\n    return None\n")
    recipe = recipe_file(tmp_path, 'data = "evil_loader:load"')
    _refused(edgec("build", "--config", recipe), "--trust-recipe", "evil_loader:load")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_hole9_custom_objects_never_import_installed_modules(edgec, tmp_path):
    recipe = recipe_file(tmp_path, 'data = "random"\ncustom_objects = ["this"]')
    _refused(edgec("build", "--config", recipe), "--trust-recipe")
    proc = edgec("build", MODEL, "-t", "cortex-m4", "-d", "random", "-o", "out", "--custom-objects", "this",
                 "--json")
    _refused(proc, "no module 'this'", "never the standard library")
    assert "Zen of Python" not in proc.stdout + proc.stderr  # `import this` prints it: it was not imported


@pytest.mark.parametrize("spec", ["sys:exit", "faulthandler:_sigsegv", "os:getcwd"])
def test_holes10_11_loaders_from_the_standard_library_are_refused(edgec, tmp_path, spec):
    _refused(edgec("build", "--config", recipe_file(tmp_path, f'data = "{spec}"')), "--trust-recipe")
    recipe = recipe_file(tmp_path, f'data = "{spec}"')
    _refused(edgec("build", "--config", recipe, "--trust-recipe"), f"no module '{spec.split(':')[0]}'")
    _refused(edgec("build", MODEL, "-t", "cortex-m4", "-d", spec, "-o", "out"), "never the standard library")


def test_trusted_recipe_loader_runs_and_its_prints_stay_off_stdout(edgec, tmp_path):
    (tmp_path / "loader.py").write_text(
        "import numpy as np\n"
        "def load():\n"
        "    print('hello from the loader')\n"
        "    return np.random.default_rng(0).random((40, 8, 8, 1)).astype('float32')\n")
    recipe = recipe_file(tmp_path, 'data = "loader.py:load"')
    proc = edgec("build", "--config", recipe, "--trust-recipe", "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["data"]["source"] == "loader.py:load"
    assert "hello from the loader" in proc.stderr


@pytest.mark.parametrize("body,words", [
    ("import sys\ndef load():\n    sys.exit(0)\n", "called exit(0)"),
    ("def load():\n    return None\n", "returned nothing"),
    ("import sys\nsys.exit(3)\ndef load():\n    pass\n", "importing it called exit(3)"),
])
def test_a_loader_that_exits_or_returns_nothing_is_an_error(edgec, tmp_path, body, words):
    (tmp_path / "myloader.py").write_text(body)
    _refused(edgec("build", MODEL, "-t", "cortex-m4", "-d", "myloader:load", "-o", "out"), words)


# ---- outputs never lose a user's file --------------------------------------------------------

def test_symlinked_out_writes_into_its_target(edgec, tmp_path):
    target = tmp_path / "real_out"
    target.mkdir()
    (target / "mine.txt").write_text("keep")
    (tmp_path / "link").symlink_to(target)
    proc = edgec("build", MODEL, "-t", "cortex-m4", "-d", "random", "-o", tmp_path / "link", "-q")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "link").is_symlink() and (target / "digits.tflite").exists()
    assert (target / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real_out"]  # no stray link or directory


def test_a_users_directory_named_like_an_output_is_refused_before_the_build(edgec, tmp_path):
    out = tmp_path / "out"
    (out / "digits.tflite").mkdir(parents=True)
    (out / "digits.tflite" / "precious.txt").write_text("mine")
    _refused(edgec("build", MODEL, "-t", "cortex-m4", "-d", "random", "-o", out), "digits.tflite/")
    assert (out / "digits.tflite" / "precious.txt").read_text() == "mine"


def test_the_cli_refuses_a_hostile_recipe_with_nothing_on_stdout(tmp_path):
    """One of the holes through the real command: a fresh process, stdout empty, marker absent."""
    marker = tmp_path / "PWNED"
    _module(tmp_path, "evil_loader", marker, "def load():\n    return None\n")
    proc = run_cli("build", "--config", str(recipe_file(tmp_path, 'data = "evil_loader:load"')), "--json",
                   cwd=tmp_path)
    assert_one_line_error(proc, 2, "--trust-recipe")
    assert not marker.exists()


def test_a_while_loop_that_never_ends_is_stopped_in_seconds(tmp_path, tfk):
    """A model whose WHILE never ends used to be stopped after 909 s; each interpreter call now has a
    limit (240 s, or $EDGEC_INTERPRETER_TIMEOUT), here 5 s."""
    import time

    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    def forever(x):
        _, y = tf.while_loop(lambda i, v: tf.reduce_sum(v) > -1e30, lambda i, v: (i + 1, v * 1.0),
                             [tf.constant(0), x])
        return y

    path = tmp_path / "while.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions(
        [forever.get_concrete_function()], forever).convert())
    env = {**os.environ, "EDGEC_INTERPRETER_TIMEOUT": "5"}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "edgec", "check", str(path), "--target", "mobile"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert_one_line_error(proc, 2, "did not finish", "within 5 s")
    assert time.monotonic() - start < 60
    proc = subprocess.run([sys.executable, "-m", "edgec", "check", str(path), "--target", "cortex-m4", "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr  # an MCU does not need LiteRT: its hang is a warning
    assert any("LiteRT did not finish on this file" in w for w in json.loads(proc.stdout)["warnings"])
