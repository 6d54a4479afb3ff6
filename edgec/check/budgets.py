"""Judge measurements against a target's budgets, and refuse budgets a run cannot measure."""

from __future__ import annotations

from typing import Any

from edgec.check.targets.profile import Target
from edgec.errors import ConfigError
from edgec.units import BUDGET_NAMES, FLOORS, format_quantity, unit_of

# Budgets judged on the int8 model against the float one: a build with data measures them, a check cannot.
NEEDS_FLOAT_MODEL = ("accuracy_drop", "output_snr_db", "max_error_steps")


def require_measurable(asked: dict[str, float], target: Target, accuracy_missing: str | None,
                       float_missing: str | None = None) -> None:
    """Refuse, before any work, a budget the user asked for that this run cannot measure:
    a gate that skipped it would pass without checking it. (A profile's own default
    budgets are skipped quietly where they cannot be measured.)

    Args:
        asked: the budgets from --budget and the recipe.
        accuracy_missing: why accuracy cannot be measured in this run, or None if it can.
        float_missing: why the int8 output cannot be compared with the float model's (``edgec check``
            has no float model), or None if it can.

    Raises:
        ConfigError: naming the budget, why, and what to do.
    """
    if "ram" in asked and target.kind != "mcu":
        raise ConfigError(f"budget ram cannot be checked on target {target.name}: edgec measures RAM only on "
                          "MCU targets (the TFLite-Micro arena or the generated C); drop the ram budget or pick "
                          "an MCU target")
    if "latency" in asked and target.kind != "mcu" and not target.phone_macs_per_second:
        raise ConfigError(f"budget latency cannot be checked on target {target.name}: its profile has no "
                          "phone_macs_per_second; add one to the profile or drop the latency budget")
    if "accuracy_drop" in asked and accuracy_missing:
        raise ConfigError(f"budget accuracy_drop cannot be checked: {accuracy_missing}")
    if float_missing and (asked_here := [n for n in NEEDS_FLOAT_MODEL if n in asked and n != "accuracy_drop"]):
        raise ConfigError(f"budget {asked_here[0]} cannot be checked: {float_missing}")


def limits_of(target: Target, overrides: dict[str, float]) -> dict[str, float]:
    """Each budget's limit: the target's flash and RAM, its profile's budgets, then ``overrides``."""
    limits: dict[str, float] = {}
    if target.flash_bytes:
        limits["flash"] = float(target.flash_bytes)
    if target.ram_bytes:
        limits["ram"] = float(target.ram_bytes)
    limits.update(target.budgets)  # already parsed by Target.from_dict
    limits.update(overrides)
    return limits


def judge(measurements: dict[str, Any], target: Target, overrides: dict[str, float],
          accuracy_drop: float | None = None, verification: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Budgets as ``{name, limit, value, unit, ok}``: profile defaults, then ``overrides``.

    Raises:
        ConfigError: an override with no measured value (``require_measurable`` refuses
            those before the work; this is its backstop).
    """
    limits = limits_of(target, overrides)
    v = verification or {}
    values: dict[str, float | None] = {
        "flash": measurements.get("flash_bytes"), "ram": measurements.get("ram_bytes"),
        "latency": measurements.get("latency_ms"), "accuracy_drop": accuracy_drop,
        "output_snr_db": v.get("output_snr_db"), "max_error_steps": v.get("output_error_steps_max")}
    unmeasured = [name for name in overrides if values.get(name) is None]
    if unmeasured:
        raise ConfigError(f"budget {', '.join(unmeasured)} was asked for but not measured on {target.name}; "
                          "drop it from --budget and the recipe")
    out: list[dict[str, Any]] = []
    for name in BUDGET_NAMES:
        value = values[name]
        if name not in limits or value is None:
            continue
        limit = limits[name]
        floor = name in FLOORS
        out.append({"name": name, "limit": limit, "value": value, "unit": unit_of(name),
                    "kind": "floor" if floor else "ceiling", "ok": bool(value >= limit if floor else value <= limit)})
    return out


def failures(budgets: list[dict[str, Any]]) -> list[str]:
    """One phrase per failing budget: value, limit and overshoot."""
    msgs = []
    for b in budgets:
        if not b["ok"] and b.get("kind") == "floor":
            msgs.append(f"{b['name']} {format_quantity(b['value'], b['unit'])} is below "
                        f"{format_quantity(b['limit'], b['unit'])} by "
                        f"{format_quantity(b['limit'] - b['value'], b['unit'])}")
        elif not b["ok"]:
            over = b["value"] - b["limit"]
            pct = f" ({100 * over / b['limit']:.0f} % over)" if b["limit"] else ""
            msgs.append(f"{b['name']} {format_quantity(b['value'], b['unit'])} exceeds "
                        f"{format_quantity(b['limit'], b['unit'])} "
                        f"by {format_quantity(over, b['unit'])}{pct}")
    return msgs
