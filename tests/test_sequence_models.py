"""Sequence models end to end (issue 20): an LSTM converts to int8 UNIDIRECTIONAL_SEQUENCE_LSTM at batch 1
and runs in TFLite-Micro; GRU and SimpleRNN are unrolled over their fixed time steps; the LSTM op's MACs
count in inspect and in the latency estimate; attention builds for an MCU."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from edgec import frameworks

STEPS, FEATURES, UNITS = 10, 6, 12


@pytest.fixture(scope="module")
def k3():
    return frameworks.keras3()


def _sequence_model(lib, layer: str, tmp_path, seed=0):
    """A few training steps of ``Input(10, 6) -> layer -> Dense(3, softmax)``, saved with its data."""
    lib.utils.set_random_seed(seed)
    inp = lib.Input((STEPS, FEATURES))
    if layer == "Bidirectional":
        x = lib.layers.Bidirectional(lib.layers.LSTM(8), name="rnn")(inp)
    elif layer == "stacked":
        x = lib.layers.GRU(8, name="rnn")(lib.layers.LSTM(8, return_sequences=True, name="first")(inp))
    else:
        x = getattr(lib.layers, layer)(UNITS, name="rnn")(inp)
    model = lib.Model(inp, lib.layers.Dense(3, activation="softmax", name="head")(x))
    x_data = np.random.default_rng(seed).normal(size=(80, STEPS, FEATURES)).astype(np.float32)
    y = (x_data[:, :, 0].mean(axis=1) > 0).astype(int) + (x_data[:, -1, 1] > 1).astype(int)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x_data, y, epochs=3, verbose=0)
    model.save(tmp_path / "rnn.keras")
    np.savez(tmp_path / "d.npz", x=x_data, y=y)
    return model


def _build(tmp_path, target, *extra):
    proc = run_cli("build", str(tmp_path / "rnn.keras"), "-t", target, "-d", str(tmp_path / "d.npz"),
                   "-o", str(tmp_path / f"out_{target}"), "--json", "-q", "--budget", "accuracy_drop=100%", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# tf_keras's LSTM also converts and runs in TFLite-Micro in test_codegen's LSTM tests (default suite)
@pytest.mark.parametrize("flavour", ["keras3", pytest.param("tf_keras", marks=pytest.mark.slow)])
def test_lstm_converts_to_the_fused_int8_op_and_runs_in_tflite_micro(k3, tfk, tmp_path, flavour):
    _sequence_model(k3 if flavour == "keras3" else tfk, "LSTM", tmp_path)
    report = _build(tmp_path, "cortex-m4")
    ops = report["tflite"]["ops"]
    assert ops.get("UNIDIRECTIONAL_SEQUENCE_LSTM") == 1 and not {"WHILE", "FILL", "SHAPE"} & set(ops), ops
    v = report["verification"]
    assert v["micro_samples"] > 0 and v["top1_agreement"] >= 0.8, v  # TFLite-Micro ran it, verified
    # TFLite-Micro's int8 LSTM kernel is not LiteRT's (measured: 2 LSB apart here); more is a regression
    assert v["micro_vs_litert_max_lsb"] <= 3, v
    assert report["measurements"]["arena_bytes"] > 0
    # 4 gates x (input + hidden) x hidden x time steps, plus the head
    assert report["measurements"]["macs"] == 4 * (FEATURES + UNITS) * UNITS * STEPS + UNITS * 3
    assert _build(tmp_path, "mobile")["tflite"]["ops"] == ops


@pytest.mark.parametrize("layer", ["GRU", "SimpleRNN"])
def test_gru_and_simple_rnn_are_unrolled_over_their_time_steps(k3, tmp_path, layer):
    """Kept as a loop, TF 2.21's int8 calibration crashes the process on them (SIGSEGV, measured)."""
    _sequence_model(k3, layer, tmp_path, seed=1)
    report = _build(tmp_path, "cortex-m4", *(("--emit", "c") if layer == "GRU" else ()))
    ops = report["tflite"]["ops"]
    assert ops["FULLY_CONNECTED"] == 2 * STEPS and ops["TANH"] == STEPS and "WHILE" not in ops, ops
    if layer == "GRU":  # unrolled into SPLIT, SPLIT_V and UNPACK among others: the generated C is bit-exact too
        assert {"SPLIT", "SPLIT_V", "UNPACK"} <= set(ops) and report["measurements"]["c"]["host"]["bit_exact"]
    assert report["verification"]["micro_samples"] > 0 and report["verification"]["top1_agreement"] >= 0.8
    assert report["verification"]["micro_vs_litert_max_lsb"] <= 1


