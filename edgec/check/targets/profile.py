"""The :class:`Target` profile: a chip (or phone) and its budgets, read from TOML.

Built-in profiles are the ``*.toml`` files beside this module; a user's own
profile is selected by path and may ``extends = "cortex-m4"`` to override only
some fields. Sizes are stored in bytes and times in milliseconds; formatting
happens only when a report is rendered.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from edgec.check import runtimes
from edgec.check.latency import DECODE_KIND, LIBRARIES, RENAMED
from edgec.config import check_keys
from edgec.errors import ConfigError, TargetError
from edgec.load import limits
from edgec.units import BUDGET_NAMES, parse_quantity

FLASH_KEYS = ("framework", "error", "int8_saving_min", "int8_saving_max")
TERM_KEYS = ("fixed", "per_mac", "per_output", "per_input", "per_tap", "per_patch", "per_slow_output", "error")
NPU_KEYS = ("compiler", "accelerator", "system_config", "memory_mode", "config_file")


@dataclasses.dataclass(frozen=True)
class Target:
    """A deployment target and its default budgets."""

    name: str
    description: str
    kind: str  # "mcu" or "mobile"
    runtime: str  # a name in edgec.check.runtimes
    flash_bytes: int | None = None
    ram_bytes: int | None = None
    flash_reserved_bytes: int = 0
    ram_reserved_bytes: int = 0
    clock_hz: int | None = None
    kernels: str = "tflm-reference"  # the kernel library the latency model assumes (edgec.check.latency)
    calibrated: tuple[str, ...] = ()  # libraries whose cycles per instruction are fitted to published latencies
    # library -> op kind -> {term: instructions per unit, "error": the fit's relative error} (edgec.check.latency)
    instructions: dict[str, dict[str, dict[str, float]]] = dataclasses.field(default_factory=dict)
    # op kind -> terms, for kernels the firmware behind [instructions.*] lacks, measured apart; every TFLite-Micro
    # library runs them (DECODE: no CMSIS-NN version)
    instructions_apart: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    phone_macs_per_second: float | None = None
    cycles_per_instruction: dict[str, float] = dataclasses.field(default_factory=dict)  # library -> cycles/instr.
    cycles_per_instruction_error: dict[str, float] = dataclasses.field(default_factory=dict)  # relative, by library
    # library -> {"framework": bytes, <op kind>: bytes, "error": relative, "int8_saving_min"/"_max": bytes}: the
    # TFLite-Micro runtime's flash by parts (written by scripts/fit_latency.py)
    runtime_flash: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    # TFLite-Micro's DECODE kernel (LUT-compressed weights, edgec.convert.lut), which the firmware behind
    # runtime_flash does not have: its code for this core, measured apart (see cortex-m4.toml)
    decode_flash_bytes: int | None = None
    npu: dict[str, str] = dataclasses.field(default_factory=dict)  # Ethos-U: Vela's accelerator and system settings
    budgets: dict[str, float] = dataclasses.field(default_factory=dict)
    source: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> "Target":
        fields = [f.name for f in dataclasses.fields(cls) if f.name != "source"]
        if "cycles" in data:
            raise TargetError(f"target profile {source}: [cycles.*] tables (cycles per MAC) are replaced by "
                              "[instructions.<library>] and cycles_per_instruction; extend a built-in profile, "
                              "or see edgec/check/targets/cortex-m4.toml")
        check_keys(data, fields, f"target profile {source}", TargetError)
        missing = [k for k in ("name", "description", "kind", "runtime") if k not in data]
        if missing:
            raise TargetError(f"target profile {source} lacks {', '.join(missing)}; add them to the file")
        if data["kind"] not in ("mcu", "mobile"):
            raise TargetError(f"target profile {source}: kind '{data['kind']}' is not 'mcu' or 'mobile'")
        if data["runtime"] not in runtimes.names():
            raise TargetError(f"target profile {source}: runtime '{data['runtime']}' is not one of "
                              f"{', '.join(runtimes.names())}")
        runs_on = runtimes.get(data["runtime"])
        if data["kind"] not in runs_on.kinds:
            raise TargetError(f"target profile {source}: runtime '{runs_on.name}' needs kind = "
                              f"{' or '.join(repr(k) for k in runs_on.kinds)}")
        _library(data.get("kernels", LIBRARIES[0]), f"target profile {source}: kernels")
        for key in ("budgets", "npu", "instructions", "instructions_apart", "cycles_per_instruction",
                    "cycles_per_instruction_error", "runtime_flash"):
            if not isinstance(data.get(key, {}), dict):
                raise TargetError(f"target profile {source}: {key} must be a table ([{key}]), got {data[key]!r}")
        for key in ("name", "description", "kind", "runtime", "kernels"):
            if key in data and not isinstance(data[key], str):
                raise TargetError(f"target profile {source}: {key} must be a string, got {data[key]!r}")
        check_keys(data.get("budgets", {}), BUDGET_NAMES, f"target profile {source} [budgets]", TargetError)
        for key in ("cycles_per_instruction", "cycles_per_instruction_error"):
            for lib, value in data.get(key, {}).items():
                _library(lib, f"target profile {source}: {key}")
                if not _finite(value) or value < 0 or (key == "cycles_per_instruction" and value == 0):
                    raise TargetError(f"target profile {source}: {key}.{lib} must be a number > 0, got {value!r}")
        sections = [(f"instructions.{lib}", kinds) for lib, kinds in data.get("instructions", {}).items()]
        for lib, _ in sections:
            _library(lib.split(".", 1)[1], f"target profile {source}: [{lib}]")
        for section, kinds in [*sections, ("instructions_apart", data.get("instructions_apart", {}))]:
            for kind, table in (kinds.items() if isinstance(kinds, dict) else [(section, kinds)]):
                where = f"target profile {source} [{section}] {kind}"
                if not isinstance(table, dict):
                    raise TargetError(f"{where} must be a table of terms ({', '.join(TERM_KEYS)}), got {table!r}")
                check_keys(table, TERM_KEYS, where, TargetError)
                for key, value in table.items():
                    if not _finite(value) or value < 0:
                        raise TargetError(f"{where}: {key} must be a number >= 0, got {value!r}")
        for lib, table in data.get("runtime_flash", {}).items():
            _library(lib, f"target profile {source}: [runtime_flash.{lib}]")
            where = f"target profile {source} [runtime_flash.{lib}]"
            if not isinstance(table, dict) or "framework" not in table:
                raise TargetError(f"{where} must be a table with framework = bytes and one entry per op kind")
            for key, value in table.items():
                if not (key in FLASH_KEYS or re.fullmatch(r"[A-Z][A-Z0-9_]*", key)):
                    raise TargetError(f"{where}: '{key}' is neither an op kind (CONV_2D) nor one of "
                                      f"{', '.join(FLASH_KEYS)}")
                if not _finite(value) or value < 0:
                    raise TargetError(f"{where}: {key} must be a number >= 0, got {value!r}")
        macs = data.get("phone_macs_per_second")
        if macs is not None and (not _finite(macs) or macs <= 0):
            raise TargetError(f"target profile {source}: phone_macs_per_second must be a number > 0, got {macs!r} "
                              "(leave it out to have no phone latency estimate)")
        calibrated = data.get("calibrated", ())
        if not isinstance(calibrated, (list, tuple)) or any(c not in LIBRARIES for c in calibrated):
            raise TargetError(f"target profile {source}: calibrated must be a list of {', '.join(LIBRARIES)}")
        npu = data.get("npu", {})
        check_keys(npu, NPU_KEYS, f"target profile {source} [npu]", TargetError)
        if runs_on.npu != bool(npu):
            raise TargetError(f"target profile {source}: runtime '{runs_on.name}' "
                              + ("needs an [npu] table" if runs_on.npu else "has no NPU; drop the [npu] table or "
                                 "use runtime = \"tflite-micro+ethos-u\""))
        if npu:
            missing = [k for k in ("compiler", "accelerator", "system_config", "memory_mode") if k not in npu]
            if missing or npu["compiler"] != "vela":
                raise TargetError(f"target profile {source} [npu] needs compiler = \"vela\", accelerator, "
                                  "system_config and memory_mode (as Vela's options name them)")
        for key in ("flash_bytes", "ram_bytes", "clock_hz", "flash_reserved_bytes", "ram_reserved_bytes",
                    "decode_flash_bytes"):
            value = data.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**62):
                raise TargetError(f"target profile {source}: {key} must be a whole number of "
                                  f"{'Hz' if key == 'clock_hz' else 'bytes'}, got {value!r}")
        if data["kind"] == "mcu" and not data.get("clock_hz"):
            raise TargetError(f"target profile {source}: an mcu profile needs clock_hz")
        # Budgets are parsed here, once, so a bad value fails before any build work.
        try:
            parsed = {name: parse_quantity(name, value) for name, value in data.get("budgets", {}).items()}
        except ConfigError as exc:
            raise TargetError(f"target profile {source} [budgets]: {exc}") from None
        return cls(**{**data, "budgets": parsed, "calibrated": tuple(calibrated)}, source=source)

    @property
    def runs_on(self) -> runtimes.Runtime:
        """The runtime entry: which ops it must run and how it is measured."""
        return runtimes.get(self.runtime)

    @property
    def judged_on_c(self) -> bool:
        """The firmware runs edgec's generated C: flash, RAM and latency come from its ELF under QEMU."""
        return self.runs_on.generated_c

    @property
    def needs_tflm_ops(self) -> bool:
        """Every op must run in TFLite-Micro (the generated C is proved against it too)."""
        return self.runs_on.tflm_ops

    def with_kernels(self, kernels: str | None) -> "Target":
        if kernels is None:
            return self
        return dataclasses.replace(self, kernels=_library(kernels, "--kernels"))

    def instruction_tables(self) -> dict[str, dict[str, float]]:
        """The instruction tables of the profile's kernel library (the generated C, which follows the
        reference kernels, falls back to theirs)."""
        tables = self.instructions.get(self.kernels)
        if tables is None and self.kernels == "c":
            tables = self.instructions.get("tflm-reference")
        if not tables or self.kernels == "c":
            return tables or {}
        return {**self.instructions_apart, **tables}

    def runtime_flash_parts(self, kinds: list[str]) -> dict[str, Any] | None:
        """TFLite-Micro's flash for a model registering ``kinds`` with the profile's kernel library: the
        framework plus each kernel, as the profile's fitted table has them (DECODE as measured apart; a kind
        without a size of its own counts as the largest measured kernel, and is named); None without a table."""
        table = self.runtime_flash.get(self.kernels)
        if not table:
            return None
        sizes = {k: v for k, v in table.items() if k not in FLASH_KEYS}
        apart = {DECODE_KIND: self.decode_flash_bytes} if self.decode_flash_bytes is not None else {}
        largest = max(sizes.values(), default=0.0)
        kernels = {k: int(sizes.get(k, apart.get(k, largest))) for k in sorted(set(kinds))}
        parts: dict[str, Any] = {"bytes": int(table["framework"]) + sum(kernels.values()),
                                 "framework": int(table["framework"]), "kernels": kernels,
                                 "error": table.get("error", 0.0),
                                 "not_measured": sorted(k for k in kernels if k not in sizes and k not in apart)}
        if any(k in apart and k not in sizes for k in kernels):
            parts["measured_apart"] = sorted(k for k in kernels if k in apart and k not in sizes)
        if "int8_saving_min" in table:
            parts["int8_registration_saving"] = [int(table["int8_saving_min"]), int(table.get("int8_saving_max", 0))]
        return parts

    def cpi(self) -> float:
        """Cycles per counted instruction for the profile's kernel library."""
        return self.cycles_per_instruction.get(self.kernels, 1.0)

    def cpi_error(self) -> float:
        return self.cycles_per_instruction_error.get(self.kernels, 0.0)

    @property
    def latency_calibrated(self) -> bool:
        """The cycles per instruction of the chosen library are fitted to a published latency."""
        return self.kernels in self.calibrated

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _library(name: object, what: str) -> str:
    """``name`` if it is a kernel library edgec models; the old names are refused with their new ones."""
    if isinstance(name, str) and name in RENAMED:
        raise TargetError(f"{what}: '{name}' is now called '{RENAMED[name]}'; use one of {', '.join(LIBRARIES)}")
    if name not in LIBRARIES:
        raise TargetError(f"{what} must be one of {', '.join(LIBRARIES)}, got {name!r}")
    return str(name)


