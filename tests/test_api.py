"""The Python facade (edgec.api): the command line's build and check on objects in memory."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from conftest import SAMPLE, run_cli
from edgec import frameworks
from edgec.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def trained():
    k3 = frameworks.keras3()
    k3.utils.set_random_seed(0)
    model = k3.Sequential([k3.Input((8,)), k3.layers.Dense(16, activation="relu"),
                           k3.layers.Dense(3, activation="softmax")], name="notebook")
    x = np.random.default_rng(0).normal(size=(120, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=8, verbose=0)
    return model, x, y


def test_build_an_in_memory_keras3_model_writes_nothing_until_write(trained, tmp_path, monkeypatch):
    import edgec

    model, x, y = trained
    monkeypatch.chdir(tmp_path)
    result = edgec.build(model, (x, y), target="cortex-m4", budgets={"ram": "96KiB"})
    assert os.listdir(tmp_path) == []  # nothing written
    assert result.ok and result.tflite_bytes[4:8] == b"TFL3"
    assert {b["name"] for b in result.budgets} == {"flash", "ram", "latency", "accuracy_drop"}
    assert result.verification["top1_agreement"] >= 0.9 and result.verification["accuracy_samples"] == 24
    paths = result.write(tmp_path / "out")
    assert sorted(paths) == sorted(["notebook.tflite", "notebook_model_data.h", "notebook_model_data.c",
                                    "notebook_model_settings.h", "report.json", "report.html"])
    assert (tmp_path / "out" / "notebook.tflite").read_bytes() == result.tflite_bytes
    assert json.loads((tmp_path / "out" / "report.json").read_text())["artifacts"] == paths


def test_the_facade_and_the_command_line_give_the_same_model(trained, tmp_path):
    """One pipeline behind both: the same model and data give byte-identical flatbuffers."""
    import edgec

    model, x, y = trained
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "d.npz", x=x, y=y)
    proc = run_cli("build", str(tmp_path / "m.keras"), "-t", "cortex-m4", "-d", str(tmp_path / "d.npz"),
                   "-o", str(tmp_path / "cli"), "--name", "notebook", "-q")
    assert proc.returncode == 0, proc.stderr
    from_python = edgec.build(model, {"x": x, "y": y}, target="cortex-m4")
    assert from_python.tflite_bytes == (tmp_path / "cli" / "notebook.tflite").read_bytes()
    from_path = edgec.build(str(tmp_path / "m.keras"), str(tmp_path / "d.npz"), target="cortex-m4", name="notebook")
    assert from_path.tflite_bytes == from_python.tflite_bytes


def test_check_and_inspect_take_bytes_or_a_path(tmp_path):
    from edgec import api

    built = api.build(str(SAMPLE / "digits.keras"), str(SAMPLE / "digits.npz"), target="cortex-m4")
    path = tmp_path / "digits.tflite"
    path.write_bytes(built.tflite_bytes)
    by_path, by_bytes = api.check(path, "cortex-m4"), api.check(built.tflite_bytes, "cortex-m4")
    assert by_path.measurements["arena_bytes"] == by_bytes.measurements["arena_bytes"] == \
        built.measurements["arena_bytes"] > 0
    assert {row["op"] for row in api.inspect(path).ops} >= {"CONV_2D", "FULLY_CONNECTED"}
    failing = api.check(path, "cortex-m4", budgets={"ram": "1KiB"})
    assert not failing.ok and failing.exit_code == 1


def test_facade_errors_are_edgec_errors_with_the_command_lines_message(trained):
    import edgec

    model, x, _ = trained
    with pytest.raises(DataError, match="shape"):
        edgec.build(model, x[:, :5], target="cortex-m4")
    with pytest.raises(ConfigError, match="Keras 3 or tf_keras Model"):
        edgec.build(object(), x, target="cortex-m4")
    with pytest.raises(ConfigError, match="unknown budget|budget"):
        edgec.build(model, x, target="cortex-m4", budgets={"bogus": "1"})


def test_build_with_out_writes_at_the_end_and_refuses_a_bad_folder_before_any_work(trained, tmp_path):
    from edgec import api

    model, x, y = trained
    (tmp_path / "a_file").write_text("")
    with pytest.raises(api.OutputError, match="a_file"):
        api.build(model, (x, y), target="cortex-m4", out=tmp_path / "a_file")
    result = api.build(model, (x, y), target="cortex-m4", out=tmp_path / "out")
    assert (tmp_path / "out" / "notebook.tflite").read_bytes() == result.tflite_bytes
    assert json.loads((tmp_path / "out" / "report.json").read_text())["budgets"] == result.budgets


def test_emit_c_stages_and_targets_from_python(trained, tmp_path):
    """The facade functions behind ``edgec emit-c``, ``edgec stages`` and ``edgec targets``."""
    from edgec import api

    model, x, y = trained
    path = tmp_path / "notebook.tflite"
    path.write_bytes(api.build(model, (x, y), target="cortex-m4").tflite_bytes)
    emitted = api.emit_c(path, samples=8, mcu=False)
    assert emitted.section["host"]["bit_exact"] and emitted.section["host"]["samples"] == 8
    assert {"notebook_infer.c", "notebook_infer.h"} <= set(emitted.files)
    assert os.listdir(tmp_path) == ["notebook.tflite"]  # in memory until written
    assert sorted(emitted.write(tmp_path / "c")) == sorted(emitted.files)
    assert "prune" in api.stages() and "sparsity" in api.stages()["prune"]["parameters"]
    assert {"cortex-m4", "mobile"} <= {t.name for t in api.targets()}
