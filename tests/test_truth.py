"""What edgec reports must be true: task kinds, TFLite-Micro vs LiteRT, statistics, schedules,
exit codes, and files other tools made (issue 21)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SAMPLE, assert_one_line_error, repacked_tflite, run_cli


def _convert(model, x):
    from edgec.convert.int8 import convert_int8
    from edgec.load.tflite_file import read_tflite

    data = convert_int8(model, x)
    return data, read_tflite(data)


def _dense_autoencoder(tfk, width=64, hidden=32, depth=2, seed=0):
    """A small MLPerf-Tiny-AD-shaped network: Dense + BatchNorm + ReLU down to a code and back."""
    tfk.utils.set_random_seed(seed)
    inp = tfk.Input((width,))
    x = inp
    for n in [hidden] * depth + [8] + [hidden] * depth:
        x = tfk.layers.Dense(n)(x)
        x = tfk.layers.BatchNormalization()(x)
        x = tfk.layers.ReLU()(x)
    model = tfk.Model(inp, tfk.layers.Dense(width)(x))
    x = np.random.default_rng(seed).normal(size=(150, width)).astype(np.float32)
    model.compile("adam", "mse")
    model.fit(x, x, epochs=1, verbose=0)
    return model, x


@pytest.fixture(scope="module")
def dense_ae(tfk):
    model, x = _dense_autoencoder(tfk)
    data, tfl = _convert(model, x[:100])
    return model, x, data, tfl


def test_dense_autoencoder_is_judged_as_reconstruction_not_top1(dense_ae):
    from edgec.check.verification import verify

    model, x, data, tfl = dense_ae
    v = verify(model, data, tfl, x[100:], None, micro_samples=10)
    assert v["task"] == "reconstruction" and "input's shape" in v["task_reason"]
    assert "top1_agreement" not in v
    assert v["output_snr_db"] > 10 and 0.9 < v["output_cosine_mean"] <= 1
    assert v["anomaly_score_rank_correlation"] > 0.9
    assert v["output_error_steps_max"] >= v["output_error_steps_rmse"] >= 0


def test_conv_autoencoder_is_judged_as_reconstruction(tfk):
    from edgec.check.verification import verify

    tfk.utils.set_random_seed(3)
    inp = tfk.Input((8, 8, 1))
    x = tfk.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = tfk.layers.MaxPooling2D(2)(x)
    x = tfk.layers.UpSampling2D(2)(x)
    out = tfk.layers.Conv2D(1, 3, padding="same")(x)
    model = tfk.Model(inp, out)
    xs = np.random.default_rng(3).uniform(0, 1, (80, 8, 8, 1)).astype(np.float32)
    data, tfl = _convert(model, xs[:40])
    v = verify(model, data, tfl, xs[40:], None, micro_samples=5)
    assert v["task"] == "reconstruction"
    assert "top1_agreement" not in v and "anomaly_score_rank_correlation" in v
    # the same model forced to be judged as something else is judged so
    assert verify(model, data, tfl, xs[40:], None, micro_samples=0, task="other")["task"] == "other"


def test_task_inference():
    from edgec.check.verification import infer_task
    from edgec.load.tflite_file import Op, Tensor, TFLiteModel

    def model(out_shape, head):
        t = [Tensor(0, "in", (1, 4), "int8", (0.1,), (0,), False),
             Tensor(1, "out", out_shape, "int8", (0.1,), (0,), False)]
        return TFLiteModel(0, tuple(t), (Op(0, head, (0,), (1,), 0, 0, {}),), (0,), (1,))

    assert infer_task(model((1, 3), "SOFTMAX"), None)[0] == "classifier"
    assert infer_task(model((1, 1), "LOGISTIC"), None)[0] == "classifier"
    assert infer_task(model((1, 3), "FULLY_CONNECTED"), np.array([0, 2, 1]))[0] == "classifier"
    assert infer_task(model((1, 4), "FULLY_CONNECTED"), None)[0] == "reconstruction"
    assert infer_task(model((1, 2), "FULLY_CONNECTED"), np.zeros((3, 2), np.float32))[0] == "regression"
    assert infer_task(model((1, 2), "FULLY_CONNECTED"), None)[0] == "other"
    assert infer_task(model((1, 3), "SOFTMAX"), None, "regression") == ("regression", "set with --task")


def test_micro_litert_difference_over_one_lsb_warns_naming_the_first_op(dense_ae):
    """A per-channel FULLY_CONNECTED chain: TFLite-Micro and LiteRT's reference kernels round some
    products differently (measured: 2 LSB at the output, 1 LSB at the first FC)."""
    from edgec.check.verification import verify

    model, x, data, tfl = dense_ae
    v = verify(model, data, tfl, x[100:], None, micro_samples=50)
    assert v["micro_vs_litert_max_lsb"] > 1
    where = v["micro_vs_litert_first_op"]
    assert where["op"] == "FULLY_CONNECTED" and where["max_lsb"] >= 1 and where["elements"] > 0
    warning = next(w for w in v["warnings"] if "TFLite-Micro and LiteRT" in w)
    assert "first part at FULLY_CONNECTED" in warning and f"op #{where['op_index']}" in warning


def test_first_divergence_finds_the_op_whose_output_differs(dense_ae):
    """The op reported is the first in execution order whose output differs between the runtimes."""
    from edgec.check.verification import first_divergence
    from edgec.load.tflite_file import quantize, with_every_op_output
    from edgec.runtime import litert, micro

    _, x, data, tfl = dense_ae
    xq = quantize(x[100:], tfl.input)
    worst = int(np.abs(micro.run(data, xq).astype(int) - litert.run(data, xq)).max(axis=1).argmax())
    where = first_divergence(data, tfl, xq[worst])
    every, writers = with_every_op_output(data, tfl)
    a, b = micro.run_all_outputs(every, xq[worst]), litert.run_all_outputs(every, xq[worst])
    differing = [w for w, u, v in zip(writers, a, b) if w >= 0 and np.any(u != v)]
    assert differing and where["op_index"] == min(differing)


def test_accuracy_budget_on_40_samples_warns_with_the_interval(tmp_path, tfk):
    from edgec.config import BuildConfig
    from edgec.pipeline import build

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    tfk.utils.set_random_seed(0)
    inp = tfk.Input((8,))
    model = tfk.Model(inp, tfk.layers.Dense(2, activation="softmax")(tfk.layers.Dense(8, activation="relu")(inp)))
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "d.npz", x_train=x[:160], y_train=y[:160], x_val=x[160:], y_val=y[160:])
    cfg = dict(model=str(tmp_path / "m.keras"), data=str(tmp_path / "d.npz"), target="cortex-m4",
               out=str(tmp_path / "out"), budgets={"accuracy_drop": "1%"})
    report = build(BuildConfig.from_dict(cfg), progress=False)
    v = report.verification
    assert v["accuracy_samples"] == 40
    lo, hi = v["accuracy_drop_ci95"]
    assert lo < v["accuracy_drop"] <= hi and hi - lo > 0.02
    warning = next(w for w in report.warnings if "accuracy_drop budget" in w)
    assert "40 validation samples" in warning and "95 % interval" in warning and "samples would resolve" in warning

    # --strict: refused before any work, naming how many samples would resolve it
    from edgec.errors import ConfigError

    with pytest.raises(ConfigError, match="at least .* validation samples"):
        build(BuildConfig.from_dict({**cfg, "strict": True, "out": str(tmp_path / "strict")}), progress=False)
    assert not (tmp_path / "strict").exists()


def test_drop_interval_is_wide_without_discordance_and_narrows_with_samples():
    from edgec.check.verification import paired_drop_interval, samples_to_resolve, wilson_interval

    same = paired_drop_interval(np.ones(40, bool), np.ones(40, bool))
    assert same["drop"] == 0 and same["half_width"] > 0.04  # 40 samples cannot tell 1 % apart
    big = paired_drop_interval(np.ones(4000, bool), np.ones(4000, bool))
    assert big["half_width"] < 0.001
    assert samples_to_resolve(0.01, 0, 40) >= 196
    lo, hi = wilson_interval(40, 40)
    assert hi == 1.0 and 0.9 < lo < 0.95  # 40 of 40 right is not "100 % for sure"


def test_prune_schedule_that_never_updates_is_refused_before_training(tmp_path):
    """200 samples, 2 epochs of 5 steps: TFMOT's frequency 10 would update the masks only at step 0."""
    from edgec.compress.prune import Prune
    from edgec.errors import ConfigError

    with pytest.raises(ConfigError, match=r"last update \(step 0\) sets 0 % sparsity.*frequency="):
        Prune({"sparsity": 0.5, "frequency": 10}).schedule_steps(steps_per_epoch=5, epochs=2)
    with pytest.raises(ConfigError, match="ends .* before it begins"):
        Prune({"sparsity": 0.5, "begin": 4, "end": 2, "unit": "steps"}).schedule_steps(5, 2)
    with pytest.raises(ConfigError, match="begins at step 20 but the fine-tuning has only 10 steps"):
        Prune({"sparsity": 0.5, "begin": 20, "unit": "steps"}).schedule_steps(5, 2)
    # the default frequency adapts to a short schedule, and stays TFMOT's 10 on a long one
    assert Prune({"sparsity": 0.5}).schedule_steps(5, 2)["frequency"] == 1
    assert Prune({"sparsity": 0.5}).schedule_steps(100, 20)["frequency"] == 10


