"""Budget names, their units, and quantities as people write and read them.

A leaf: it imports nothing of edgec but its errors, so the recipe, the target
profiles, the input limits and the budgets all parse ``96KiB`` the same way.
"""

from __future__ import annotations

import math
import re

from edgec.errors import ConfigError

BUDGET_NAMES = ("flash", "ram", "latency", "accuracy_drop", "output_snr_db", "max_error_steps")
# Budgets the value must reach (a floor) rather than stay under (a ceiling).
FLOORS = ("output_snr_db",)

_BYTES: dict[str, float] = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3,
                            "gib": 1024**3}
_UNITS: dict[str, tuple[str, dict[str, float]]] = {
    "flash": ("bytes", _BYTES), "ram": ("bytes", _BYTES),
    "latency": ("ms", {"": 1.0, "ms": 1.0, "s": 1000.0, "us": 0.001}),
    "accuracy_drop": ("fraction", {"": 1.0, "%": 0.01}),
    "output_snr_db": ("dB", {"": 1.0, "db": 1.0}),
    "max_error_steps": ("steps", {"": 1.0, "steps": 1.0})}
_EXAMPLES = {"bytes": "96KiB, 1MiB or 40000", "ms": "50ms or 0.2s", "fraction": "1% or 0.01", "dB": "30dB or 30",
             "steps": "4 or 4steps"}
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z%]*)\s*$")


def unit_of(name: str) -> str:
    """The unit budget ``name`` is measured in: bytes, ms, fraction, dB or steps."""
    return _UNITS[name][0]


def parse_quantity(name: str, text: object) -> float:
    """``96KiB`` → 98304, ``50ms`` → 50.0, ``1%`` → 0.01 for budget ``name``.

    Raises:
        ConfigError: unknown budget name, or a value without a valid unit.
    """
    if name not in _UNITS:
        raise ConfigError(f"unknown budget '{name}'; use one of {', '.join(BUDGET_NAMES)}")
    unit_name, units = _UNITS[name]
    example = _EXAMPLES[unit_name]
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = _QUANTITY.match(str(text))
        if not m or m.group(2).lower() not in units:
            raise ConfigError(f"budget {name}={text!r} has no valid unit; write it like {example}")
        value = float(m.group(1)) * units[m.group(2).lower()]
    if not math.isfinite(value) or (value < 0 and name not in FLOORS):
        raise ConfigError(f"budget {name}={text!r} must be a finite number >= 0; write it like {example}")
    return value


def parse_budget_options(specs: list[str]) -> dict[str, float]:
    """``["ram=96KiB", "latency=50ms"]`` → ``{"ram": 98304.0, "latency": 50.0}``."""
    out = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep:
            raise ConfigError(f"--budget {spec!r} is not NAME=VALUE; write it like --budget ram=96KiB")
        out[name.strip()] = parse_quantity(name.strip(), value.strip())
    return out


def kib(n: float | None) -> str:
    return "-" if n is None else f"{n / 1024:.1f} KiB"


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def format_quantity(x: float, unit: str) -> str:
    """A budget value for people: bytes as KiB, milliseconds, fractions as percent."""
    if unit == "bytes":
        return kib(int(x))
    if unit == "ms":  # three significant digits below 100 ms: a 0.02 ms model is not "0.0 ms"
        return f"{x:.1f} ms" if abs(x) >= 100 else f"{x:.3g} ms"
    if unit == "dB":
        return f"{x:.1f} dB"
    if unit == "steps":
        return f"{x:.3g} steps"
    return f"{100 * x:.2f} %"
