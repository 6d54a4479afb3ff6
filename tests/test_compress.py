"""Compression stages on tiny models: recipes, parameters, schedules, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SAMPLE, assert_one_line_error, run_cli
from edgec import compress
from edgec.check.verification import predict
from edgec.compress.base import Context
from edgec.config import BuildConfig, StageSpec, TrainingConfig, load_recipe
from edgec.errors import ConfigError, ConversionError


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.random((96, 8, 8, 4)).astype(np.float32)
    y = (x[:, :4, :, 0].mean(axis=(1, 2)) * 3).astype(np.int64).clip(0, 2)  # learnable labels
    return x, y


def _ctx(data, **kw):
    x, y = data
    return Context(x[:64], y[:64] if y is not None else None, x[64:], y[64:] if y is not None else None,
                   TrainingConfig(epochs=1, batch_size=16), progress=False, **kw)


def _model(tfk, extra=None):
    tfk.utils.set_random_seed(0)
    inp = tfk.Input((8, 8, 4))
    x = tfk.layers.Conv2D(8, 3, activation="relu", name="conv")(inp)
    if extra is not None:
        x = extra(x)
    x = tfk.layers.Flatten(name="flat")(x)
    x = tfk.layers.Dense(16, activation="relu", name="fc")(x)
    return tfk.Model(inp, tfk.layers.Dense(3, activation="softmax", name="out")(x))


def _stages(*texts):
    return compress.validate([StageSpec.parse(t) for t in texts])


# --- recipes and stage specs -------------------------------------------------------------

def test_stage_spec_parsing():
    spec = StageSpec.parse("prune:sparsity=0.75,schedule=constant,exclude=out|fc,epochs=3")
    assert spec.to_dict() == {"name": "prune", "sparsity": 0.75, "schedule": "constant",
                              "exclude": ["out", "fc"], "epochs": 3}
    assert StageSpec.parse("qat").to_dict() == {"name": "qat"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        StageSpec.parse("prune:sparsity")


@pytest.mark.parametrize("text, words", [
    ("prun", ["unknown stage 'prun'", "did you mean 'prune'"]),
    ("prune:sparsty=0.5", ["unknown key 'sparsty'", "did you mean 'sparsity'"]),
    ("prune:sparsity=1.5", ["sparsity must be a number in [0, 1)"]),
    ("prune:schedule=cubic", ["schedule 'cubic'"]),
    ("prune:m_by_n=4:2", ["m_by_n"]),
    ("cluster:clusters=1", ["clusters must be"]),
    ("qat:scheme=fancy", ["scheme 'fancy'"]),
    ("distill", ["needs teacher"]),
])
def test_bad_stage_parameters(text, words):
    with pytest.raises(ConfigError) as info:
        _stages(text)
    for w in words:
        assert w in str(info.value)


def test_stage_order_rules():
    with pytest.raises(ConfigError, match="cannot follow 'qat'"):
        compress.validate([StageSpec.parse("qat"), StageSpec.parse("prune")])
    with pytest.raises(ConfigError, match="put 'prune' before 'cluster'"):
        compress.validate([StageSpec.parse("cluster"), StageSpec.parse("prune")])


def test_recipe_file_paths_and_cli_override(tmp_path):
    (tmp_path / "sub").mkdir()
    recipe = tmp_path / "sub" / "edgec.toml"
    recipe.write_text('model = "m.keras"\ndata = "d.npz"\ntarget = "cortex-m4"\n'
                      '[budgets]\nram = "96KiB"\n[training]\nepochs = 3\n'
                      '[[stages]]\nname = "prune"\nsparsity = 0.5\n[[stages]]\nname = "qat"\n')
    cfg = BuildConfig.from_dict(load_recipe(recipe))
    assert cfg.model == str(tmp_path / "sub" / "m.keras") and cfg.data == str(tmp_path / "sub" / "d.npz")
    assert dict(cfg.budgets) == {"ram": 98304.0} and cfg.training.epochs == 3
    assert [s.name for s in cfg.stages] == ["prune", "qat"]
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\n[tool.edgec]\nmodel = "m.keras"\ndata = "random"\n'
                         'target = "mobile"\n')
    assert BuildConfig.from_dict(load_recipe(pyproject)).data == "random"


@pytest.mark.parametrize("text, words", [
    ('model = "m.keras"\ndata = "random"\ntarget = "mobile"\n[[stages]]\nname = "prune"\nsparsty = 0.5\n',
     ["unknown key 'sparsty'", "did you mean 'sparsity'"]),
    ('modle = "m.keras"\n', ["unknown key 'modle'", "did you mean 'model'"]),
    ('model = "m.keras"\ndata = "random"\ntarget = "mobile"\n[training]\nlearnig_rate = 0.1\n',
     ["unknown key 'learnig_rate'", "did you mean 'learning_rate'"]),
    ('model = "m.keras"\ndata = "random"\ntarget = "mobile"\n[budgets]\nrma = "1KiB"\n', ["unknown budget 'rma'"]),
    ('model = [1\n', ["not valid TOML"]),
])
def test_recipe_typos_are_one_line_errors(tmp_path, text, words):
    recipe = tmp_path / "edgec.toml"
    recipe.write_text(text)
    out = tmp_path / "out"
    proc = run_cli("build", "--config", str(recipe), "--out", str(out))
    assert_one_line_error(proc, 2, *words)
    assert not out.exists()


def test_missing_model_without_recipe_is_one_line():
    assert_one_line_error(run_cli("build", "--target", "cortex-m4"), 2, "no model, data given")


# --- the stages ----------------------------------------------------------------------------

@pytest.mark.parametrize("schedule", ["polynomial", "constant"])
def test_prune_reaches_the_target_sparsity_and_strips(tfk, data, schedule):
    model, rows = compress.run(_model(tfk), _stages(f"prune:sparsity=0.6,schedule={schedule},epochs=2,"
                                                   "frequency=1,exclude=out"), _ctx(data))
    assert not any("prune" in type(layer).__name__.lower() for layer in model.layers)  # stripped
    for name in ("conv", "fc"):
        w = model.get_layer(name).get_weights()[0]
        assert (w == 0).mean() == pytest.approx(0.6, abs=0.02)
    assert (model.get_layer("out").get_weights()[0] != 0).all()  # excluded
    assert rows[1]["pruned_layers"] == ["conv", "fc"]
    assert rows[1]["nonzero_parameters"] < rows[0]["nonzero_parameters"]


def test_prune_two_of_four(tfk, data):
    model, _ = compress.run(_model(tfk), _stages("prune:m_by_n=2:4,epochs=1"), _ctx(data))
    for name in ("conv", "fc"):
        nz = model.get_layer(name).get_weights()[0] != 0
        blocks = np.moveaxis(nz, -2, -1).reshape(-1, 4)  # blocks of 4 along the input channels
        assert blocks.sum(axis=1).max() <= 2


def test_cluster_limits_unique_values_and_keeps_zeros(tfk, data):
    model, rows = compress.run(_model(tfk), _stages("prune:sparsity=0.5,frequency=1,epochs=1",
                                                       "cluster:clusters=8,epochs=1"), _ctx(data))
    row = rows[-1]
    assert set(row["unique_values_per_kernel"]) == {"conv", "fc", "out"}
    assert max(row["unique_values_per_kernel"].values()) <= 8
    assert row["preserve_sparsity"] is True
    assert row["kernel_sparsity"] == pytest.approx(rows[1]["kernel_sparsity"], abs=0.01)
    assert row["float_weights_gzip_bytes"] < rows[1]["float_weights_gzip_bytes"]


def test_qat_unsupported_layer_is_named_and_skip_passes(tfk, data):
    from edgec.convert.int8 import convert_int8

    def norm(x):
        return tfk.layers.LayerNormalization(name="ln")(x)

    with pytest.raises(ConversionError) as info:
        compress.run(_model(tfk, norm), _stages("qat:epochs=1"), _ctx(data))
    assert "layer 'ln' (LayerNormalization)" in str(info.value) and "qat:skip=ln" in str(info.value)
    model, rows = compress.run(_model(tfk, norm), _stages("qat:epochs=1,skip=ln"), _ctx(data))
    assert rows[-1]["skipped_layers"] == ["ln"] and rows[-1]["scheme"] == "default"
    assert len(convert_int8(model, data[0][:32])) > 0


def test_qat_names_every_layer_it_cannot_take_in_one_error(tfk, data):
    """TFMOT refuses one layer at a time; edgec finds them all and gives the skip that passes them."""
    import re

    def three(x):
        x = tfk.layers.LayerNormalization(name="ln_1")(x)
        x = tfk.layers.Dense(8, activation="elu", name="smooth")(x)
        return tfk.layers.LayerNormalization(name="ln_2")(x)

    with pytest.raises(ConversionError) as info:
        compress.run(_model(tfk, three), _stages("qat:epochs=1"), _ctx(data))
    text = str(info.value)
    assert "cannot quantize 3 layers" in text and "'smooth' (activation elu)" in text, text
    assert "'ln_1', 'ln_2' (LayerNormalization)" in text, text
    skip = re.search(r"--stage '(qat:skip=[^']+)'", text).group(1)
    assert skip in ("qat:skip=smooth|ln*", "qat:skip=ln*|smooth"), skip
    _, rows = compress.run(_model(tfk, three), _stages(f"{skip},epochs=1"), _ctx(data))
    assert sorted(rows[-1]["skipped_layers"]) == ["ln_1", "ln_2", "smooth"]


def test_qat_fake_quantizes_the_output_of_an_activation_layer_tfmot_cannot_take(tfk, data):
    """MobileNetV3's hard_swish is a standalone Activation layer: TFMOT's config for it raises (even when the
    layer is skipped and only its output is to be quantized); its output is fake-quantized instead."""
    from edgec.convert.int8 import convert_int8

    model, rows = compress.run(_model(tfk, lambda x: tfk.layers.Activation("relu6", name="act")(x)),
                               _stages("qat:epochs=1"), _ctx(data))
    assert rows[-1]["output_only_layers"] == ["act"] and rows[-1]["skipped_layers"] == []
    wrapped = model.get_layer("quant_act")
    assert [w.name.split("/")[-1].split(":")[0] for w in wrapped.weights][-2:] == ["output_min", "output_max"]
    assert len(convert_int8(model, data[0][:32])) > 0


def test_qat_scheme_follows_the_stages_before(tfk, data):
    _, rows = compress.run(_model(tfk), _stages("prune:sparsity=0.5,frequency=1,epochs=1", "qat:epochs=1"),
                           _ctx(data))
    assert rows[-1]["scheme"] == "prune_preserve"
    assert rows[-1]["kernel_sparsity"] >= 0.45


def test_distill_without_labels_uses_the_teacher_alone(tfk, data, tmp_path):
    teacher = tmp_path / "teacher.keras"
    _model(tfk).save(teacher)
    x, _ = data
    _, rows = compress.run(_model(tfk), _stages(f"distill:teacher={teacher},epochs=1"),
                           _ctx((x, None)))
    assert rows[-1]["alpha_used"] == 0.0
    assert rows[-1]["teacher_parameters"] == rows[-1]["student_parameters"]


def test_training_needs_labels(tfk, data):
    from edgec.errors import DataError

    with pytest.raises(DataError, match="needs labels"):
        compress.run(_model(tfk), _stages("prune"), _ctx((data[0], None)))


def test_progress_on_stderr_quiet_silences_it(tmp_path):
    args = ["build", str(SAMPLE / "digits.keras"), "--target", "mobile", "--data", str(SAMPLE / "digits.npz"),
            "--stage", "prune:sparsity=0.5,epochs=1", "--json", "--budget", "accuracy_drop=100%"]
    loud = run_cli(*args, "--out", str(tmp_path / "a"))
    assert loud.returncode == 0, loud.stderr
    assert "edgec: prune epoch 1/1" in loud.stderr
    assert json.loads(loud.stdout)["stages"][1]["name"] == "prune"  # stdout is only the JSON
    quiet = run_cli(*args, "--out", str(tmp_path / "b"), "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""


@pytest.mark.parametrize("stage", ["prune:sparsity=0.5,frequency=1,exclude=out", "cluster:clusters=4,epochs=1",
                                   "qat:epochs=1", "distill:teacher={teacher},epochs=1",
                                   "channels:fraction=0.5,epochs=1", "lowrank:ratio=0.3,epochs=1",
                                   "ternary:epochs=1,keep_ends=false"])
def test_stages_run_under_a_mirrored_strategy(tfk, data, tmp_path, stage):
    from edgec.compress.training import strategy

    teacher = tmp_path / "teacher.keras"
    _model(tfk).save(teacher)
    ctx = _ctx(data)
    ctx.training = TrainingConfig(epochs=1, batch_size=16, strategy="mirrored")
    _, rows = compress.run(_model(tfk), _stages(stage.format(teacher=teacher)), ctx)
    assert type(strategy("mirrored")).__name__ == "MirroredStrategy"
    assert rows[-1]["train_logs"]["loss"] > 0


def test_recipe_budgets_gate_the_build_and_the_command_line_overrides_them(tmp_path):
    recipe = tmp_path / "edgec.toml"
    recipe.write_text(f'model = "{SAMPLE / "digits.keras"}"\ndata = "{SAMPLE / "digits.npz"}"\n'
                      'target = "cortex-m4"\n[budgets]\nram = "4KiB"\n')
    failed = run_cli("build", "--config", str(recipe), "--out", str(tmp_path / "a"))
    assert failed.returncode == 1
    assert "edgec: budget exceeded: ram" in failed.stderr and "exceeds 4.0 KiB" in failed.stderr
    assert (tmp_path / "a" / "report.json").exists()  # artifacts are still written
    passed = run_cli("build", "--config", str(recipe), "--out", str(tmp_path / "b"), "--budget", "ram=1MiB")
    assert passed.returncode == 0, passed.stderr


def test_qat_unsupported_layer_through_the_cli(tfk, data, tmp_path):
    model = _model(tfk, lambda x: tfk.layers.LayerNormalization(name="ln")(x))
    model.save(tmp_path / "ln.keras")
    np.savez(tmp_path / "d.npz", x=data[0], y=data[1])
    # mobile: TFLite-Micro has no kernel for the REDUCE_PROD that LayerNormalization converts to
    args = ["build", str(tmp_path / "ln.keras"), "--target", "mobile", "--data", str(tmp_path / "d.npz"),
            "--budget", "accuracy_drop=100%", "-q"]
    failed = run_cli(*args, "--stage", "qat:epochs=1", "--out", str(tmp_path / "a"))
    assert_one_line_error(failed, 2, "cannot quantize layer 'ln' (LayerNormalization)", "qat:skip=ln")
    assert not (tmp_path / "a").exists()
    passed = run_cli(*args, "--stage", "qat:epochs=1,skip=ln", "--out", str(tmp_path / "b"), "--json")
    assert passed.returncode == 0, passed.stderr
    assert json.loads(passed.stdout)["stages"][1]["skipped_layers"] == ["ln"]


def test_structural_stages_without_labels_fine_tune_on_the_model_before(tfk, data):
    ctx = _ctx(data)
    ctx.y_train = ctx.y_val = None
    ctx.training = TrainingConfig(epochs=1, batch_size=16)
    model = _model(tfk)
    before = predict(model, ctx.x_val)
    thin, rows = compress.run(model, _stages("channels:fraction=0.25", "lowrank:ratio=0.25"), ctx)
    row = rows[1]
    assert "no labels" in row["fine_tuned_on"] and row["train_logs"]["loss"] > 0
    assert row["footprint"]["after"]["tflite_bytes"] < row["footprint"]["before"]["tflite_bytes"]
    # self-distillation keeps the thinner model close to the original's outputs
    assert np.mean(np.argmax(predict(thin, ctx.x_val), 1) == np.argmax(before, 1)) > 0.5


# --- ternary and binary weights ------------------------------------------------------------

def test_ternarize_and_binarize_per_output_channel():
    from edgec.compress.ternary import binarize, ternarize

    w = np.array([[0.9, -0.05], [-0.8, 0.4], [0.1, -0.6]], np.float32)  # 3 inputs, 2 output channels
    t = ternarize(w, (0,), 0.7)
    # channel 0: mean |w| 0.6, threshold 0.42 keeps 0.9 and -0.8 -> +-0.85; channel 1: 0.35 -> 0.245: 0.4, -0.6
    np.testing.assert_allclose(t, [[0.85, 0], [-0.85, 0.5], [0, -0.5]], rtol=1e-6)
    b = binarize(w, (0,))
    np.testing.assert_allclose(b, [[0.6, -0.35], [-0.6, 0.35], [0.6, -0.35]], rtol=1e-6)
    dw = np.random.default_rng(0).normal(size=(3, 3, 4, 2)).astype(np.float32)  # depthwise: 8 output channels
    q = ternarize(dw, (0, 1))
    assert all(len(np.unique(q[:, :, c, m])) <= 3 for c in range(4) for m in range(2))
    assert len(np.unique(q)) > 3  # each channel its own a


@pytest.mark.parametrize("name, levels", [("ternary", 3), ("binary", 2)])
def test_sign_stages_train_through_their_values(tfk, data, name, levels):
    """The straight-through estimator: the loss falls while every constrained kernel keeps its few values."""
    model = _model(tfk)
    before = model.get_layer("fc").get_weights()[0].copy()
    out, rows = compress.run(model, _stages(f"{name}:epochs=3"), _ctx(data))
    row = rows[-1]
    assert row["constrained_layers"] == ["fc"]  # conv (first) and out (last) stay int8: keep_ends
    w = out.get_layer("fc").get_weights()[0]
    assert max(len(np.unique(w[:, c])) for c in range(w.shape[1])) <= levels
    from edgec.compress.ternary import binarize, ternarize

    untrained = ternarize(before, (0,)) if name == "ternary" else binarize(before, (0,))
    assert not np.allclose(w, untrained)  # the steps reached the float weights behind the values
    assert len(np.unique(out.get_layer("conv").get_weights()[0])) > 3
    assert (row["zero_fraction"] > 0.2) == (name == "ternary")


def test_sign_stages_keep_their_order(tfk, data):
    with pytest.raises(ConfigError, match="undo 'ternary'"):
        _stages("ternary", "qat")
    with pytest.raises(ConfigError, match="after 'binary' would undo it"):
        _stages("binary", "channels")
    with pytest.raises(ConfigError, match="no layer matches"):
        compress.run(_model(tfk), _stages("ternary:include=nothing"), _ctx(data))
