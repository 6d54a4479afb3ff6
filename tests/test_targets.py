"""Target profiles: every built-in loads, user profiles extend them, bad ones are one-line errors."""

from __future__ import annotations

import pytest

from conftest import assert_one_line_error, run_cli
from edgec.check import targets
from edgec.errors import TargetError

BUILTIN = ["mobile", "cortex-m0plus", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]


def test_builtin_names():
    assert set(BUILTIN) <= set(targets.names())


@pytest.mark.parametrize("name", targets.names())
def test_every_builtin_profile_is_complete(name):
    t = targets.get(name)
    assert t.name == name and t.description
    assert t.budgets.get("accuracy_drop") is not None and t.budgets.get("latency") is not None
    if t.kind == "mcu":
        assert t.flash_bytes and t.ram_bytes and t.clock_hz
        for lib in ("tflm-reference", "tflm-cmsis-nn"):
            assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD"} <= set(t.instructions[lib])
            assert t.cycles_per_instruction[lib] > 0
        assert set(t.calibrated) <= {"tflm-cmsis-nn"} and t.kernels in ("tflm-cmsis-nn", "c")
    else:
        assert t.phone_macs_per_second


def test_custom_profile_extends_a_builtin(tmp_path):
    path = tmp_path / "board.toml"
    path.write_text('extends = "cortex-m4"\nname = "my-board"\ndescription = "M4 with less RAM"\n'
                    "ram_bytes = 131072\n[budgets]\nlatency = 250.0\n")
    t = targets.get(str(path))
    assert t.name == "my-board" and t.ram_bytes == 131072 and t.budgets["latency"] == 250.0
    base = targets.get("cortex-m4")
    assert t.clock_hz == base.clock_hz and t.instructions == base.instructions
    assert t.budgets["accuracy_drop"] == base.budgets["accuracy_drop"]


@pytest.mark.parametrize("text, words", [
    ('extends = "cortex-m4"\nname = "x"\nram_byts = 1\n', "did you mean 'ram_bytes'"),
    ('extends = "cortex-m4"\nname = "x"\n[budgets]\nlatncy = 1.0\n', "did you mean 'latency'"),
    ('name = "x"\n', "lacks description"),
    ('this is = not toml [', "not valid TOML"),
    ('extends = "cortex-m99"\nname = "x"\n', "unknown target"),
    ('extends = "cortex-m4"\nname = "x"\nkernels = "fast"\n', "kernels must be"),
    ('extends = "cortex-m4"\nname = "x"\nkernels = "optimized"\n', "'optimized' is now called 'tflm-cmsis-nn'"),
    ('extends = "cortex-m4"\nname = "x"\n[cycles.reference]\nconv = 6.7\n', r"\[cycles\.\*\] tables"),
    ('extends = "cortex-m4"\nname = "x"\n[instructions.tflm-reference]\nADD = { per_outptu = 1 }\n',
     "did you mean 'per_output'"),
    ('extends = "cortex-m4"\nname = "x"\nram_bytes = -5\n', "whole number"),
    ('extends = "cortex-m4"\nname = "x"\n[budgets]\nlatency = "fast"\n', "no valid unit"),
    ('extends = "cortex-m4"\nname = "x"\nruntime = "tvm"\n', "runtime 'tvm' is not one of"),
    ('extends = "mobile"\nname = "x"\nruntime = "c"\n', "runtime 'c' needs kind"),
    ('extends = "cortex-m4-c"\nname = "x"\n[cycles_per_instruction]\nc = 0\n', "cycles_per_instruction.c must be"),
])
def test_malformed_profiles(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(TargetError, match=words):
        targets.get(str(path))


def test_self_extending_profile(tmp_path):
    path = tmp_path / "loop.toml"
    path.write_text(f'extends = "{path}"\nname = "loop"\n')
    with pytest.raises(TargetError, match="cycle"):
        targets.get(str(path))


def test_malformed_profile_on_the_cli_is_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('extends = "cortex-m4"\nflsh_bytes = 3\n')
    proc = run_cli("check", str(tmp_path / "m.tflite"), "--target", str(path))
    assert_one_line_error(proc, 2, "flash_bytes")


def test_a_runtime_is_one_registry_entry_that_profiles_name_and_measurements_follow(monkeypatch, tiny_tflite,
                                                                                    tmp_path):
    from edgec.check import runtimes
    from edgec.check.measure import measure
    from edgec.load.tflite_file import read_tflite

    sim = runtimes.Runtime("my-sim", "a cycle simulator", ("mcu",), tflm_ops=False, generated_c=False, npu=False,
                           decodes_lut=False,
                           footprint=lambda m: {"flash_bytes": 1, "ram_bytes": 2, "latency_ms": 3.0})
    profile = tmp_path / "sim.toml"
    profile.write_text('extends = "cortex-m4"\nname = "sim"\nruntime = "my-sim"\n')
    with pytest.raises(TargetError, match="runtime 'my-sim' is not one of"):
        targets.get(str(profile))
    monkeypatch.setitem(runtimes._REGISTRY, sim.name, sim)
    target = targets.get(str(profile))
    assert target.runs_on is sim and not target.needs_tflm_ops and not target.judged_on_c
    m = measure(tiny_tflite, read_tflite(tiny_tflite), target, None, host_latency=False)
    assert (m["flash_bytes"], m["ram_bytes"], m["latency_ms"]) == (1, 2, 3.0)
    assert runtimes.get("tflite-micro").tflm_ops and runtimes.get("litert").kinds == ("mobile",)


def test_runtime_flash_by_parts(tmp_path):
    """The runtime's flash is its framework plus each registered kernel; a kind without a measured size counts
    as the largest kernel and is named; a malformed table is one error naming it."""
    from edgec.errors import TargetError

    t = targets.get("cortex-m4").with_kernels("tflm-reference")
    table = t.runtime_flash["tflm-reference"]
    parts = t.runtime_flash_parts(["CONV_2D", "SOFTMAX", "CONV_2D"])
    assert parts["bytes"] == table["framework"] + table["CONV_2D"] + table["SOFTMAX"]
    largest = max(v for k, v in table.items() if k.isupper())
    assert t.runtime_flash_parts(["LSTM_LIKE"])["bytes"] == table["framework"] + largest
    assert t.runtime_flash_parts(["LSTM_LIKE"])["not_measured"] == ["LSTM_LIKE"]
    # DECODE is not in the measured firmware: its size comes from the profile's decode_flash_bytes
    decode = t.runtime_flash_parts(["CONV_2D", "CUSTOM:TFLM_DECODE"])
    assert decode["kernels"]["CUSTOM:TFLM_DECODE"] == t.decode_flash_bytes != largest
    assert decode["not_measured"] == [] and decode["measured_apart"] == ["CUSTOM:TFLM_DECODE"]
    assert all(targets.get(n).decode_flash_bytes for n in targets.names()
               if targets.get(n).runs_on.decodes_lut)  # every TFLite-Micro core has it
    cmsis = targets.get("cortex-m4").runtime_flash_parts(["CONV_2D"])  # the default library: CMSIS-NN
    assert cmsis["int8_registration_saving"][0] > 0
    assert targets.get("cortex-m0plus").runtime_flash_parts(["CONV_2D"]) is None  # not measured on that core
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "cortex-m4"\nname = "bad"\n[runtime_flash.tflm-reference]\nframework = 1\nconv = 2\n')
    with pytest.raises(TargetError, match="'conv' is neither an op kind"):
        targets.get(str(bad))
