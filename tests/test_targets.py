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
        for lib in ("reference", "optimized"):
            assert {"conv", "depthwise", "fully_connected"} <= set(t.cycles[lib])
        assert set(t.calibrated) <= {"reference", "optimized"}
    else:
        assert t.phone_macs_per_second


def test_custom_profile_extends_a_builtin(tmp_path):
    path = tmp_path / "board.toml"
    path.write_text('extends = "cortex-m4"\nname = "my-board"\ndescription = "M4 with less RAM"\n'
                    "ram_bytes = 131072\n[budgets]\nlatency = 250.0\n")
    t = targets.get(str(path))
    assert t.name == "my-board" and t.ram_bytes == 131072 and t.budgets["latency"] == 250.0
    base = targets.get("cortex-m4")
    assert t.clock_hz == base.clock_hz and t.cycles == base.cycles
    assert t.budgets["accuracy_drop"] == base.budgets["accuracy_drop"]


@pytest.mark.parametrize("text, words", [
    ('extends = "cortex-m4"\nname = "x"\nram_byts = 1\n', "did you mean 'ram_bytes'"),
    ('extends = "cortex-m4"\nname = "x"\n[budgets]\nlatncy = 1.0\n', "did you mean 'latency'"),
    ('name = "x"\n', "lacks description"),
    ('this is = not toml [', "not valid TOML"),
    ('extends = "cortex-m99"\nname = "x"\n', "unknown target"),
    ('extends = "cortex-m4"\nname = "x"\nkernels = "fast"\n', "kernels must be"),
    ('extends = "cortex-m4"\nname = "x"\nram_bytes = -5\n', "whole number"),
    ('extends = "cortex-m4"\nname = "x"\n[budgets]\nlatency = "fast"\n', "no valid unit"),
    ('extends = "cortex-m4"\nname = "x"\nruntime = "tvm"\n', "runtime 'tvm' is not one of"),
    ('extends = "mobile"\nname = "x"\nruntime = "c"\n', "runtime 'c' needs kind"),
    ('extends = "cortex-m4-c"\nname = "x"\ncycles_per_instruction = 0\n', "cycles_per_instruction must be"),
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
