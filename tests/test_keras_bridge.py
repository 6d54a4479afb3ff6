"""Keras 3 files load as Keras 3 models; for compression stages they are rebuilt as tf_keras models
that compute the same outputs."""

from __future__ import annotations

import numpy as np
import pytest

from edgec import frameworks
from edgec.errors import ModelLoadError
from edgec.load import bridge
from edgec.load.model import load_model


@pytest.fixture(scope="module")
def k3():
    return frameworks.keras3()


def _randomize(model, seed=0):
    """Non-trivial weights everywhere, including BatchNorm statistics."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        new = []
        for w in ws:
            if "batch_normalization" in type(layer).__name__.lower() or type(layer).__name__ == "BatchNormalization":
                new.append(rng.uniform(0.5, 1.5, w.shape).astype(w.dtype))
            else:
                new.append(rng.normal(0, 0.3, w.shape).astype(w.dtype))
        layer.set_weights(new)


def _functional(k3):
    inp = k3.Input((12, 12, 3), name="img")
    x = k3.layers.Conv2D(8, 3, padding="same", name="conv")(inp)
    x = k3.layers.BatchNormalization(name="bn")(x)
    x = k3.layers.ReLU(name="relu")(x)
    y = k3.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = k3.layers.SeparableConv2D(8, 3, padding="same", name="sep")(y)
    x = k3.layers.Add(name="add")([x, y])
    x = k3.layers.GlobalAveragePooling2D(name="gap")(x)
    out = k3.layers.Dense(4, activation="softmax", name="dense")(x)
    model = k3.Model(inp, out, name="bridge_test")
    _randomize(model)
    return model


def test_keras3_functional_file_is_rebuilt_with_same_outputs(k3, tmp_path):
    model = _functional(k3)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = load_model(path)
    assert loaded.format == "keras3" and loaded.keras3
    assert type(loaded.keras).__module__.startswith("keras")  # converted as saved: no rebuild
    assert loaded.bridge_max_diff is None
    bridged = loaded.for_stages()
    assert type(bridged).__module__.startswith("tf_keras") and loaded.for_stages() is bridged
    x = np.random.default_rng(3).normal(size=(8, 12, 12, 3)).astype(np.float32)
    expected = np.asarray(model(x))
    got = np.asarray(bridged(x))
    # Oracle: the Keras 3 model itself; tolerance is float32 round-off.
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert loaded.bridge_max_diff is not None and loaded.bridge_max_diff < 1e-5
    assert loaded.params == model.count_params()


def test_keras3_sequential_file_is_rebuilt(k3, tmp_path):
    model = k3.Sequential([k3.Input((6,)), k3.layers.Dense(5, activation="relu"),
                           k3.layers.BatchNormalization(), k3.layers.Dense(3)])
    _randomize(model, 1)
    model.save(tmp_path / "s.keras")
    loaded = load_model(tmp_path / "s.keras")
    x = np.random.default_rng(4).normal(size=(5, 6)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded.for_stages()(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)


def test_translate_config_maps_keras3_specifics(k3):
    cfg = bridge.translate_config({"class_name": "Functional", "config": _functional(k3).get_config()})
    layers = {layer["name"]: layer for layer in cfg["config"]["layers"]}
    assert "batch_input_shape" in layers["img"]["config"] and "batch_shape" not in layers["img"]["config"]
    assert layers["conv"]["config"]["dtype"] == "float32"
    assert "build_config" not in layers["conv"] and "module" not in layers["conv"]
    assert layers["add"]["inbound_nodes"] == [[["relu", 0, 0, {}], ["sep", 0, 0, {}]]]
    assert "input_axes" not in layers["conv"]["config"]["kernel_initializer"]["config"]


def test_mismatch_names_the_layer(k3):
    model = _functional(k3)
    rebuilt = bridge.to_tf_keras(model)
    w = rebuilt.get_layer("dw").get_weights()
    rebuilt.get_layer("dw").set_weights([w[0] + 1.0] + w[1:])
    x = np.random.default_rng(5).normal(size=(2, 12, 12, 3)).astype(np.float32)
    with pytest.raises(ModelLoadError, match="layer 'dw'"):
        bridge.check_same_outputs(model, rebuilt, x)


def test_keras3_op_layer_without_tf_keras_equivalent_is_named(k3, tmp_path):
    inp = k3.Input((4,))
    a = k3.layers.Dense(4, name="a")(inp)
    out = k3.ops.sin(a)  # a Keras 3 operation no tf_keras layer computes
    model = k3.Model(inp, out)
    model.save(tmp_path / "op.keras")
    loaded = load_model(tmp_path / "op.keras")  # natively it loads (and converts: test_keras3_native.py)
    with pytest.raises(ModelLoadError, match="no tf_keras equivalent"):
        loaded.for_stages()


def test_bridge_carries_keras_ops_activations_by_their_keras3_meaning_and_renamed_arguments(k3):
    """keras.ops elementwise calls, hard_silu/hard_swish and hard_sigmoid as Keras 3 defines them (tf_keras'
    hard_sigmoid is another function), leaky_relu, silu, and LeakyReLU(negative_slope): outputs equal."""
    inp = k3.Input((6,))
    x = k3.layers.Dense(6, activation="hard_silu", name="hs")(inp)
    x = k3.ops.tanh(k3.ops.add(x, inp))
    x = k3.ops.subtract(k3.ops.multiply(x, 1.5), 0.25)
    x = k3.ops.maximum(x, k3.layers.Dense(6, activation="hard_sigmoid", name="hsig")(x))
    x = k3.layers.LeakyReLU(negative_slope=0.3, name="leaky")(x)
    x = k3.layers.Dense(6, activation="leaky_relu", name="lr")(x)
    out = k3.layers.Dense(3, activation="silu", name="silu")(x)
    model = k3.Model(inp, out)
    _randomize(model, 7)
    rebuilt = bridge.to_tf_keras(model)
    assert rebuilt.get_layer("leaky").get_config()["alpha"] == pytest.approx(0.3)
    x = np.random.default_rng(7).normal(0, 3, size=(16, 6)).astype(np.float32)
    # Oracle: the Keras 3 model; float32 round-off
    np.testing.assert_allclose(np.asarray(rebuilt(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)


def test_mobilenet_v3_small_crosses_the_bridge(k3):
    """It failed as `layer 'add' (Add from keras.src.ops.numpy) has no tf_keras equivalent`."""
    model = k3.applications.MobileNetV3Small(input_shape=(32, 32, 3), weights=None, classes=4,
                                             include_preprocessing=False)
    _randomize(model, 8)
    x = np.random.default_rng(8).uniform(-1, 1, size=(2, 32, 32, 3)).astype(np.float32)
    assert bridge.check_same_outputs(model, bridge.to_tf_keras(model), x) < 1e-4
