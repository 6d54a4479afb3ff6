"""``--fit`` and the structural stages through the real CLI."""

from __future__ import annotations

import json

from conftest import SAMPLE, assert_one_line_error, run_cli, shared_model

SAMPLE_ARGS = (str(SAMPLE / "digits.keras"), "--target", "cortex-m4", "--data", str(SAMPLE / "digits.npz"))


def test_fit_finds_a_fraction_that_meets_budgets_the_unpruned_model_misses(tmp_path):
    proc = run_cli("build", *SAMPLE_ARGS, "--fit", "--budget", "ram=13KiB", "--budget", "flash=132KiB",
                   "--out", str(tmp_path / "out"), "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    fit = report["fit"]
    unpruned = fit["trials"][0]
    assert unpruned["fraction"] == 0 and not unpruned["ok"]
    assert 0 < fit["fraction"] < 0.9
    # the least aggressive: every trial below the chosen fraction missed a budget
    assert all(not t["ok"] for t in fit["trials"] if t["fraction"] < fit["fraction"])
    budgets = {b["name"]: b for b in report["budgets"]}
    assert budgets["ram"]["ok"] and budgets["flash"]["ok"] and budgets["ram"]["value"] <= 13 * 1024
    assert report["stages"][1]["params"]["fraction"] == fit["fraction"]
    assert report["verification"]["int8_accuracy"] > 0.9  # fine-tuned once, accuracy reported


def test_fit_with_an_impossible_budget_exits_1_naming_it(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("build", *SAMPLE_ARGS, "--fit", "--budget", "ram=8KiB", "--out", str(out), "--quiet")
    assert_one_line_error(proc, 1, "ram", "exceeds 8.0 KiB", "most aggressive")
    assert not out.exists()


def test_fit_needs_channels_first(tmp_path):
    proc = run_cli("build", *SAMPLE_ARGS, "--fit", "--stage", "lowrank", "--stage", "channels",
                   "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, 2, "channels", "first stage")


def test_channels_halves_resnet8(tmp_path):
    """The issue's acceptance on MLPerf Tiny's ResNet-8 (random calibration: sizes only)."""
    model = shared_model("ic_resnet8.h5")
    proc = run_cli("build", str(model), "--target", "cortex-m4", "--data", "random", "--stage",
                   "channels:fraction=0.5,epochs=1", "--out", str(tmp_path / "out"), "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    before = report["stages"][1]["footprint"]["before"]  # the unpruned model, converted the same way
    m = report["measurements"]
    assert report["tflite"]["bytes"] <= 0.55 * before["tflite_bytes"]
    assert m["macs"] <= 0.55 * before["macs"]
    assert m["arena_bytes"] <= 0.7 * before["arena_bytes"]
    assert report["verification"]["micro_samples"] > 0  # it ran in TFLite-Micro
    assert [g["after"] for g in report["stages"][1]["channels"]] == [8, 8, 16, 16, 32, 32]
