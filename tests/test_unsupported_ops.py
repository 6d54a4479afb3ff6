"""An op the target's runtime cannot run is named with the layer it came from."""

from __future__ import annotations

import json

import pytest

from conftest import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def tile_model(tmp_path_factory, tfk):
    """A model whose Lambda layer becomes TILE, an int8 op LiteRT runs and TFLite-Micro lacks."""
    inp = tfk.Input((4, 4, 3))
    x = tfk.layers.Conv2D(4, 1, name="conv")(inp)
    x = tfk.layers.Lambda(lambda t: __import__("tensorflow").tile(t, [1, 2, 1, 1]), name="repeat_rows")(x)
    x = tfk.layers.Conv2D(2, 1, name="head")(x)
    path = tmp_path_factory.mktemp("tile") / "tile.keras"
    tfk.Model(inp, x).save(path)
    return path


def test_mcu_build_names_the_missing_op_and_layer(tile_model, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("build", str(tile_model), "--target", "cortex-m4", "--data", "random",
                   "--out", str(out), "--allow-custom-code")
    assert_one_line_error(proc, 2, "TFLite-Micro", "layer 'repeat_rows'", "TILE", "no kernel")
    assert not out.exists()


def test_mobile_build_of_the_same_model_passes_with_a_warning(tile_model, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("build", str(tile_model), "--target", "mobile", "--data", "random",
                   "--out", str(out), "--allow-custom-code", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["measurements"]["arena_bytes"] is None
    assert any("TILE" in w and "repeat_rows" in w for w in report["warnings"])
    settings = next(out.glob("*_model_settings.h")).read_text()
    assert "TENSOR_ARENA_SIZE is not defined" in settings


def test_check_names_the_op_position(tile_model, tmp_path):
    out = tmp_path / "out"
    assert run_cli("build", str(tile_model), "--target", "mobile", "--data", "random", "--out", str(out),
                   "--allow-custom-code", "-q").returncode == 0
    proc = run_cli("check", str(out / "tile.tflite"), "--target", "cortex-m7")
    assert_one_line_error(proc, 2, "TFLite-Micro", "op TILE", "op #1", "no kernel")


def test_check_on_mobile_passes_with_the_warning_build_gives(tile_model, tmp_path):
    """`edgec check --target mobile` judges what `edgec build --target mobile` judged: LiteRT runs TILE."""
    out = tmp_path / "out"
    assert run_cli("build", str(tile_model), "--target", "mobile", "--data", "random", "--out", str(out),
                   "--allow-custom-code", "-q").returncode == 0
    proc = run_cli("check", str(out / "tile.tflite"), "--target", "mobile", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["measurements"]["arena_bytes"] is None
    assert any("TILE" in w and "op #1" in w and "runs LiteRT" in w for w in report["warnings"])
    assert {b["name"] for b in report["budgets"]} == {"flash", "latency"}


def test_fit_names_the_layer_too(tile_model, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("build", str(tile_model), "--target", "cortex-m4", "--data", "random", "--out", str(out),
                   "--allow-custom-code", "--fit", "--budget", "ram=1MiB")
    assert_one_line_error(proc, 2, "TFLite-Micro", "layer 'repeat_rows'", "TILE", "no kernel")
    assert not out.exists()


def test_ethos_u_target_refuses_an_op_tflite_micro_lacks(tile_model, tmp_path):
    """The CPU of an Ethos-U target runs TFLite-Micro: TILE is a one-line refusal naming the op and its
    layer (it used to be waved through as "runs LiteRT", then crash in Vela's arena code with exit 1)."""
    out = tmp_path / "out"
    proc = run_cli("build", str(tile_model), "--target", "cortex-m55-ethos-u55", "--data", "random",
                   "--out", str(out), "--allow-custom-code")
    assert_one_line_error(proc, 2, "TFLite-Micro", "layer 'repeat_rows'", "TILE")
    assert not out.exists()
    assert run_cli("build", str(tile_model), "--target", "mobile", "--data", "random", "--out", str(out),
                   "--allow-custom-code", "-q").returncode == 0
    proc = run_cli("check", str(out / "tile.tflite"), "--target", "cortex-m55-ethos-u55")
    assert_one_line_error(proc, 2, "TFLite-Micro", "op TILE", "op #1")
