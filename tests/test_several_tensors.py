"""Models of several inputs or outputs (issue 20): data by name, calibration by name, each output judged by
its own task kind, a settings-header block per tensor that compiles as C and C++."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from conftest import assert_one_line_error, have, run_cli
from edgec import frameworks

needs_cc = pytest.mark.skipif(not have("gcc", "g++"), reason="gcc/g++ missing: run `make system-deps`")


@pytest.fixture(scope="module")
def fusion(tmp_path_factory):
    """A Keras 3 sensor-fusion model: inputs 'audio' (8 values, about +-100) and 'imu' (3 values, about
    +-1); outputs 'cls' (3-way softmax) and 'box' (2 regression values); trained a few steps."""
    k3 = frameworks.keras3()
    k3.utils.set_random_seed(0)
    audio, imu = k3.Input((8,), name="audio"), k3.Input((3,), name="imu")
    h = k3.layers.Concatenate()([k3.layers.Dense(8, activation="relu")(k3.layers.Rescaling(0.01)(audio)),
                                 k3.layers.Dense(4, activation="relu")(imu)])
    model = k3.Model([audio, imu], [k3.layers.Dense(3, activation="softmax", name="cls")(h),
                                    k3.layers.Dense(2, name="box")(h)])
    rng = np.random.default_rng(0)
    x_audio = rng.uniform(-100, 100, (120, 8)).astype(np.float32)
    x_imu = rng.uniform(-1, 1, (120, 3)).astype(np.float32)
    y_cls = (x_audio[:, 0] > 0).astype(int) + (x_imu[:, 0] > 0.5).astype(int)
    y_box = np.stack([x_imu[:, 1], x_audio[:, 1] / 100], axis=1).astype(np.float32)
    model.compile("adam", ["sparse_categorical_crossentropy", "mse"])
    model.fit({"audio": x_audio, "imu": x_imu}, [y_cls, y_box], epochs=5, verbose=0)
    folder = tmp_path_factory.mktemp("fusion")
    model.save(folder / "fusion.keras")
    # the keys in another order than the model's inputs: edgec goes by name, never by position
    np.savez(folder / "d.npz", y_box=y_box, x_imu=x_imu, y_cls=y_cls, x_audio=x_audio)
    proc = run_cli("build", str(folder / "fusion.keras"), "-t", "cortex-m4", "-d", str(folder / "d.npz"),
                   "-o", str(folder / "out"), "--json", "-q", "--budget", "accuracy_drop=100%")
    assert proc.returncode == 0, proc.stderr
    return folder, json.loads(proc.stdout)


def test_each_output_is_judged_by_its_own_kind_and_the_worst_meets_the_budgets(fusion):
    _, report = fusion
    v = report["verification"]
    assert v["outputs"]["cls"]["task"] == "classifier" and v["outputs"]["box"]["task"] == "regression"
    assert "top1_agreement" in v["outputs"]["cls"] and "top1_agreement" not in v["outputs"]["box"]
    assert v["outputs"]["cls"]["top1_agreement"] >= 0.9 and v["outputs"]["box"]["output_snr_db"] > 15, v
    assert v["micro_samples"] > 0 and v["micro_vs_litert_max_lsb"] <= 1  # TFLite-Micro ran both inputs
    worst = v["worst_output"]["output_error_steps_max"]
    assert v["output_error_steps_max"] == v["outputs"][worst]["output_error_steps_max"] == max(
        o["output_error_steps_max"] for o in v["outputs"].values())
    assert {b["name"] for b in report["budgets"]} >= {"flash", "ram", "accuracy_drop"}
    assert report["model"]["inputs"] == {"audio": [8], "imu": [3]}


def test_calibration_feeds_each_input_by_name(fusion):
    """audio spans +-100 and imu +-1: fed by position the wrong way round, their scales would swap."""
    folder, _ = fusion
    header = (folder / "out" / "fusion_model_settings.h").read_text()
    scale = {name: float(header.split(f"#define FUSION_INPUT_{name}_SCALE ")[1].split("f")[0])
             for name in ("AUDIO", "IMU")}
    assert 200 / 255 * 0.9 < scale["AUDIO"] < 200 / 255 * 1.1 and 2 / 255 * 0.9 < scale["IMU"] < 2 / 255 * 1.1


@needs_cc
@pytest.mark.parametrize("lang", ["c", "c++"])
def test_the_header_has_a_block_per_tensor_by_name_that_compiles(fusion, tmp_path, lang):
    folder, _ = fusion
    main = tmp_path / ("main.c" if lang == "c" else "main.cpp")
    main.write_text("""#include <stdio.h>