def test_prune_on_200_samples_reaches_its_sparsity(tmp_path, tfk):
    tfk.utils.set_random_seed(0)
    inp = tfk.Input((16,))
    model = tfk.Model(inp, tfk.layers.Dense(3, activation="softmax", name="head")(
        tfk.layers.Dense(32, activation="relu", name="hidden")(inp)))
    model.save(tmp_path / "m.keras")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(200, 16)).astype(np.float32), y=rng.integers(0, 3, 200))
    proc = run_cli("build", str(tmp_path / "m.keras"), "-t", "cortex-m4", "-d", str(tmp_path / "d.npz"),
                   "-o", str(tmp_path / "out"), "--stage", "prune:sparsity=0.5", "--json", "-q",
                   "--budget", "accuracy_drop=100%")
    assert proc.returncode == 0, proc.stderr
    row = next(r for r in json.loads(proc.stdout)["stages"] if r["name"] == "prune")
    assert row["kernel_sparsity_reached"] >= 0.45
    assert row["schedule_steps"]["frequency"] == 1
    refused = run_cli("build", str(tmp_path / "m.keras"), "-t", "cortex-m4", "-d", str(tmp_path / "d.npz"),
                      "-o", str(tmp_path / "out2"), "--stage", "prune:sparsity=0.5,frequency=10")
    assert_one_line_error(refused, 2, "prune", "frequency=")
    assert not (tmp_path / "out2").exists()