def _finite(value: object) -> bool:
    """A real number (not a bool, not NaN or infinite)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


MAX_EXTENDS = 16  # profiles extending profiles: a deeper chain is a mistake or a trap


def _builtin_files() -> dict[str, Traversable]:
    folder = resources.files("edgec.check.targets")
    return {p.name[:-5]: p for p in folder.iterdir() if p.name.endswith(".toml")}


def names() -> list[str]:
    """Names of the built-in profiles."""
    return sorted(_builtin_files())


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise TargetError(f"target profile {source} is not valid TOML ({exc}); fix the file") from None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _raw(name_or_path: str, seen: tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    builtin = _builtin_files()
    if name_or_path in builtin:
        data, source = _parse(builtin[name_or_path].read_text(encoding="utf-8"), name_or_path), name_or_path
    else:
        path = Path(name_or_path)
        if not (path.suffix == ".toml" or path.exists()):
            raise TargetError(f"unknown target '{name_or_path}'; use one of {', '.join(names())} "
                              "or a path to a .toml profile")
        if not path.is_file():
            raise TargetError(f"target profile {path} does not exist; pass a built-in name "
                              f"({', '.join(names())}) or a .toml file")
        try:
            text = limits.read_text(path, "target profile", TargetError)
        except (OSError, UnicodeDecodeError) as exc:
            raise TargetError(f"cannot read target profile {path} ({exc}); check the file") from None
        data, source = _parse(text, str(path)), str(path)
    parent = data.pop("extends", None)
    if parent is not None:
        if not isinstance(parent, str):
            raise TargetError(f"target profile {source}: extends must be a profile name or path, got {parent!r}")
        if len(seen) >= MAX_EXTENDS:
            raise TargetError(f"target profile {source}: more than {MAX_EXTENDS} profiles extend one another; "
                              "extend a built-in profile directly")
        if parent in seen:
            raise TargetError(f"target profile {source} extends itself through '{parent}'; break the cycle")
        base, _ = _raw(str(parent), seen + (source,))
        base.pop("name", None)
        data = _merge(base, data)
    return data, source


def get(name_or_path: str) -> Target:
    """A built-in profile by name, or a user's profile by path (with ``extends``).

    Raises:
        TargetError: unknown name, unreadable or malformed profile.
    """
    data, source = _raw(name_or_path)
    return Target.from_dict(data, source)
