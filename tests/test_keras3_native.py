"""Keras 3 models convert as they are (issue 19): no rebuild as tf_keras unless a stage needs one,
and a fixed-shape model converts at batch 1, without run-time shape ops."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from edgec import _tf

SHAPE_OPS = {"SHAPE", "STRIDED_SLICE", "PACK", "FILL"}


@pytest.fixture(scope="module")
def k3():
    return _tf.keras3()


def _alive(model, x, steps=3):
    """A few training steps so the activations are not those of random weights."""
    y = np.arange(len(x)) % model.outputs[0].shape[-1]
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=steps, batch_size=8, verbose=0)
    return model


def _plain_batch1_ops(model, x) -> dict:
    """What a user's own few lines of TensorFlow give: a batch-1 concrete function, full int8."""
    from edgec.runtime.model_file import read_model

    tf = _tf.tf()
    fn = tf.function(lambda t: model(t, training=False),
                     input_signature=[tf.TensorSpec((1, *model.inputs[0].shape[1:]), tf.float32)])
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([s[None]] for s in x)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    return read_model(conv.convert()).op_counts


def test_keras3_mobilenet_converts_at_batch_1_without_shape_ops(k3, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (32, 32, 32, 3)).astype(np.float32)
    k3.utils.set_random_seed(0)
    model = _alive(k3.applications.MobileNet(input_shape=(32, 32, 3), alpha=0.25, weights=None, classes=4), x)
    model.save(tmp_path / "mobilenet.keras")
    np.savez(tmp_path / "d.npz", x=x)
    proc = run_cli("build", str(tmp_path / "mobilenet.keras"), "-t", "cortex-m4", "-d", str(tmp_path / "d.npz"),
                   "-o", str(tmp_path / "out"), "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["model"]["keras"] == "Keras 3" and "keras3_bridge_max_abs_diff" not in report["model"]
    ops = report["tflite"]["ops"]
    assert not SHAPE_OPS & set(ops), ops
    assert ops == _plain_batch1_ops(model, x[:8])
    assert report["verification"]["task"] == "classifier"


def test_keras3_layers_the_bridge_cannot_carry_build_natively(k3, tmp_path):
    """keras.ops in a functional model, hard_swish, LeakyReLU(negative_slope): each broke the tf_keras
    rebuild; without a TFMOT stage there is none."""
    k3.utils.set_random_seed(1)
    inp = k3.Input((8, 8, 1))
    x = k3.layers.Conv2D(8, 3, padding="same", activation="hard_swish", name="hs")(inp)
    x = k3.layers.LeakyReLU(negative_slope=0.2, name="leaky")(x)
    x = k3.ops.add(x, k3.layers.Conv2D(8, 1, name="skip")(x))
    x = k3.layers.GlobalAveragePooling2D()(x)
    model = k3.Model(inp, k3.layers.Dense(3, activation="softmax", name="head")(x))
    x_data = np.random.default_rng(1).uniform(0, 1, (40, 8, 8, 1)).astype(np.float32)
    _alive(model, x_data)
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "d.npz", x=x_data)
    proc = run_cli("build", str(tmp_path / "m.keras"), "-t", "cortex-m4", "-d", str(tmp_path / "d.npz"),
                   "-o", str(tmp_path / "out"), "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    v = json.loads(proc.stdout)["verification"]
    assert v["top1_agreement"] >= 0.75 and v["micro_vs_litert_max_lsb"] <= 1
    # A TFMOT stage needs the tf_keras rebuild, which cannot carry keras.ops.add: one line naming it
    proc = run_cli("build", str(tmp_path / "m.keras"), "-t", "cortex-m4", "-d", str(tmp_path / "d.npz"),
                   "-o", str(tmp_path / "out2"), "--stage", "qat")
    assert_one_line_error(proc, 2, "no tf_keras equivalent")
    assert not (tmp_path / "out2").exists()


def test_untrained_network_gets_the_vanishing_activation_message(k3, tmp_path):
    """keras.applications.MobileNet(weights=None) as it comes: its activations vanish (about 1e-7 by the
    eighth block); the message names the layer and says what to do, instead of a corrupt converted file."""
    import time

    k3.utils.set_random_seed(0)
    k3.applications.MobileNet(input_shape=(64, 64, 3), alpha=0.25, weights=None, classes=10).save(
        tmp_path / "untrained.keras")
    start = time.monotonic()
    proc = run_cli("build", str(tmp_path / "untrained.keras"), "-t", "mobile", "-d", "random",
                   "-o", str(tmp_path / "out"))
    assert_one_line_error(proc, 2, "activations vanish", "layer 'conv_", "train the model")
    assert "edgec build" not in proc.stderr and "corrupt" not in proc.stderr
    assert time.monotonic() - start < 30


def test_savedmodels_from_every_exporter_build(k3, tmp_path):
    """Keras 3's model.export() and tf.saved_model.save() of a tf.Module have no Keras metadata: they
    convert through their serving signature (tf_keras's model.save is in test_hardening.py)."""
    tf = _tf.tf()
    k3.utils.set_random_seed(2)
    inp = k3.Input((6,), name="features")
    model = k3.Model(inp, k3.layers.Dense(3, activation="softmax")(k3.layers.Dense(8, activation="relu")(inp)))
    model.export(tmp_path / "exported", verbose=False)

    class Affine(tf.Module):
        def __init__(self):
            self.w = tf.Variable(np.random.default_rng(2).normal(size=(6, 3)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32)])
        def __call__(self, x):
            return tf.nn.relu(tf.matmul(x, self.w))

    module = Affine()
    tf.saved_model.save(module, str(tmp_path / "module"), signatures=module.__call__)
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(3).normal(size=(50, 6)).astype(np.float32))
    for name in ("exported", "module"):
        proc = run_cli("build", str(tmp_path / name), "-t", "cortex-m4", "-d", str(tmp_path / "d.npz"),
                       "-o", str(tmp_path / f"out_{name}"), "--json", "-q")
        assert proc.returncode == 0, (name, proc.stderr)
        report = json.loads(proc.stdout)
        assert report["model"]["format"] == "savedmodel-signature"
        assert report["verification"]["output_error_steps_max"] <= 3, report["verification"]
    proc = run_cli("build", str(tmp_path / "exported"), "-t", "cortex-m4", "-d", str(tmp_path / "d.npz"),
                   "-o", str(tmp_path / "out_stage"), "--stage", "qat")
    assert_one_line_error(proc, 2, "without Keras layers", "without --stage")