def test_prune_result_short_of_its_target_fails_the_build():
    from edgec.compress.prune import Prune
    from edgec.errors import ConfigError

    class _Layer:
        def __init__(self, name, w):
            self.name, self.weights = name, [w]

    class _W:
        def __init__(self, v):
            self.name, self.v = "hidden/kernel:0", v

        def numpy(self):
            return self.v

    class _Model:
        layers = [_Layer("hidden", _W(np.ones((4, 4), np.float32)))]

    stage = Prune({"sparsity": 0.5})
    stage.extra = {"pruned_layers": ["hidden"]}
    with pytest.raises(ConfigError, match=r"reached 0.0 % sparsity .* 50 % asked for"):
        stage.check_result(_Model())
    _Model.layers[0].weights[0].v[:2] = 0
    stage.check_result(_Model())  # 50 %: passes
    assert stage.extra["kernel_sparsity_reached"] == 0.5


def test_an_internal_error_exits_3_with_one_line(monkeypatch, capsys):
    from edgec import cli
    from edgec.check import gate as check

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(check, "check", broken)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["check", str(SAMPLE / "digits.keras"), "--target", "cortex-m4"])
    assert exit_info.value.code == 3
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err
    assert "internal error (a bug in edgec" in lines[0] and "ZeroDivisionError" in lines[0]
    with pytest.raises(SystemExit):
        cli.main(["check", str(SAMPLE / "digits.keras"), "--target", "cortex-m4", "--verbose"])
    assert "Traceback" in capsys.readouterr().err  # --verbose shows where


def test_third_party_file_messages_name_its_tool_not_edgec_build(tiny_tflite, tmp_path):
    """A corrupt file edgec did not make: the fix names the tool the file says wrote it."""
    def describe(m):
        m.description = b"SomeVendorTool 4.2"
        m.subgraphs[0].tensors[0].shape = [-3, 2]  # corrupt: a negative dimension

    path = tmp_path / "vendor.tflite"
    path.write_bytes(repacked_tflite(tiny_tflite, describe))
    proc = run_cli("check", str(path), "--target", "cortex-m4")
    assert_one_line_error(proc, 2, "SomeVendorTool 4.2", "regenerate it with the tool that wrote it")
    assert "edgec build" not in proc.stderr


