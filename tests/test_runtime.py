"""The TFLite-Micro arena measurement and the flatbuffer reader."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_model
from edgec.errors import ModelLoadError, RuntimeCheckError
from edgec.load.tflite_file import read_tflite, read_tflite_file
from edgec.runtime import micro


def test_arena_is_the_smallest_that_allocates(tiny_tflite):
    arena = micro.measure_arena(tiny_tflite)
    assert micro._construct(tiny_tflite, arena.bytes)[0] is not None
    assert micro._construct(tiny_tflite, arena.bytes - 1)[0] is None
    # The interpreter's own allocation record agrees with the bisection.
    assert abs(arena.bytes - arena.recorded_bytes) <= 16
    assert arena.head_bytes + arena.tail_bytes == arena.recorded_bytes


@pytest.mark.parametrize("name, arena_bytes, macs", [("kws_ref_model.tflite", 24_272, 2_664_768),
                                                     ("ic_resnet8_ref_int8.tflite", 55_984, 12_505_728)])
def test_reference_models_figures(name, arena_bytes, macs):
    """Figures from ../shared/models/README.md (arena measured with TFLM's recorder)."""
    data, tfl = read_tflite_file(shared_model(name))
    assert micro.measure_arena(data).bytes == arena_bytes
    assert tfl.macs == macs


@pytest.mark.parametrize("data", [b"", b"garbage!", b"\x00" * 64, b"1234TFL3" + b"\xff" * 40])
def test_bad_bytes_are_refused(data):
    with pytest.raises(ModelLoadError):
        read_tflite(data, "x.tflite")


def test_arena_of_a_model_whose_near_minimum_arenas_crash_tflite_micro(tfk):
    """Dense layers without bias: TFLite-Micro segfaults for some arena sizes just below the minimum
    instead of refusing them. Each probe runs in a forked copy of the interpreter process, so the
    crashes cost no restart (the process is the same one afterwards), and the arena is the smallest
    size that allocates (checked in fresh processes)."""
    from edgec.convert.int8 import convert_int8
    from edgec.runtime import sandbox

    inp = tfk.Input((4,))
    x = tfk.layers.Dense(3, use_bias=False)(inp)
    model = tfk.Model(inp, tfk.layers.Dense(2, use_bias=False)(x))
    data = convert_int8(model, np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32))
    sandbox.prestart()
    pid = sandbox._get().proc.pid
    arena = micro.measure_arena(data)
    assert arena.bytes >= arena.recorded_bytes > 0
    assert sandbox._get().proc.pid == pid
    below = {sandbox.call(micro._probe_forked, data, size, runtime="TFLite-Micro")
             for size in range(arena.recorded_bytes, arena.bytes)}
    assert "allocates" not in below and any(p.startswith("crashed") for p in below), below

    def allocates(size):
        try:
            return sandbox.call(micro._allocates, data, size, runtime="TFLite-Micro", fresh=True)
        except RuntimeCheckError:
            return False

    assert allocates(arena.bytes) and not allocates(arena.bytes - 1)


RECORD = """[RecordingMicroAllocator] Arena allocation total 24272 bytes
[RecordingMicroAllocator] Arena allocation head 16000 bytes
[RecordingMicroAllocator] Arena allocation tail 8272 bytes
[RecordingMicroAllocator] 'TfLiteEvalTensor data' used 840 bytes with alignment overhead (requested 840 bytes for 35 allocations)
[RecordingMicroAllocator] 'Persistent TfLiteTensor data' used 128 bytes with alignment overhead (requested 128 bytes for 2 tensors)
[RecordingMicroAllocator] 'Persistent TfLiteTensor quantization data' used 64 bytes with alignment overhead (requested 64 bytes for 4 allocations)
[RecordingMicroAllocator] 'Persistent buffer data' used 5556 bytes with alignment overhead (requested 5528 bytes for 32 allocations)
[RecordingMicroAllocator] 'NodeAndRegistration struct' used 832 bytes with alignment overhead (requested 832 bytes for 13 NodeAndRegistration structs)
"""  # noqa: E501  (TFLite-Micro's own lines, for the KWS reference model)


def test_the_32bit_arena_recounts_the_recorded_structures_at_32_bit_sizes():
    """Oracle, by hand: head + 35 eval tensors x 12 + 13 nodes x 32 + 2 tensors x 40 + 4 quantization
    allocations x 10 + the kernels' 5,556 bytes + the unitemized 232."""
    assert micro.arena_32bit(16000, RECORD) == 16000 + 420 + 416 + 80 + 40 + 5556 + 232
    assert micro.arena_32bit(16000, RECORD.replace("NodeAndRegistration struct", "Something new")) is None


MCU = Path(__file__).resolve().parents[2] / "shared" / "mcu" / "tflm_cortex_m4.json"


@pytest.mark.skipif(not MCU.exists(), reason="../shared/mcu absent (a user's clone has none)")
@pytest.mark.parametrize("model", ["digits", "kws", "ic"])
def test_the_32bit_arena_is_within_2_percent_of_the_cortex_m4_minimum(model, sample_build):
    """The smallest arena AllocateTensors accepts on a Cortex-M4 (bisected on the firmware, reference kernels)."""
    files = {"digits": sample_build[0] / "digits.tflite", "kws": shared_model("kws_ref_model.tflite"),
             "ic": shared_model("ic_resnet8_ref_int8.tflite")}
    measured = json.loads(MCU.read_text())["models"][model]["libs"]["ref"]["min_arena"]
    arena = micro.measure_arena(files[model].read_bytes())
    assert abs(arena.bytes_32bit / measured - 1) <= 0.02
    assert arena.bytes > arena.bytes_32bit  # the 64-bit figure the headers keep is the larger, safe one


def test_the_prestarted_interpreter_process_takes_the_memory_limit_asked_for(tiny_tflite):
    """The command starts the interpreter process before it reads --max-memory (so that its imports overlap
    edgec's); a limit asked for replaces it with one started under that limit."""
    from edgec import api
    from edgec.load import limits
    from edgec.runtime import litert, sandbox

    def child_limit() -> int:
        # Popen returns once exec has begun; the kernel shows the new environment a moment later (until
        # then /proc/PID/environ is empty), so it is read again until it appears
        deadline = time.monotonic() + 30
        while True:
            environ = Path(f"/proc/{sandbox._child.proc.pid}/environ").read_bytes().split(b"\0")
            found = [v for v in environ if v.startswith(b"EDGEC_CHILD_MEMORY_BYTES=")]
            if found or time.monotonic() > deadline:
                return int(found[0].split(b"=")[1])
            time.sleep(0.01)

    try:
        sandbox.shutdown()  # an earlier test's process
        limits.set_current(limits.Limits(memory_bytes=2 * 2**30))  # the limit before the options are read
        sandbox.prestart()
        first = sandbox._child
        assert child_limit() == 2 * 2**30
        api.set_limits(max_memory="3GiB")
        assert sandbox._child is None and not first.alive()
        assert litert.host_latency_ms(tiny_tflite, runs=1, warmup=0) > 0
        assert child_limit() == 3 * 2**30
    finally:
        limits.set_current(limits.Limits())
        sandbox.shutdown()


def test_the_interpreter_process_skips_tflite_micros_compression_tools():
    """The interpreter process starts on `edgec check`'s critical path: it imports TFLite-Micro's interpreter
    without the package __init__'s compression tools (yaml, the compressor), and still runs models."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "edgec.runtime._child"], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)
    imported = proc.stderr
    assert proc.returncode == 0 and "tflite_micro.python.tflite_micro.runtime" in imported
    assert "micro.compression" not in imported and "yaml" not in imported
