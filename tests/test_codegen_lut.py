"""Look-up-table weights in the generated C (edgec.emit.codegen.lut): the packing round-trips, the choice
pays in bytes, and the C that decodes them is bit-exact with TFLite-Micro on the host and the Cortex-M4."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import have
from edgec.emit.codegen import generate, lut, toolchain
from edgec.emit.codegen.crosscheck import emit_and_verify, probe_inputs
from edgec.load.tflite_file import read_tflite
from edgec.runtime import micro

needs_gcc = pytest.mark.skipif(not have("gcc"), reason="gcc is not installed (make test installs it)")


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_packing_round_trips_with_padding_and_an_odd_row_count(bits):
    rng = np.random.default_rng(bits)
    rows, k = 7, 27  # an odd count (a row added) and k padded to 28
    values = rng.integers(-128, 128, size=(rows, 1 << bits))
    w2d = np.take_along_axis(values, rng.integers(0, 1 << bits, size=(rows, k)), axis=1).astype(np.int8)
    assert lut.bits_for(w2d) == bits
    indices, tables = lut.pack(w2d, 28, bits)
    assert indices.dtype == np.uint8 and indices.size == 8 * 28 * bits // 8
    assert tables.shape == (8, 1 << bits)
    decoded = lut.unpack(indices, tables, 28, bits)
    np.testing.assert_array_equal(decoded[:rows, :k], w2d)


def test_packed_weights_are_chosen_only_where_they_take_fewer_bytes():
    rng = np.random.default_rng(0)
    four = rng.choice(np.array([-90, -20, 30, 100]), size=(64, 128))
    assert lut.choose(four, 128) == 2
    assert lut.packed_bytes(64, 128, 2) == 64 * 128 // 4 + 64 * 4 + lut.STRUCT_BYTES
    assert lut.choose(rng.integers(-128, 128, size=(64, 128)), 128) is None  # 17 or more values a row
    assert lut.choose(four[:2, :4], 4) is None  # 8 bytes of weights: the tables cost more
    # a width is compiled where it saves more than its code: the decoder for the first
    assert lut.widths({4: lut.CODE_BYTES + 1, 2: lut.WIDTH_BYTES + 1, 1: lut.WIDTH_BYTES}) == {4, 2}
    assert lut.widths({4: lut.CODE_BYTES, 2: lut.CODE_BYTES - 1}) == set()


@pytest.fixture(scope="module")
def clustered(tfk):
    """Convolutions and fully connected layers whose output channels hold 2, 4, 8 and 16 values: a padded
    3x3 conv padded to 28 per row, a 1x1, a grouped strided conv reading a dying input, an unpadded FC and
    a padded one with an odd row count; each width saves more flash than its decoder adds."""
    from edgec.convert.int8 import convert_int8

    tfk.utils.set_random_seed(1)
    inp = tfk.Input((9, 9, 3))
    x = tfk.layers.Conv2D(15, 3, padding="same", activation="relu", name="c3")(inp)
    x = tfk.layers.Conv2D(32, 1, name="pw")(x)
    x = tfk.layers.Conv2D(16, 3, groups=2, strides=2, name="grouped")(x)
    x = tfk.layers.Flatten()(x)
    x = tfk.layers.Dense(30, name="fc")(x)
    out = tfk.layers.Dense(5, name="fc_padded")(x)
    model = tfk.Model(inp, out)
    rng = np.random.default_rng(0)
    for name, levels in (("c3", 2), ("pw", 4), ("grouped", 8), ("fc", 16), ("fc_padded", 2)):
        layer = model.get_layer(name)
        w, b = layer.get_weights()
        rows = w.reshape(-1, w.shape[-1])
        centroids = rng.normal(size=(levels, w.shape[-1]))
        shared = np.take_along_axis(centroids, rng.integers(0, levels, size=rows.shape), axis=0)
        layer.set_weights([shared.reshape(w.shape).astype(np.float32), b])
    data = convert_int8(model, rng.normal(size=(32, 9, 9, 3)).astype(np.float32))
    return data, read_tflite(data)


@needs_gcc
def test_lut_weights_in_c_are_bit_exact_with_tflite_micro(clustered, tmp_path):
    data, tfl = clustered
    arm = have("arm-none-eabi-gcc", "qemu-system-arm")
    mcu = "require" if arm else "off"
    plain, _ = emit_and_verify(data, tfl, "plain", "clustered", probe_inputs(tfl, 20), mcu="off",
                               workdir=tmp_path / "plain")
    gen, section = emit_and_verify(data, tfl, "packed", "clustered", probe_inputs(tfl, 200), mcu=mcu,
                                   workdir=tmp_path / "packed", lut=True)
    assert section["host"]["bit_exact"] and section["host"]["values"] == 200 * 5
    assert len(np.unique(micro.run(data, probe_inputs(tfl, 200)))) > 20  # outputs that vary
    assert sorted(gen.lut_bits.values()) == [1, 1, 2, 3, 4]
    assert {tfl.ops[k].name for k in gen.lut_bits} == {"CONV_2D", "FULLY_CONNECTED"}
    source = gen.files["packed_infer.c"]
    assert "#define EC_LUT_BITS_3 1" in source and "_weights[" not in source  # every product is packed
    assert "#define EC_LUT" not in plain.files["plain_infer.c"]
    # the decoded rows take scratch: a group of a conv's rows, a pair of an FC's
    assert gen.arena_bytes > plain.arena_bytes
    if arm:
        assert section["mcu"]["bit_exact"]
        plain_run = toolchain.measure_mcu(plain, probe_inputs(tfl, 1), tmp_path / "plain-mcu")
        assert section["mcu"]["flash_bytes"] < plain_run.flash_bytes


@needs_gcc
def test_a_row_decoded_with_the_wrong_table_is_caught(clustered, tmp_path):
    """Negative control: the second row of each pair read through the first row's table."""
    data, tfl = clustered
    gen = generate(data, tfl, "broken", lut=True)
    good = "w = ec_lut_word(t1, x, 4 * bits, bits);"
    assert good in gen.files["broken_infer.c"]
    gen.files["broken_infer.c"] = gen.files["broken_infer.c"].replace(
        good, "w = ec_lut_word(t0, x, 4 * bits, bits); (void)t1;")
    x = probe_inputs(tfl, 50)
    assert (toolchain.run_host(toolchain.build_host(gen, tmp_path), x, gen.output_bytes) != micro.run(data, x)).any()


@needs_gcc
def test_emit_c_packs_a_clustered_tflite_only_when_asked(clustered, tmp_path):
    import json

    from conftest import run_cli

    data, _ = clustered
    path = tmp_path / "clustered.tflite"
    path.write_bytes(data)
    plain = run_cli("emit-c", path, "--out", tmp_path / "plain", "--no-mcu", "--json")
    packed = run_cli("emit-c", path, "--out", tmp_path / "packed", "--no-mcu", "--json", "--lut", "on")
    assert plain.returncode == packed.returncode == 0, (plain.stderr, packed.stderr)
    assert json.loads(plain.stdout)["lut_ops"] == []
    section = json.loads(packed.stdout)
    assert len(section["lut_ops"]) == 5 and section["host"]["bit_exact"]
    assert "indices and a table per channel" in packed.stderr
    assert "struct ec_lut" in (tmp_path / "packed" / "clustered_infer.c").read_text()