@pytest.mark.slow
@pytest.mark.parametrize("layer", ["Bidirectional", "stacked"])
def test_bidirectional_and_stacked_recurrent_layers_build_for_an_mcu(k3, tmp_path, layer):
    _sequence_model(k3, layer, tmp_path, seed=2)
    report = _build(tmp_path, "cortex-m4", "--emit", "c")
    assert report["tflite"]["ops"]["UNIDIRECTIONAL_SEQUENCE_LSTM"] == (2 if layer == "Bidirectional" else 1)
    assert report["verification"]["micro_samples"] > 0
    # the generated C too (the GRU unrolled: SPLIT, SPLIT_V, UNPACK), bit-exact with TFLite-Micro
    assert report["measurements"]["c"]["host"]["bit_exact"]


def test_inspect_counts_the_lstm_ops_macs_and_the_estimate_includes_them(tfk, tmp_path):
    from edgec.convert.int8 import convert_int8

    tfk.utils.set_random_seed(3)
    inp = tfk.Input((STEPS, FEATURES))
    model = tfk.Model(inp, tfk.layers.Dense(3)(tfk.layers.LSTM(UNITS)(inp)))
    x = np.random.default_rng(3).normal(size=(32, STEPS, FEATURES)).astype(np.float32)
    (tmp_path / "lstm.tflite").write_bytes(convert_int8(model, x))
    proc = run_cli("inspect", str(tmp_path / "lstm.tflite"), "--target", "cortex-m4", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["op"]: row for row in json.loads(proc.stdout)["ops"]}
    lstm = rows["UNIDIRECTIONAL_SEQUENCE_LSTM"]
    assert lstm["macs"] == 4 * (FEATURES + UNITS) * UNITS * STEPS
    assert lstm["cycles"] > 0.9 * sum(row["cycles"] for row in rows.values())  # it dominates the estimate


def test_free_time_steps_take_the_datas_and_the_report_says_so(tfk, tmp_path):
    """Input((None, 6)): the time axis is free; a microcontroller runs one fixed shape, the data's."""
    tfk.utils.set_random_seed(4)
    inp = tfk.Input((None, FEATURES))
    tfk.Model(inp, tfk.layers.Dense(3)(tfk.layers.LSTM(4, name="lstm")(inp))).save(tmp_path / "free.keras")
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(4).normal(size=(40, STEPS, FEATURES)).astype(np.float32))
    proc = run_cli("build", str(tmp_path / "free.keras"), "-t", "cortex-m4", "-d", str(tmp_path / "d.npz"),
                   "-o", str(tmp_path / "o"), "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["tflite"]["ops"]["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 1
    assert any(f"converted for the data's ({STEPS}, {FEATURES})" in w for w in report["warnings"]), report["warnings"]
    bad = run_cli("build", str(tmp_path / "free.keras"), "-t", "cortex-m4", "-d", "random", "-o", str(tmp_path / "r"))
    assert_one_line_error(bad, 2, "random", "free")


@pytest.mark.parametrize("target", ["cortex-m7", "mobile"])
def test_multi_head_attention_with_layer_normalization_builds(k3, tmp_path, target):
    """Keras 3 MultiHeadAttention, LayerNormalization, GlobalAveragePooling1D: traced at batch 1 there is no
    REDUCE_PROD (a dynamic shape computation TFLite-Micro lacks); TFLite-Micro runs every op."""
    k3.utils.set_random_seed(0)
    inp = k3.Input((8, 16))
    x = k3.layers.Add()([inp, k3.layers.MultiHeadAttention(num_heads=2, key_dim=8, name="mha")(inp, inp)])
    x = k3.layers.GlobalAveragePooling1D()(k3.layers.LayerNormalization(name="ln")(x))
    model = k3.Model(inp, k3.layers.Dense(3, activation="softmax")(x))
    x_data = np.random.default_rng(0).normal(size=(64, 8, 16)).astype(np.float32)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x_data, np.arange(64) % 3, epochs=3, verbose=0)
    model.save(tmp_path / "rnn.keras")
    np.savez(tmp_path / "d.npz", x=x_data, y=np.arange(64) % 3)
    report = _build(tmp_path, target)
    ops = report["tflite"]["ops"]
    assert ops["BATCH_MATMUL"] == 2 and not {"REDUCE_PROD", "SHAPE", "NEG"} & set(ops), ops
    v = report["verification"]
    assert v["micro_samples"] > 0 and v["micro_vs_litert_max_lsb"] <= 1 and v["top1_agreement"] >= 0.8, v


