"""LUT weight compression (edgec.convert.lut): what is chosen, that TFLite-Micro's decode is exact, that
the verifier reads TFLite-Micro's compressed files, and a build that ships the compressed model."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from conftest import SAMPLE, assert_one_line_error, repacked_tflite, run_cli
from edgec.report.text import render


def _fake(shape, scales=(0.01,)) -> types.SimpleNamespace:
    return types.SimpleNamespace(index=0, name="w", shape=tuple(shape), scales=scales)


def test_index_bits():
    from edgec.convert.lut import index_bits

    assert [index_bits(n) for n in (1, 2, 3, 4, 5, 16, 17)] == [1, 1, 2, 2, 3, 4, 5]


def test_tables_per_channel_or_per_tensor_by_their_bytes():
    from edgec.convert import lut

    rng = np.random.default_rng(0)
    shared = rng.choice(np.array([-90, -20, 30, 100], np.int8), size=(64, 128))  # the same 4 values everywhere
    c = lut._choose_one(_fake(shared.shape), "FULLY_CONNECTED", shared, 0, 4)
    assert (c.bits, c.tables) == (2, "per-tensor")
    assert c.bytes_after == 64 * 128 // 4 + 16 + 4  # indices, the header, one table of 4
    # 4 values per channel, but different ones in each channel (per-channel scales do that to clusters)
    own = np.stack([rng.choice(np.arange(-128, 128, dtype=np.int8), 4, replace=False)[rng.integers(0, 4, 128)]
                    for _ in range(64)])
    c = lut._choose_one(_fake(own.shape), "FULLY_CONNECTED", own, 0, 4)
    assert (c.bits, c.tables, c.axis) == (2, "per-channel", 0)
    assert c.bytes_after == 64 * 128 // 4 + 16 + 64 * 4
    plain = rng.integers(-128, 128, (64, 128)).astype(np.int8)
    c = lut._choose_one(_fake(plain.shape), "FULLY_CONNECTED", plain, 0, 4)
    assert c.bits is None and "more than 4" in c.reason
    small = shared[:4, :64]  # 256 bytes -> 84: 172 B saved, less than the DECODE op adds
    c = lut._choose_one(_fake(small.shape), "FULLY_CONNECTED", small, 0, 4)
    assert c.bits is None and "DECODE" in c.reason
    # TFLite-Micro decodes one table wrong on a tensor of per-channel scales: such a tensor gets one per channel
    c = lut._choose_one(_fake(shared.shape, scales=(0.01,) * 64), "FULLY_CONNECTED", shared, 0, 4)
    assert (c.bits, c.tables) == (2, "per-channel")


@pytest.fixture(scope="module")
def clustered_tflite(tfk):
    """A converted int8 model whose 256x64 kernel holds 6 shared values (as after clustering), each output
    channel 5 of them: the channels' largest values differ, so do their scales, and so do the int8 values
    each channel holds (where every channel held the largest, per-channel scales would map all alike)."""
    from edgec.convert.int8 import convert_int8

    tfk.utils.set_random_seed(3)
    inp = tfk.Input((256,))
    out = tfk.layers.Dense(10, name="head")(tfk.layers.Dense(64, activation="relu", name="body")(inp))
    model = tfk.Model(inp, out)
    rng = np.random.default_rng(3)
    kernel, bias = model.get_layer("body").get_weights()
    centroids = np.array([-0.2, -0.1, -0.03, 0.04, 0.12, 0.25], np.float32)
    columns = [rng.choice(np.delete(centroids, rng.integers(0, 6)), kernel.shape[0]) for _ in range(kernel.shape[1])]
    model.get_layer("body").set_weights([np.stack(columns, axis=1), bias])
    x = rng.normal(0, 1, (200, 256)).astype(np.float32)
    return convert_int8(model, x[:100]), x[100:]


def test_compressed_model_runs_bit_exact_in_tflite_micro(clustered_tflite):
    from edgec.convert import lut
    from edgec.load.tflite_file import DECODE, quantize, read_tflite, schema

    data, x = clustered_tflite
    tfl = read_tflite(data)
    packed, section = lut.compress_weights(data, tfl)
    body = next(t for t in section["tensors"] if t["shape"] == [64, 256])
    assert section["applied"] and (body["bits"], body["tables"]) == (3, "per-channel")
    assert body["bytes_after"] == 64 * 256 * 3 // 8 + 16 + 64 * 5
    assert section["bytes_after"] == len(packed) < len(data) - (body["bytes_before"] - body["bytes_after"]) // 2
    small = read_tflite(packed)
    assert small.op_counts[DECODE] == 1
    assert small.params == tfl.params  # the decoded weights, not the packed bytes
    # the packed indices carry no scales (TFLite-Micro's editor leaves the weights' on them; edgec drops them)
    model = schema().ModelT.InitFromPackedBuf(bytearray(packed), 0)
    decode = next(op for op in model.subgraphs[0].operators
                  if model.operatorCodes[op.opcodeIndex].customCode == b"TFLM_DECODE")
    assert all(model.subgraphs[0].tensors[i].quantization is None for i in decode.inputs)
    assert lut.check_exact(data, packed, [quantize(x, tfl.input)]) == {"samples": 100, "bit_exact": True}


def test_a_different_decode_is_caught(clustered_tflite):
    """check_exact compares real outputs: a compressed model whose table holds one wrong value fails it."""
    from edgec.convert import lut
    from edgec.load.tflite_file import quantize, read_tflite

    data, x = clustered_tflite
    tfl = read_tflite(data)
    packed, _ = lut.compress_weights(data, tfl)

    def corrupt(model):
        graph = model.subgraphs[0]
        decode = next(op for op in graph.operators if model.operatorCodes[op.opcodeIndex].customCode)
        table = model.buffers[graph.tensors[decode.inputs[1]].buffer]
        table.data = table.data.copy()
        table.data[16] = np.uint8((int(table.data[16]) + 1) % 256)  # the first value of the first table

    with pytest.raises(RuntimeError, match="bug in edgec or TFLite-Micro"):
        lut.check_exact(data, repacked_tflite(packed, corrupt), [quantize(x, tfl.input)])


def test_plain_int8_weights_are_left_alone(tiny_tflite):
    from edgec.convert import lut
    from edgec.load.tflite_file import read_tflite

    packed, section = lut.compress_weights(tiny_tflite, read_tflite(tiny_tflite))
    assert packed == tiny_tflite and not section["applied"]
    assert all(t["bits"] is None and t["left_because"] for t in section["tensors"])


def test_verifier_reads_tflite_micro_files_but_not_off_shape_scales_a_kernel_reads(clustered_tflite):
    """TFLite-Micro's own compressor leaves the weights' per-channel scales on the packed bytes: fine where only
    DECODE reads them, corrupt where a kernel would."""
    from tflite_micro.tensorflow.lite.micro.compression import spec
    from tflite_micro.tensorflow.lite.micro.compression.compress import compress

    from edgec.errors import ModelLoadError
    from edgec.load.tflite_file import read_tflite

    data, _ = clustered_tflite
    tfl = read_tflite(data)
    body = next(t.index for t in tfl.tensors if t.shape == (64, 256))
    raw = bytes(compress(data, [spec.Tensor(0, body, [spec.LookUpTableCompression(3, spec.PerChannel(0))])]))
    assert "CUSTOM:TFLM_DECODE" in read_tflite(raw).op_counts

    def fc_reads_packed_bytes(model):
        graph = model.subgraphs[0]
        decode = next(op for op in graph.operators if model.operatorCodes[op.opcodeIndex].customCode)
        fc = next(op for op in graph.operators if decode.outputs[0] in list(op.inputs))
        fc.inputs = [decode.inputs[0] if i == decode.outputs[0] else i for i in fc.inputs]

    with pytest.raises(ModelLoadError, match="per-channel scales that do not match"):
        read_tflite(repacked_tflite(raw, fc_reads_packed_bytes))


def test_lut_is_wanted_after_weight_sharing_on_tflite_micro_targets():
    from edgec import compress
    from edgec.check import targets
    from edgec.config import BuildConfig, StageSpec
    from edgec.errors import ConfigError
    from edgec.pipeline import _lut_wanted

    def cfg(**kw):
        return BuildConfig.from_dict({"model": "m.keras", "data": "random", "target": "cortex-m4", **kw})

    cluster = compress.validate((StageSpec("cluster"),))
    prune = compress.validate((StageSpec("prune"),))
    m4, c, phone = (targets.get(n) for n in ("cortex-m4", "cortex-m4-c", "mobile"))
    # (in the .tflite, in the C, the .tflite's only where it pays: pipeline._lut_auto)
    assert _lut_wanted(cfg(), m4, cluster) == (True, False, True)
    assert _lut_wanted(cfg(emit=["c"]), m4, cluster) == (True, True, True)
    assert _lut_wanted(cfg(), m4, prune) == _lut_wanted(cfg(), m4, ()) == (False, False, False)
    assert _lut_wanted(cfg(lut="off"), m4, cluster) == (False, False, False)
    assert _lut_wanted(cfg(lut="on"), m4, prune) == (True, False, False)
    # the generated C unpacks its own tables; LiteRT on a phone has no way to
    assert _lut_wanted(cfg(), c, cluster) == (False, True, False)
    assert _lut_wanted(cfg(), phone, cluster) == (False, False, False)
    assert _lut_wanted(cfg(lut="on", emit=["c"]), phone, ()) == (False, True, False)
    with pytest.raises(ConfigError, match="no TFLite-Micro DECODE op"):
        _lut_wanted(cfg(lut="on"), phone, ())


@pytest.fixture(scope="module")
def lut_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("lut") / "out"
    proc = run_cli("build", SAMPLE / "digits.keras", "--target", "cortex-m4", "--data", SAMPLE / "digits.npz",
                   "--stage", "cluster:clusters=16,epochs=1", "--emit", "c", "--lut", "on", "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


def test_the_generated_c_keeps_the_lut_saving(lut_build):
    out, report = lut_build
    c = report["measurements"]["c"]
    assert c["host"]["bit_exact"] and {o["bits"] for o in c["lut_ops"]} == {4}
    assert len(c["lut_ops"]) == 2  # conv3 and fc1, as in the .tflite
    source = (out / "digits_infer.c").read_text()
    assert source.count("static const struct ec_lut ") == 2
    assert not any("uncompressed" in w for w in report["warnings"])


def test_auto_ships_the_compressed_model_only_where_it_pays(clustered_tflite):
    """--lut auto on a TFLite-Micro target: the bytes saved must exceed the DECODE kernel's, and the RAM and
    latency budgets the uncompressed model meets must stay met (the largest compressed tensor is left as it is)."""
    import dataclasses

    from edgec.check import targets
    from edgec.convert import lut
    from edgec.load.tflite_file import read_tflite
    from edgec.pipeline import _lut_auto

    data, _ = clustered_tflite
    tfl = read_tflite(data)
    packed, section = lut.compress_weights(data, tfl)
    saved = len(data) - len(packed)
    m4 = targets.get("cortex-m4")
    assert 0 < saved < m4.decode_flash_bytes  # 9.8 KB of a 256x64 kernel in 3-bit tables, against 18.6 KB of code
    ships, auto = _lut_auto(data, tfl, packed, section, m4, {})
    assert ships == data and not auto["applied"] and "DECODE kernel" in auto["why_not"]
    assert auto["auto"]["bytes_saved"] == saved

    cheap = dataclasses.replace(m4, decode_flash_bytes=saved - 1)  # a kernel it pays for
    ships, auto = _lut_auto(data, tfl, packed, section, cheap, {})
    assert ships == packed and auto["applied"]
    ram, ms = auto["auto"]["ram_bytes"], auto["auto"]["latency_ms"]
    assert ram["compressed"] > ram["uncompressed"] + 16384  # the decoded kernel lives in the arena
    assert ms["compressed"] > ms["uncompressed"]  # and is decoded on every inference

    for budget, tight, room in (("ram", ram["uncompressed"] + 1024, ram["compressed"]),
                                ("latency", ms["uncompressed"] * 1.01, ms["compressed"])):
        ships, auto = _lut_auto(data, tfl, packed, section, cheap, {budget: tight})  # only the plain model fits
        assert ships == data and not auto["applied"], budget
        body = next(t for t in auto["tensors"] if "body" in t["tensor"])
        assert body["bits"] is None and "budget that the uncompressed model meets" in body["left_because"]
        ships, auto = _lut_auto(data, tfl, packed, section, cheap, {budget: room})
        assert ships == packed and auto["applied"], budget


def test_auto_after_cluster_on_the_sample_ships_plain_int8_and_says_why(tmp_path):
    """The sample's tables save 9 KB, half of what DECODE's code takes: --lut auto (the default) leaves it."""
    out = tmp_path / "out"
    proc = run_cli("build", SAMPLE / "digits.keras", "--target", "cortex-m4", "--data", SAMPLE / "digits.npz",
                   "--stage", "cluster:clusters=16,epochs=1", "--out", out)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    section = report["tflite"]["lut"]
    assert not section["applied"] and "CUSTOM:TFLM_DECODE" not in report["tflite"]["ops"]
    assert len((out / "digits.tflite").read_bytes()) == section["bytes_before"] == report["tflite"]["bytes"]
    assert "lut       not applied: it would save" in proc.stderr and "DECODE kernel" in proc.stderr
    assert "LUT weights" in (html := (out / "report.html").read_text()) and "not applied: it would save" in html


def test_build_after_cluster_ships_the_compressed_model(lut_build):
    out, report = lut_build
    section = report["tflite"]["lut"]
    assert section["applied"] and section["tflite_micro_bit_exact"]["bit_exact"]
    assert {t["tensor"].split("/")[1] for t in section["tensors"] if t["bits"] == 4} == {"conv3", "fc1"}
    shipped = (out / "digits.tflite").read_bytes()
    assert len(shipped) == section["bytes_after"] == report["tflite"]["bytes"]
    rows = {r["name"]: r for r in report["stages"]}
    assert rows["lut"]["tflite_bytes"] == len(shipped) < 0.75 * rows["int8"]["tflite_bytes"]
    assert report["tflite"]["ops"]["CUSTOM:TFLM_DECODE"] == 2
    assert "lut       2 weight tensor(s) in 4-bit look-up tables" in render(report)
    # --lut on: shipped though the 9 KB saved are less than the DECODE kernel's code, which is said
    assert any("less than TFLite-Micro's DECODE kernel" in w for w in report["warnings"])
    assert "AddDecode()" in (out / "digits_model_settings.h").read_text()
    assert f"{len(shipped)}" in (out / "digits_model_data.h").read_text()
    # the decoded weights live in the arena: the largest (fc1, 16 KiB) is measured in it, and said
    assert report["measurements"]["arena_bytes"] > 16384
    assert any("decoded into the arena" in w for w in report["warnings"])


def test_check_reads_a_compressed_model(lut_build):
    out, report = lut_build
    proc = run_cli("check", out / "digits.tflite", "--target", "cortex-m4", "--json")
    assert proc.returncode == 0, proc.stderr
    checked = json.loads(proc.stdout)
    assert checked["measurements"]["arena_bytes"] == report["measurements"]["arena_bytes"]
    # DECODE is costed by its own table (measured apart), not as a stand-in
    assert not any("DECODE" in k for k in checked["measurements"]["latency_not_measured"])
    decodes = [r for r in checked["measurements"]["ops"] if r["op"] == "CUSTOM:TFLM_DECODE"]
    assert [r["costed_as"] for r in decodes] == ["CUSTOM:TFLM_DECODE"] * 2
    fc1 = next(r for r in checked["measurements"]["ops"] if r["op"] == "FULLY_CONNECTED")
    assert max(r["instructions"] for r in decodes) > fc1["instructions"]  # decoding fc1 costs more than using it
    proc = run_cli("check", out / "digits.tflite", "--target", "mobile")
    assert_one_line_error(proc, 2, "LUT-compressed", "no DECODE op")


def test_decode_values_on_and_off_tflite_micros_fast_path():
    """TFLite-Micro's LUT decoder takes whole aligned groups of 16 values (32 at 3 bits) of an int8 tensor with
    channels first and 2-4 bit indices on its fast path; the rest of each channel, and everything else, one
    value at a time."""
    from edgec.check.latency import decode_values

    def d(bits, channels, per_channel, dtype="int8", last=False):
        return {"bits": bits, "dtype": dtype, "elements": channels * per_channel, "channels": channels,
                "channels_last": last}

    assert decode_values([d(4, 32, 512)]) == (16384, 0)
    # 100 values a channel: channels start at offsets 0, 100, 200, 300 (mod 16: 0, 4, 8, 12), so per four
    # channels 96 + 80 + 80 + 96 values go in whole groups and 4 + 20 + 20 + 4 one by one
    assert decode_values([d(4, 32, 100)]) == (8 * 352, 8 * 48)
    assert decode_values([d(3, 32, 16)]) == (0, 512)  # shorter than one 32-value group
    assert decode_values([d(1, 32, 512)]) == decode_values([d(4, 32, 512, last=True)]) == (0, 16384)
    assert decode_values([d(4, 32, 512, dtype="int16"), d(2, 8, 64)]) == (512, 16384)


def test_decode_is_costed_by_the_profiles_table_or_named_as_a_stand_in(lut_build):
    """The built-in profiles cost DECODE by their measured-apart table; a profile without one costs it as a
    copy of its output (RESHAPE) and says so."""
    import dataclasses

    from edgec.check import targets
    from edgec.check.latency import decode_values, not_measured, op_table
    from edgec.load.tflite_file import read_tflite

    out, _ = lut_build
    tfl = read_tflite((out / "digits.tflite").read_bytes())
    m4 = targets.get("cortex-m4")
    table = m4.instructions_apart["CUSTOM:TFLM_DECODE"]
    # what the file says each DECODE decodes (the bits from its ancillary tensor's metadata)
    assert [(d["bits"], d["dtype"], d["channels"], d["channels_last"]) for op in tfl.ops
            if op.name == "CUSTOM:TFLM_DECODE" for d in op.options["lut"]] == [(4, "int8", 32, False)] * 2
    for op, row in zip(tfl.ops, op_table(tfl, m4)):
        if op.name == "CUSTOM:TFLM_DECODE":
            fast, slow = decode_values(op.options["lut"])
            assert fast + slow == sum(tfl.tensors[i].elements for i in op.outputs)
            assert row["instructions"] == round(table["fixed"] + table["per_output"] * fast
                                                + table["per_slow_output"] * slow)
    assert not_measured(op_table(tfl, m4)) == []
    decode = next(op for op in tfl.ops if op.name == "CUSTOM:TFLM_DECODE")
    decode.options["lut"][0]["bits"] = 1  # as a binary model's: every value off the fast path
    n = sum(tfl.tensors[i].elements for i in decode.outputs)
    assert op_table(tfl, m4)[decode.index]["instructions"] == round(table["fixed"] + table["per_slow_output"] * n)
    assert not_measured(op_table(tfl, m4)) == []
    # TFLite-Micro's Huffman or pruning decoders (no index bits): costed as the LUT decoder's slow path, and named
    decode.options["lut"][0]["bits"] = None
    row = op_table(tfl, m4)[decode.index]
    assert row["instructions"] == round(table["fixed"] + table["per_slow_output"] * n)
    assert not_measured([row]) == ["CUSTOM:TFLM_DECODE:not-lut (as CUSTOM:TFLM_DECODE)"]
    assert not_measured([op_table(tfl, dataclasses.replace(m4, instructions_apart={}))[decode.index]]) == [
        "CUSTOM:TFLM_DECODE:not-lut (as RESHAPE)"]
    decode.options["lut"][0]["bits"] = 4
    rows = op_table(tfl, dataclasses.replace(m4, instructions_apart={}))  # a profile of the user's own
    assert "CUSTOM:TFLM_DECODE (as RESHAPE)" in not_measured(rows)


def test_lut_on_for_a_phone_is_refused_before_any_work(tmp_path):
    proc = run_cli("build", SAMPLE / "digits.keras", "--target", "mobile", "--data", SAMPLE / "digits.npz",
                   "--lut", "on", "--out", tmp_path / "out")
    assert_one_line_error(proc, 2, "--lut on", "mobile")
    assert not (tmp_path / "out").exists()


def test_a_tflite_micro_without_decode_is_one_line_naming_its_version(lut_build, monkeypatch):
    """A runtime built without DECODE cannot resolve the custom op: the error names the installed
    tflite-micro and the two ways out (here the wheel's DECODE is hidden by renaming the op in the file the
    interpreter is given, which is what a runtime without it sees)."""
    from edgec.errors import RuntimeCheckError
    from edgec.runtime import micro

    out, _ = lut_build
    data = (out / "digits.tflite").read_bytes()
    real = micro._construct
    monkeypatch.setattr(micro, "_construct",
                        lambda d, size: real(bytes(d).replace(b"TFLM_DECODE", b"TFLM_DECODX"), size))
    with pytest.raises(RuntimeCheckError, match=r"tflite-micro 0\.dev\d+\) has no DECODE op.*--lut off"):
        micro.load(data)


def test_cluster_preserving_qat_keeps_the_weights_in_4_bit_tables(tmp_path):
    """CQAT after clustering must keep each channel's value count: the LUT still takes 4 bits."""
    proc = run_cli("build", SAMPLE / "digits.keras", "--target", "cortex-m4", "--data", SAMPLE / "digits.npz",
                   "--stage", "cluster:clusters=16,epochs=1", "--stage", "qat:epochs=1",
                   "--budget", "accuracy_drop=100%", "--lut", "on", "--out", tmp_path / "out", "--json")
    assert proc.returncode == 0, proc.stderr
    section = json.loads(proc.stdout)["tflite"]["lut"]
    assert section["applied"] and section["tflite_micro_bit_exact"]["bit_exact"]
    assert {t["tensor"].split("/")[1] for t in section["tensors"] if t["bits"] == 4} == {"quant_conv3", "quant_fc1"}
