"""The TFLite-Micro arena measurement and the flatbuffer reader."""

from __future__ import annotations

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
    instead of refusing them. The arena is still measured (probes in fresh processes), and it is the
    smallest size that allocates."""
    from edgec.convert.int8 import convert_int8
    from edgec.runtime import sandbox

    inp = tfk.Input((4,))
    x = tfk.layers.Dense(3, use_bias=False)(inp)
    model = tfk.Model(inp, tfk.layers.Dense(2, use_bias=False)(x))
    data = convert_int8(model, np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32))
    arena = micro.measure_arena(data)
    assert arena.bytes >= arena.recorded_bytes > 0

    def allocates(size):
        try:
            return sandbox.call(micro._allocates, data, size, runtime="TFLite-Micro", fresh=True)
        except RuntimeCheckError:
            return False

    assert allocates(arena.bytes) and not allocates(arena.bytes - 1)
