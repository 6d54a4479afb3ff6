"""Keras 3 models convert as they are (issue 19): no rebuild as tf_keras unless a stage needs one,
and a fixed-shape model converts at batch 1, without run-time shape ops."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import assert_one_line_error, have, run_cli
from edgec import frameworks

SHAPE_OPS = {"SHAPE", "STRIDED_SLICE", "PACK", "FILL"}


def _alive(model, x, steps=3):
    """A few training steps so the activations are not those of random weights; batch norm's moving
    statistics follow the batches fast (momentum 0.5), as a trained network's have settled."""
    for layer in model.layers:
        if hasattr(layer, "moving_mean"):
            layer.momentum = 0.5
    y = np.arange(len(x)) % model.outputs[0].shape[-1]
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=steps, batch_size=8, verbose=0)
    return model


def _built(model, x, tmp_path, target: str) -> dict:
    """``model`` saved with ``x`` as its data and built for ``target``: the JSON report of an exit-0 build."""
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "d.npz", x=x)
    proc = run_cli("build", str(tmp_path / "m.keras"), "-t", target, "-d", str(tmp_path / "d.npz"),
                   "-o", str(tmp_path / "out"), "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _plain_batch1_ops(model, x) -> dict:
    """What a user's own few lines of TensorFlow give: a batch-1 concrete function, full int8."""
    from edgec.load.tflite_file import read_tflite

    tf = frameworks.tf()
    fn = tf.function(lambda t: model(t, training=False),
                     input_signature=[tf.TensorSpec((1, *model.inputs[0].shape[1:]), tf.float32)])
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([s[None]] for s in x)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    ops = read_tflite(conv.convert()).op_counts
    if "TILE" in ops:  # edgec broadcasts where the plain conversion tiles axes of size 1 (the same values)
        ops["BROADCAST_TO"] = ops.get("BROADCAST_TO", 0) + ops.pop("TILE")
    return dict(sorted(ops.items()))


@pytest.mark.slow
def test_keras3_mobilenet_converts_at_batch_1_without_shape_ops(k3, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (32, 32, 32, 3)).astype(np.float32)
    k3.utils.set_random_seed(0)
    model = _alive(k3.applications.MobileNet(input_shape=(32, 32, 3), alpha=0.25, weights=None, classes=4), x)
    report = _built(model, x, tmp_path, "cortex-m4")
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
    np.savez(tmp_path / "d.npz", x=x_data, y=np.arange(len(x_data)) % 3)
    proc = run_cli("build", str(tmp_path / "m.keras"), "-t", "cortex-m4", "-d", str(tmp_path / "d.npz"),
                   "-o", str(tmp_path / "out"), "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    v = json.loads(proc.stdout)["verification"]
    assert v["top1_agreement"] >= 0.75 and v["micro_vs_litert_max_lsb"] <= 1
    # A TFMOT stage uses the tf_keras rebuild, which now carries keras.ops.add, hard_swish (by its Keras 3
    # meaning) and negative_slope; TFMOT itself cannot quantize a hard_swish activation: one line naming the layer
    proc = run_cli("build", str(tmp_path / "m.keras"), "-t", "cortex-m4", "-d", str(tmp_path / "d.npz"),
                   "-o", str(tmp_path / "out2"), "--stage", "qat")
    assert_one_line_error(proc, 2, "layer 'hs'", "hard_swish", "qat:skip=hs")
    assert not (tmp_path / "out2").exists()
    # following the advice builds: the skipped layer's output is still quantized before the LeakyReLU
    # (TFMOT's own config for it raised, then TF failed in the LeakyReLU's gradient)
    proc = run_cli("build", str(tmp_path / "m.keras"), "-t", "cortex-m4", "-d", str(tmp_path / "d.npz"),
                   "-o", str(tmp_path / "out3"), "--stage", "qat:skip=hs,epochs=1", "--budget", "accuracy_drop=100%",
                   "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["stages"][1]["skipped_layers"] == ["hs"]


def test_keras3_ops_model_takes_qat_through_the_bridge(k3, tmp_path):
    """keras.ops.add and a multiply by a number (Rescaling in tf_keras) carried into QAT; TFMOT cannot quantize
    a Rescaling, and says so naming it, so it is skipped."""
    k3.utils.set_random_seed(6)
    inp = k3.Input((8, 8, 1))
    x = k3.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inp)
    x = k3.ops.multiply(k3.ops.add(x, k3.layers.Conv2D(8, 1, name="c2")(x)), 0.5)
    model = k3.Model(inp, k3.layers.Dense(3, activation="softmax", name="head")(k3.layers.Flatten()(x)))
    x_data = np.random.default_rng(6).uniform(0, 1, (64, 8, 8, 1)).astype(np.float32)
    _alive(model, x_data)
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "d.npz", x=x_data, y=np.arange(64) % 3)
    proc = run_cli("build", str(tmp_path / "m.keras"), "-t", "cortex-m4", "-d", str(tmp_path / "d.npz"),
                   "-o", str(tmp_path / "out"), "--stage", "qat:skip=multiply,epochs=1", "--json", "-q",
                   "--budget", "accuracy_drop=100%")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["model"]["keras3_bridge_max_abs_diff"] < 1e-5
    assert [r["name"] for r in report["stages"]] == ["input", "qat", "int8"]


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
    tf = frameworks.tf()
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


MCU_ACTIVATIONS = ["relu", "sigmoid", "softmax", "softsign", "tanh", "leaky_relu", "relu6", "silu", "hard_silu",
                   "hard_sigmoid", "linear", "log_softmax"]
# TFLite has no int8 kernel for ELU; TFLite-Micro has no int8 EXP (softplus, mish, exponential), SELECT (selu) or
# the ops of gelu: these build for a phone, and for an MCU are one line naming the layer.
PHONE_ONLY_ACTIVATIONS = ["softplus", "selu", "exponential", "gelu", "mish"]


def _zoo_model(k3, activations):
    """Every layer of the issue-19 zoo that is not a whole application, in one Keras 3 model: one branch per
    activation, and Rescaling, Normalization, ZeroPadding2D, Cropping2D, SeparableConv2D, DepthwiseConv2D,
    dilated Conv2D, PReLU, Add, Multiply (squeeze-excite), Concatenate, Average, Maximum, Dropout, MaxPooling2D,
    UpSampling2D, Resizing, GlobalAveragePooling2D and GlobalMaxPooling2D (LayerNormalization: see below).
    Keras 3's UpSampling2D repeats rows and columns with TILE, which TFLite-Micro lacks: edgec broadcasts."""
    L = k3.layers
    inp = k3.Input((16, 16, 3))
    x = L.Normalization(mean=0.0, variance=1.0)(L.Rescaling(0.5)(inp))
    x = L.Cropping2D(1)(L.ZeroPadding2D(1)(x))
    a = L.SeparableConv2D(8, 3, padding="same", activation="relu6")(x)
    b = L.PReLU()(L.Conv2D(8, 1)(L.DepthwiseConv2D(3, padding="same")(x)))
    c = L.Conv2D(8, 3, padding="same", dilation_rate=2)(x)
    se = L.Dense(8, activation="sigmoid")(L.GlobalAveragePooling2D(keepdims=True)(c))
    m = L.Multiply()([L.Add()([a, b]), se])
    x = L.Concatenate()([m, L.Average()([a, c]), L.Maximum()([b, c])])
    x = L.Dropout(0.1)(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Resizing(8, 8)(L.UpSampling2D(2)(x))
    branches = [L.Conv2D(4, 1, activation=act, name=f"act_{act}")(x) for act in activations]
    # TFLite-Micro's CONCATENATION takes at most 10 inputs: concatenate in groups of 6
    groups = [branches[i:i + 6] for i in range(0, len(branches), 6)]
    x = L.Concatenate()([L.Concatenate()(g) if len(g) > 1 else g[0] for g in groups]) if len(groups) > 1 else \
        L.Concatenate()(groups[0])
    x = L.Concatenate()([L.GlobalAveragePooling2D()(x), L.GlobalMaxPooling2D()(x)])
    return k3.Model(inp, L.Dense(4, activation="softmax")(x))


@pytest.mark.parametrize("target,activations", [
    ("cortex-m7", MCU_ACTIVATIONS), pytest.param("mobile", PHONE_ONLY_ACTIVATIONS, marks=pytest.mark.slow)])
def test_keras3_layer_zoo_builds_natively(k3, tmp_path, target, activations):
    k3.utils.set_random_seed(4)
    x = np.random.default_rng(4).uniform(-1, 1, (48, 16, 16, 3)).astype(np.float32)
    model = _alive(_zoo_model(k3, activations), x)
    model.save(tmp_path / "zoo.keras")
    np.savez(tmp_path / "d.npz", x=x)
    proc = run_cli("build", str(tmp_path / "zoo.keras"), "-t", target, "-d", str(tmp_path / "d.npz"),
                   "-o", str(tmp_path / "out"), "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert not {"SHAPE", "PACK", "FILL"} & set(report["tflite"]["ops"])  # STRIDED_SLICE: Cropping2D's own
    assert report["tflite"]["ops"] == _plain_batch1_ops(model, x[:8])
    assert report["verification"]["output_error_steps_max"] <= 40, report["verification"]




@pytest.mark.slow  # 25 s; the default suite covers these kernels in test_codegen.py
@pytest.mark.skipif(not have("gcc"), reason="gcc is not installed (make test installs it)")
def test_keras3_layer_zoo_generated_c_bit_exact(k3, tmp_path):
    """Issue 23: the zoo's ops in generated C (PAD, STRIDED_SLICE, PRELU, MUL, MEAN, CONCATENATION, MAXIMUM,
    BROADCAST_TO, RESIZE_BILINEAR, REDUCE_MAX, QUANTIZE and the activations' LOGISTIC, TANH, HARD_SWISH,
    LEAKY_RELU, ABS, DIV (softsign), LOG_SOFTMAX...), bit-exact with TFLite-Micro on probe inputs and validation samples
    (and under QEMU where the ARM tools are installed)."""
    k3.utils.set_random_seed(4)
    x = np.random.default_rng(4).uniform(-1, 1, (48, 16, 16, 3)).astype(np.float32)
    model = _alive(_zoo_model(k3, MCU_ACTIVATIONS), x)
    model.save(tmp_path / "zoo.keras")
    np.savez(tmp_path / "d.npz", x=x)
    proc = run_cli("build", str(tmp_path / "zoo.keras"), "-t", "cortex-m4", "-d", str(tmp_path / "d.npz"),
                   "-o", str(tmp_path / "out"), "--emit", "c", "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    ops = set(report["tflite"]["ops"])
    assert {"PRELU", "STRIDED_SLICE", "RESIZE_BILINEAR", "REDUCE_MAX", "HARD_SWISH", "LOGISTIC", "TANH",
            "LEAKY_RELU", "MEAN", "CONCATENATION", "MUL", "MAXIMUM", "PAD", "DIV", "ABS", "LOG_SOFTMAX"} <= ops
    c = report["measurements"]["c"]
    assert c["host"]["bit_exact"] and c["host"]["samples"] > 3
    assert "skipped" in c["mcu"] or c["mcu"]["bit_exact"]


def test_an_activation_tflite_micro_cannot_run_is_one_line_naming_its_layer(k3, tmp_path):
    k3.utils.set_random_seed(5)
    inp = k3.Input((8, 8, 1))
    x = k3.layers.Conv2D(4, 3, padding="same", activation="softplus", name="smooth")(inp)
    model = _alive(k3.Model(inp, k3.layers.Dense(3, activation="softmax")(k3.layers.Flatten()(x))),
                   np.random.default_rng(5).uniform(0, 1, (32, 8, 8, 1)).astype(np.float32))
    model.save(tmp_path / "m.keras")
    proc = run_cli("build", str(tmp_path / "m.keras"), "-t", "cortex-m4", "-d", "random", "-o", str(tmp_path / "o"))
    assert_one_line_error(proc, 2, "layer 'smooth'", "EXP", "TFLite-Micro")


@pytest.mark.parametrize("target", ["cortex-m7", "mobile"])
def test_keras3_layer_normalization_builds_full_int8(k3, tmp_path, target):
    """Keras 3's LayerNormalization computes -mean x inv: a NEG, which has no int8 kernel in TFLite or
    TFLite-Micro, so the conversion refused it. Traced at batch 1, each negation becomes a multiply by -1."""
    k3.utils.set_random_seed(7)
    inp = k3.Input((6, 8))
    x = k3.layers.LayerNormalization(name="ln")(k3.layers.Dense(8, activation="relu")(inp))
    model = k3.Model(inp, k3.layers.Dense(3, activation="softmax")(k3.layers.GlobalAveragePooling1D()(x)))
    x_data = np.random.default_rng(7).normal(size=(48, 6, 8)).astype(np.float32)
    _alive(model, x_data)
    model.save(tmp_path / "ln.keras")
    np.savez(tmp_path / "d.npz", x=x_data)
    proc = run_cli("build", str(tmp_path / "ln.keras"), "-t", target, "-d", str(tmp_path / "d.npz"),
                   "-o", str(tmp_path / "o"), "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert "NEG" not in report["tflite"]["ops"] and report["tflite"]["ops"]["RSQRT"] == 1
    assert report["verification"]["output_error_steps_max"] <= 6, report["verification"]
    assert report["verification"]["micro_vs_litert_max_lsb"] in (None, 0, 1)


APPLICATIONS = {  # name: (constructor arguments, target) - tiny inputs, a few training steps
    "MobileNet": (dict(alpha=0.25), "cortex-m7"),
    "MobileNetV2": (dict(alpha=0.35), "cortex-m7"),
    "MobileNetV3Small": (dict(include_preprocessing=False), "cortex-m7"),
    "MobileNetV3Large": (dict(include_preprocessing=False), "cortex-m7"),
    "MobileNetV3Small-minimalistic": (dict(minimalistic=True, include_preprocessing=False), "cortex-m7"),
    "EfficientNetB0": ({}, "mobile"),
    "NASNetMobile": ({}, "mobile"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(APPLICATIONS))
def test_keras_applications_build_natively(k3, tmp_path, name):
    """keras.applications networks (Keras 3) through the library's build, on the targets each fits: int8
    verified, the same op list as a plain batch-1 TensorFlow conversion, and (MCU) the same arena."""
    from edgec.config import BuildConfig
    from edgec.pipeline import build
    from edgec.runtime import micro

    kwargs, target = APPLICATIONS[name]
    k3.utils.set_random_seed(0)
    x = np.random.default_rng(0).uniform(-1, 1, (48, 32, 32, 3)).astype(np.float32)
    model = _alive(getattr(k3.applications, name.split("-")[0])(input_shape=(32, 32, 3), weights=None, classes=4,
                                                                **kwargs), x, steps=2)
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "d.npz", x=x)
    emit = ["c"] if have("gcc") else []  # issue 23: every one of them in generated C
    report = build(BuildConfig.from_dict(dict(model=str(tmp_path / "m.keras"), data=str(tmp_path / "d.npz"),
                                              target=target, out=str(tmp_path / "out"), emit=emit,
                                              budgets={"flash": 1e12, "latency": 1e9})), progress=False)
    if emit:  # bit-exact on the host; under QEMU too where it fits the emulated board's 4 MiB
        c = report.measurements["c"]
        assert c["host"]["bit_exact"] and ("skipped" in c["mcu"] or c["mcu"]["bit_exact"]), c["mcu"]
    assert report.model["keras"] == "Keras 3"
    assert report.tflite["ops"] == _plain_batch1_ops(model, x[:8])
    assert not {"SHAPE", "PACK", "FILL"} & set(report.tflite["ops"])
    assert report.verification["micro_vs_litert_max_lsb"] in (None, 0, 1)
    if target != "mobile":
        tf = frameworks.tf()
        fn = tf.function(lambda t: model(t, training=False),
                         input_signature=[tf.TensorSpec((1, 32, 32, 3), tf.float32)])
        conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()])
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([s[None]] for s in x[:300])
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
        assert report.measurements["arena_bytes"] <= micro.measure_arena(conv.convert()).bytes


def _qat_following_advice(tmp_path, model_path, data, target, rounds=4):
    """``--stage qat`` as a user runs it: where edgec says which layers TFMOT cannot take and names the
    skip that passes them, rerun with that skip. Returns the report and the stage that built."""
    stage = "qat:epochs=1"
    for attempt in range(rounds):
        proc = run_cli("build", str(model_path), "-t", target, "-d", str(data), "-o", str(tmp_path / f"qat{attempt}"),
                       "--stage", stage, "--json", "-q", "--budget", "accuracy_drop=100%",
                       "--budget", "flash=1000MiB", "--budget", "latency=100000ms")  # fit is not the point
        if proc.returncode == 0:
            return json.loads(proc.stdout), stage
        assert_one_line_error(proc, 2, "--stage")
        advice = re.search(r"--stage '?(qat:skip=[^' ]+?)'?,? ", proc.stderr)
        assert advice, proc.stderr
        stage = f"{advice.group(1)},epochs=1"
    raise AssertionError(f"still refused after {rounds} rounds of advice: {proc.stderr}")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["zoo", *APPLICATIONS])
def test_keras3_models_take_qat_or_name_what_to_skip(k3, tmp_path, name):
    """Issue 19: each model of the zoo also builds with --stage qat, or says in one line which layers TFMOT
    cannot take and the skip that gets it through; following that advice builds."""
    if name == "zoo":
        x = np.random.default_rng(4).uniform(-1, 1, (48, 16, 16, 3)).astype(np.float32)
        k3.utils.set_random_seed(4)
        model, target = _alive(_zoo_model(k3, MCU_ACTIVATIONS), x), "cortex-m7"
    else:
        kwargs, target = APPLICATIONS[name]
        x = np.random.default_rng(0).uniform(-1, 1, (48, 32, 32, 3)).astype(np.float32)
        k3.utils.set_random_seed(0)
        model = _alive(getattr(k3.applications, name.split("-")[0])(input_shape=(32, 32, 3), weights=None,
                                                                    classes=4, **kwargs), x, steps=2)
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(len(x)) % 4)
    report, stage = _qat_following_advice(tmp_path, tmp_path / "m.keras", tmp_path / "d.npz", target)
    assert [s["name"] for s in report["stages"]] == ["input", "qat", "int8"], stage
    assert report["verification"]["micro_vs_litert_max_lsb"] in (None, 0, 1)


@pytest.mark.parametrize("kind", ["conv1d", "conv2d_transpose", "activation_layers"])
def test_conv1d_transposed_conv_and_activation_layers_build_for_an_mcu(k3, tmp_path, kind):
    L = k3.layers
    k3.utils.set_random_seed(8)
    if kind == "conv1d":
        inp = k3.Input((32, 4))
        x = L.Conv1D(8, 3, strides=2, activation="relu")(L.Conv1D(8, 5, padding="same")(inp))
        x = L.GlobalAveragePooling1D()(x)
    elif kind == "conv2d_transpose":
        inp = k3.Input((8, 8, 2))
        x = L.Flatten()(L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")(L.Conv2D(4, 3)(inp)))
    else:
        inp = k3.Input((8, 8, 2))
        x = L.LeakyReLU(negative_slope=0.1)(L.Conv2D(4, 3, padding="same")(inp))
        x = L.ReLU(max_value=6.0)(L.Conv2D(4, 3, padding="same")(x))
        x = L.GlobalAveragePooling2D()(L.PReLU()(L.Conv2D(4, 1)(x)))
    model = k3.Model(inp, L.Dense(3, activation="softmax")(x))
    x_data = np.random.default_rng(8).uniform(-1, 1, (48, *inp.shape[1:])).astype(np.float32)
    report = _built(_alive(model, x_data), x_data, tmp_path, "cortex-m7")
    assert report["tflite"]["ops"] == _plain_batch1_ops(model, x_data[:8])
    v = report["verification"]
    assert v["micro_samples"] > 0 and v["micro_vs_litert_max_lsb"] <= 1 and v["top1_agreement"] >= 0.8, v


def test_an_elu_layer_is_one_line_naming_it(k3, tmp_path):
    inp = k3.Input((8, 8, 2))
    x = k3.layers.ELU(name="elu")(k3.layers.Conv2D(4, 3)(inp))
    k3.Model(inp, k3.layers.Dense(3)(k3.layers.Flatten()(x))).save(tmp_path / "elu.keras")
    proc = run_cli("build", str(tmp_path / "elu.keras"), "-t", "mobile", "-d", "random", "-o", str(tmp_path / "o"))
    assert_one_line_error(proc, 2, "layer 'elu'", "ELU")