def test_per_channel_vector_with_its_weights_quantized_dimension_is_accepted(tiny_tflite, tmp_path):
    """TFLM's person_detect.tflite has biases with 8 scales, shape [8] and quantized_dimension 3;
    TFLite-Micro runs it, so check must too."""
    from edgec.load.tflite_file import read_tflite

    tfl = read_tflite(tiny_tflite)
    conv = next(op for op in tfl.ops if op.name == "CONV_2D")
    bias = conv.inputs[2]
    assert len(tfl.tensors[bias].scales) > 1 and len(tfl.tensors[bias].shape) == 1

    def edit(m):
        m.subgraphs[0].tensors[bias].quantization.quantizedDimension = 3

    path = tmp_path / "qdim.tflite"
    path.write_bytes(repacked_tflite(tiny_tflite, edit))
    proc = run_cli("check", str(path), "--target", "cortex-m4", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    # LiteRT refuses this file; a Cortex-M4 does not need it: a warning, and no host latency
    assert any("LiteRT interpreter refused" in w and "only the host latency" in w for w in report["warnings"])
    assert "host_latency_ms" not in report["measurements"] and report["measurements"]["arena_bytes"] > 0
    assert run_cli("check", str(path), "--target", "mobile").returncode == 2  # a phone runs LiteRT

    def wrong_count(m):
        q = m.subgraphs[0].tensors[bias].quantization
        q.scale, q.zeroPoint = [0.1, 0.2], [0, 0]

    path.write_bytes(repacked_tflite(tiny_tflite, wrong_count))
    assert_one_line_error(run_cli("check", str(path), "--target", "cortex-m4"), 2, "per-channel scales")


def test_float_tflite_on_an_mcu_target_is_flagged(tmp_path, tfk):
    import tensorflow as tf

    inp = tfk.Input((4,))
    model = tfk.Model(inp, tfk.layers.Dense(2)(inp))
    path = tmp_path / "float.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    proc = run_cli("check", str(path), "--target", "cortex-m4", "--json")
    assert proc.returncode == 0, proc.stderr
    warnings = json.loads(proc.stdout)["warnings"]
    assert any("is float, not full-integer int8" in w for w in warnings), warnings


def test_build_without_a_model_names_the_argument():
    proc = run_cli("build", "--target", "cortex-m4", "--data", "random")
    assert_one_line_error(proc, 2, "MODEL (the first argument)")
    assert "--model" not in proc.stderr


def test_small_quantities_keep_their_digits():
    from edgec.units import format_quantity as quantity

    assert quantity(0.0234, "ms") == "0.0234 ms"
    assert quantity(7.333, "ms") == "7.33 ms"
    assert quantity(181.84, "ms") == "181.8 ms"


def test_summary_explains_the_arena_and_an_unrun_micro(sample_build):
    from edgec.report.text import render

    out, proc = sample_build
    report = json.loads(proc.stdout)
    a = report["measurements"]["arena"]
    text = render(report)
    assert f"head {a['head_bytes']:,} (activations) + tail {a['tail_bytes']:,}" in text
    report["verification"]["micro_vs_litert_max_lsb"] = None
    report["measurements"]["arena_bytes"] += 100
    text = render(report)
    assert "None LSB" not in text and "TFLite-Micro not run" in text
    assert "+ 100 needed only while allocating" in text


def test_floor_budget_fails_below_its_limit():
    from edgec.check import budgets, targets

    t = targets.get("cortex-m4")
    rows = budgets.judge({"flash_bytes": 1, "ram_bytes": 1, "latency_ms": 1}, t, {"output_snr_db": 30.0},
                            verification={"output_snr_db": 20.0, "output_error_steps_max": 3})
    snr = next(b for b in rows if b["name"] == "output_snr_db")
    assert not snr["ok"] and snr["kind"] == "floor"
    assert "is below 30.0 dB by 10.0 dB" in budgets.failures(rows)[0]
    rows = budgets.judge({"flash_bytes": 1}, t, {"output_snr_db": 10.0, "max_error_steps": 2.0},
                            verification={"output_snr_db": 20.0, "output_error_steps_max": 3})
    assert [b["ok"] for b in rows if b["name"] in ("output_snr_db", "max_error_steps")] == [True, False]


def test_check_refuses_budgets_that_need_the_float_model(tiny_tflite, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(tiny_tflite)
    proc = run_cli("check", str(path), "--target", "cortex-m4", "--budget", "output_snr_db=30dB")
    assert_one_line_error(proc, 2, "output_snr_db cannot be checked", "edgec build")


def test_the_sandbox_unpickler_takes_no_dotted_names():
    """Hole 12 of issue 28: a dotted name walks from an allowed class to anything (eval, os.system)."""
    import io
    import pickle

    from edgec.runtime import sandbox

    def stack_global(module: str, name: str) -> bytes:
        enc = lambda s: b"\x8c" + bytes([len(s)]) + s.encode()  # noqa: E731 SHORT_BINUNICODE
        return b"\x80\x04" + enc(module) + enc(name) + b"\x93."

    for module, name in [("edgec.errors", "EdgecError.__init__.__globals__"), ("edgec.errors", "ConfigError.mro"),
                         ("numpy", "ndarray.__class__"), ("edgec.errors", "dataclasses")]:
        with pytest.raises(pickle.UnpicklingError):
            sandbox._Unpickler(io.BytesIO(stack_global(module, name))).load()
    ok = sandbox._Unpickler(io.BytesIO(stack_global("edgec.errors", "ConfigError"))).load()
    assert ok.__name__ == "ConfigError"


def _svdf_chain(n_svdf: int = 2, units: int = 32, memory: int = 32, width: int = 32, seed: int = 0) -> bytes:
    """A full-int8 chain of SVDF ops (like TFLite-Micro's keyword_scrambled_8bit.tflite), written with
    the flatbuffers object API: TFLite-Micro runs it; LiteRT's SVDF kernel crashes on it."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    rng = np.random.default_rng(seed)
    m, g = s.ModelT(), s.SubGraphT()
    m.version, m.buffers, g.tensors, g.operators = 3, [s.BufferT()], [], []
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.SVDF
    code.version = 3
    m.operatorCodes = [code]

    def tensor(shape, ttype, scale, zp, data=None, variable=False):
        t, q = s.TensorT(), s.QuantizationParametersT()
        t.shape, t.type, t.isVariable, t.name, t.buffer = list(shape), ttype, variable, f"t{len(g.tensors)}", 0
        q.scale, q.zeroPoint = [scale], [zp]
        t.quantization = q
        if data is not None:
            buf = s.BufferT()
            buf.data = np.frombuffer(data.tobytes(), np.uint8)
            m.buffers.append(buf)
            t.buffer = len(m.buffers) - 1
        g.tensors.append(t)
        return len(g.tensors) - 1

    cur = tensor((1, width), s.TensorType.INT8, 0.05, 0)
    g.inputs, w = [cur], width
    for _ in range(n_svdf):
        wf = tensor((units, w), s.TensorType.INT8, 0.01, 0, rng.integers(-127, 128, (units, w)).astype(np.int8))
        wt = tensor((units, memory), s.TensorType.INT8, 0.01, 0,
                    rng.integers(-127, 128, (units, memory)).astype(np.int8))
        bias = tensor((units,), s.TensorType.INT32, 0.001, 0, rng.integers(-100, 100, units).astype(np.int32))
        state = tensor((1, units * memory), s.TensorType.INT8, 0.1, int(rng.integers(-50, 50)), variable=True)
        out = tensor((1, units), s.TensorType.INT8, 0.2, -128)
        op, opts = s.OperatorT(), s.SVDFOptionsT()
        opts.rank, opts.fusedActivationFunction = 1, s.ActivationFunctionType.RELU
        op.opcodeIndex, op.inputs, op.outputs = 0, [cur, wf, wt, bias, state], [out]
        op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.SVDFOptions, opts
        g.operators.append(op)
        cur, w = out, units
    g.outputs, m.subgraphs = [cur], [g]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_a_file_tflm_runs_and_litert_crashes_on_passes_an_mcu_check(tmp_path):
    from edgec.runtime import micro

    path = tmp_path / "svdf.tflite"
    path.write_bytes(_svdf_chain())
    assert micro.run(path.read_bytes(), np.zeros((2, 32), np.int8), litert_verify=False).shape == (2, 32)
    proc = run_cli("check", str(path), "--target", "cortex-m4", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert any("LiteRT crashed on this file" in w for w in report["warnings"]), report["warnings"]
    assert report["measurements"]["arena_bytes"] > 0 and "host_latency_ms" not in report["measurements"]
    assert_one_line_error(run_cli("check", str(path), "--target", "mobile"), 2, "LiteRT crashed")