#include "fusion_model_settings.h"
int main(void) {
  int audio[] = FUSION_INPUT_AUDIO_SHAPE_INIT;
  printf("%d %d %d %d %d %d %d %d\\n", FUSION_INPUTS, FUSION_OUTPUTS, FUSION_INPUT_AUDIO_INDEX,
         FUSION_INPUT_IMU_INDEX, audio[1], FUSION_INPUT_IMU_SIZE, FUSION_OUTPUT_CLS_SIZE, FUSION_OUTPUT_BOX_SIZE);
  return FUSION_OUTPUT_CLS_IS_INT8 == 1 && FUSION_OUTPUT_BOX_ZERO_POINT >= -128 ? 0 : 1;
}
""")
    compiler = ["gcc", "-std=c99"] if lang == "c" else ["g++", "-std=c++11"]
    subprocess.run([*compiler, "-Wall", "-Wextra", "-Werror", "-pedantic", str(main), "-I", str(folder / "out"),
                    "-o", str(tmp_path / "prog")], check=True, capture_output=True, text=True)
    out = subprocess.run([str(tmp_path / "prog")], check=True, capture_output=True, text=True).stdout.split()
    assert out == ["2", "2", "0", "1", "8", "3", "3", "2"]


def test_a_stateful_streaming_model_carries_its_state_as_an_input_output_pair(tmp_path):
    """One frame per call, the recurrent state passed back in by the firmware: state_in -> state_out."""
    k3 = frameworks.keras3()
    k3.utils.set_random_seed(1)
    frame, state = k3.Input((6,), name="frame"), k3.Input((8,), name="state_in")
    new_state = k3.layers.Activation("tanh", name="state_out")(
        k3.layers.Add()([k3.layers.Dense(8)(frame), k3.layers.Dense(8, use_bias=False)(state)]))
    model = k3.Model([frame, state], [k3.layers.Dense(2, activation="softmax", name="wake")(new_state), new_state])
    model.save(tmp_path / "stream.keras")
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", x_frame=rng.normal(size=(60, 6)).astype(np.float32),
             x_state_in=rng.uniform(-1, 1, (60, 8)).astype(np.float32))
    proc = run_cli("build", str(tmp_path / "stream.keras"), "-t", "cortex-m4", "-d", str(tmp_path / "d.npz"),
                   "-o", str(tmp_path / "out"), "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    v = json.loads(proc.stdout)["verification"]
    assert set(v["outputs"]) == {"wake", "state_out"} and v["outputs"]["state_out"]["output_snr_db"] > 20, v
    assert v["outputs"]["wake"]["task"] == "classifier"


def test_data_for_several_inputs_is_checked_by_name(fusion, tmp_path):
    folder, _ = fusion
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "half.npz", x_audio=rng.normal(size=(20, 8)).astype(np.float32))
    proc = run_cli("build", str(folder / "fusion.keras"), "-t", "cortex-m4", "-d", str(tmp_path / "half.npz"),
                   "-o", str(tmp_path / "o"))
    assert_one_line_error(proc, 2, "x_audio", "not x_imu", "x_<name>")
    np.savez(tmp_path / "ragged.npz", x_audio=rng.normal(size=(20, 8)).astype(np.float32),
             x_imu=rng.normal(size=(19, 3)).astype(np.float32))
    proc = run_cli("build", str(folder / "fusion.keras"), "-t", "cortex-m4", "-d", str(tmp_path / "ragged.npz"),
                   "-o", str(tmp_path / "o"))
    assert_one_line_error(proc, 2, "different numbers of samples", "x_imu: 19")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("extra, words", [
    (["--stage", "prune"], ("2 inputs and 2 outputs", "without --stage")),
])
def test_what_several_tensors_cannot_go_through_yet_is_one_line(fusion, tmp_path, extra, words):
    folder, _ = fusion
    args = ["build", str(folder / "fusion.keras"), "-t", "cortex-m4", "-d", str(folder / "d.npz"),
            "-o", str(tmp_path / "o"), *extra]
    assert_one_line_error(run_cli(*args), 2, *words)
    assert not (tmp_path / "o").exists()


def test_check_and_inspect_take_a_flatbuffer_of_several_tensors(fusion):
    folder, _ = fusion
    proc = run_cli("check", str(folder / "out" / "fusion.tflite"), "-t", "cortex-m4", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["measurements"]["arena_bytes"] > 0
    assert run_cli("inspect", str(folder / "out" / "fusion.tflite")).returncode == 0


@needs_cc
def test_generated_c_takes_several_inputs_and_outputs(fusion, tmp_path):
    """``--emit c`` on the two-input, two-output model: ``fusion_infer(in0, in1, out0, out1)``, checked
    against TFLite-Micro on probe inputs and validation samples fed by name."""
    folder, _ = fusion
    proc = run_cli("build", str(folder / "fusion.keras"), "-t", "cortex-m4", "-d", str(folder / "d.npz"),
                   "-o", str(tmp_path / "o"), "--emit", "c", "--json", "-q", "--budget", "accuracy_drop=100%")
    assert proc.returncode == 0, proc.stderr
    c = json.loads(proc.stdout)["measurements"]["c"]
    assert c["host"]["bit_exact"] and c["host"]["samples"] > 3
    header = (tmp_path / "o" / "fusion_infer.h").read_text()
    assert "void fusion_infer(const int8_t *in0, const int8_t *in1, int8_t *out0, int8_t *out1);" in header