def test_inspect_counts_elementwise_ops_by_their_output_values(tfk, tmp_path):
    """An ADD is no multiply-accumulate (MLPerf's MAC counts leave it out), but it computes: inspect counts
    its output values, which the latency estimate costs per value."""
    from edgec.check import targets
    from edgec.convert.int8 import convert_int8

    tfk.utils.set_random_seed(5)
    inp = tfk.Input((10,))
    model = tfk.Model(inp, tfk.layers.Add()([tfk.layers.Dense(16)(inp), tfk.layers.Dense(16)(inp)]))
    (tmp_path / "add.tflite").write_bytes(convert_int8(model, np.random.default_rng(5).normal(size=(32, 10))
                                                       .astype(np.float32)))
    proc = run_cli("inspect", str(tmp_path / "add.tflite"), "--target", "cortex-m4", "--json")
    assert proc.returncode == 0, proc.stderr
    add = next(row for row in json.loads(proc.stdout)["ops"] if row["op"] == "ADD")
    t = targets.get("cortex-m4")
    per_value = t.instruction_tables()["ADD"]["per_output"]
    assert add["macs"] == 0 and add["elementwise"] == 16 and add["instructions"] == round(16 * per_value)
    assert add["cycles"] == round(add["instructions"] * t.cpi())
    assert "16 elementwise output values" in run_cli("inspect", str(tmp_path / "add.tflite")).stdout


def test_a_stateful_layer_is_one_line_pointing_to_state_as_an_input_output_pair(tfk, tmp_path):
    inp = tfk.Input((STEPS, FEATURES), batch_size=1)
    tfk.Model(inp, tfk.layers.Dense(3)(tfk.layers.LSTM(8, stateful=True, name="lstm")(inp))).save(
        tmp_path / "stateful.keras")
    proc = run_cli("build", str(tmp_path / "stateful.keras"), "-t", "cortex-m4", "-d", "random",
                   "-o", str(tmp_path / "o"))
    assert_one_line_error(proc, 2, "layer 'lstm' (LSTM) is stateful", "stateful=False", "input and an output")


@pytest.mark.parametrize("variant", ["recurrent_dropout", "cell_rnn", "conv_lstm", "masking"])
def test_recurrent_variants_build_or_are_one_line_never_a_crash(tfk, tmp_path, variant):
    """Kept as loops, these crashed the process in TF 2.21's int8 calibration (exit 139, measured): an LSTM
    with recurrent dropout (not fused) and an RNN of LSTMCells convert as the fused LSTM they equal at
    inference; a ConvLSTM2D and a mask over the time steps are refused by name before the converter runs."""
    L = tfk.layers
    tfk.utils.set_random_seed(6)
    inp = tfk.Input((4, 8, 8, 1) if variant == "conv_lstm" else (STEPS, FEATURES))
    x = {"recurrent_dropout": lambda t: L.LSTM(8, dropout=0.2, recurrent_dropout=0.2, name="rnn")(t),
         "cell_rnn": lambda t: L.RNN(L.LSTMCell(8), name="rnn")(t),
         "conv_lstm": lambda t: L.Flatten()(L.ConvLSTM2D(4, 3, name="rnn")(t)),
         "masking": lambda t: L.LSTM(8, name="rnn")(L.Masking(name="mask")(t))}[variant](inp)
    tfk.Model(inp, L.Dense(3, activation="softmax")(x)).save(tmp_path / "v.keras")
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(6).normal(size=(40, *inp.shape[1:])).astype(np.float32))
    proc = run_cli("build", str(tmp_path / "v.keras"), "-t", "cortex-m4", "-d", str(tmp_path / "d.npz"),
                   "-o", str(tmp_path / "o"), "--json", "-q")
    if variant in ("recurrent_dropout", "cell_rnn"):
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["verification"]["micro_samples"] > 0
        # with dropout off for inference and the cell as the layer it equals, both fuse into one LSTM op
        assert report["tflite"]["ops"]["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 1, report["tflite"]["ops"]
    else:
        assert_one_line_error(proc, 2, "layer 'rnn' (ConvLSTM2D)" if variant == "conv_lstm" else "layer 'mask'")
