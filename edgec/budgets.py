"""Measure an int8 model against a target and judge it against its budgets.

Flash is the model's bytes plus the profile's reserve for the application and
runtime code; RAM is the measured TFLite-Micro arena plus the RAM reserve (for a
runtime "c" target both come from the ELF of edgec's generated C, with the stack
measured under QEMU, and latency from the instructions QEMU counted);
MCU latency is estimated per op from its MACs and the profile's cycles per MAC
for that op kind and kernel library; phone latency from MACs and the profile's
reference throughput, next to the LiteRT latency measured on this host.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import math
import re

from edgec.errors import ConfigError
from edgec.report import format_quantity
from edgec.runtime import litert, vela
from edgec.runtime.micro import Arena
from edgec.runtime.model_file import TFLiteModel
from edgec.runtime.vela import VelaResult
from edgec.targets.profile import BUDGET_NAMES, Target

_BYTE_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2,
               "gb": 1000**3, "gib": 1024**3}
_MS_UNITS = {"": 1.0, "ms": 1.0, "s": 1000.0, "us": 0.001}
_FRACTION_UNITS = {"": 1.0, "%": 0.01}
_UNITS = {"flash": ("bytes", _BYTE_UNITS), "ram": ("bytes", _BYTE_UNITS), "latency": ("ms", _MS_UNITS),
          "accuracy_drop": ("fraction", _FRACTION_UNITS), "output_snr_db": ("dB", {"": 1.0, "db": 1.0}),
          "max_error_steps": ("steps", {"": 1.0, "steps": 1.0})}
# Budgets the value must reach (a floor) rather than stay under (a ceiling).
FLOORS = ("output_snr_db",)
# Budgets judged on the int8 model against the float one: a build with data measures them, a check cannot.
NEEDS_FLOAT_MODEL = ("accuracy_drop", "output_snr_db", "max_error_steps")
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z%]*)\s*$")
_KIND = {"CONV_2D": "conv", "TRANSPOSE_CONV": "conv", "BATCH_MATMUL": "conv",
         "DEPTHWISE_CONV_2D": "depthwise", "FULLY_CONNECTED": "fully_connected",
         "AVERAGE_POOL_2D": "pool", "MAX_POOL_2D": "pool",
         # an LSTM's MACs are its gates' matrix-vector products: costed as fully connected (not fitted)
         "UNIDIRECTIONAL_SEQUENCE_LSTM": "fully_connected", "BIDIRECTIONAL_SEQUENCE_LSTM": "fully_connected"}
# Ops that only move or reinterpret memory in TFLite-Micro.
_FREE = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}


def parse_quantity(name: str, text) -> float:
    """``96KiB`` → 98304, ``50ms`` → 50.0, ``1%`` → 0.01 for budget ``name``.

    Raises:
        ConfigError: unknown budget name, or a value without a valid unit.
    """
    if name not in _UNITS:
        raise ConfigError(f"unknown budget '{name}'; use one of {', '.join(BUDGET_NAMES)}")
    unit_name, units = _UNITS[name]
    example = {"bytes": "96KiB, 1MiB or 40000", "ms": "50ms or 0.2s", "fraction": "1% or 0.01",
               "dB": "30dB or 30", "steps": "4 or 4steps"}[unit_name]
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


def op_table(tfl: TFLiteModel, target: Target) -> list[dict]:
    """Per-op MACs and estimated cycles on ``target`` with its kernel library."""
    cycles = target.cycles.get(target.kernels, {})
    rows = []
    live = tfl.live_tensors()
    for op in tfl.ops:
        kind = _KIND.get(op.name)
        elementwise = 0  # output values an op without MACs computes (ADD, MUL, LOGISTIC, ...)
        if kind is not None:
            c = op.macs * cycles.get(kind, 0.0)
        elif op.name in _FREE:
            c = 0.0
        else:
            elementwise = sum(tfl.tensors[i].elements for i in op.outputs)
            c = elementwise * cycles.get("per_output", 0.0)
        c += cycles.get("per_op", 0.0)
        rows.append({"index": op.index, "op": op.name, "tensor": tfl.tensors[op.outputs[0]].name if op.outputs else "",
                     "macs": op.macs, "elementwise": elementwise, "params": op.params,
                     "output_shape": list(tfl.tensors[op.outputs[0]].shape) if op.outputs else [],
                     "live_bytes": sum(tfl.tensors[i].nbytes for i in live[op.index]),
                     "live_tensors": [[i, tfl.tensors[i].nbytes] for i in live[op.index]], "cycles": round(c)})
    total = sum(r["cycles"] for r in rows) or 1
    for r in rows:
        r["latency_share"] = r["cycles"] / total
    return rows


def measure(data: bytes, tfl: TFLiteModel, target: Target, arena: Arena | None, host_latency: bool = True,
            npu: VelaResult | None = None, codegen: dict | None = None) -> dict:
    """The ``measurements`` section of the report for ``target``.

    ``arena`` is None when TFLite-Micro cannot run the model (allowed only for
    LiteRT targets); ``npu`` is Vela's result for Ethos-U targets, whose RAM,
    flash and NPU latency then come from Vela; ``codegen`` is the ``c`` section of
    :func:`edgec.codegen.verify.emit_and_verify`, whose measured footprint and
    instruction count are what a runtime "c" target is judged on.
    """
    m = {"macs": tfl.macs, "model_bytes": tfl.nbytes, "arena_bytes": arena and arena.bytes,
         "arena": arena and arena.to_dict()}
    ops = op_table(tfl, target)
    m["peak_live_bytes"] = tfl.peak_live_bytes
    if codegen is not None:
        m["c"] = codegen
    if npu is not None:
        m.update(_npu_measurements(npu, target, arena))
    elif target.judged_on_c:
        mcu = codegen["mcu"]
        cycles = mcu["instructions_per_inference"] * target.cycles_per_instruction
        m.update({
            "flash_bytes": mcu["flash_bytes"] + target.flash_reserved_bytes,
            "ram_bytes": mcu["ram_total_bytes"] + target.ram_reserved_bytes,
            "cycles": cycles,
            "latency_ms": 1000.0 * cycles / target.clock_hz,
            "latency_model": {"clock_hz": target.clock_hz, "calibrated": False,
                              "cycles_per_instruction": target.cycles_per_instruction,
                              "method": "instructions per inference counted under QEMU (-icount) "
                                        "x cycles_per_instruction / clock"},
            "ops": ops,
        })
    elif target.kind == "mcu":
        cycles = sum(r["cycles"] for r in ops)
        m.update({
            "flash_bytes": tfl.nbytes + target.flash_reserved_bytes,
            "ram_bytes": arena.bytes + target.ram_reserved_bytes,
            "cycles": cycles,
            "latency_ms": 1000.0 * cycles / target.clock_hz,
            "latency_model": {"kernels": target.kernels, "clock_hz": target.clock_hz,
                              "calibrated": target.kernels in target.calibrated,
                              "method": "sum over ops of MACs x cycles/MAC for the op kind, / clock"},
            "ops": ops,
        })
    else:
        m["flash_bytes"] = tfl.nbytes
        m["ram_bytes"] = None
        m["ops"] = ops  # MACs, parameters and live memory per op; no per-op latency model for phones
        if target.phone_macs_per_second:
            m["latency_ms"] = 1000.0 * tfl.macs / target.phone_macs_per_second
            m["latency_model"] = {"method": "MACs / phone_macs_per_second",
                                  "phone_macs_per_second": target.phone_macs_per_second,
                                  "calibrated": False}
    if host_latency:
        m.update(host_latency_section(litert.host_latency_ms(data)))
    return m


def host_latency_section(ms: float) -> dict:
    """The report's host latency: LiteRT's median invoke on this machine."""
    return {"host_latency_ms": ms,
            "host_latency": {"interpreter": "LiteRT default delegate", "threads": 1, "statistic": "median of 50"}}


def compile_for_npu(data: bytes, target: Target) -> VelaResult | None:
    """Vela's compilation of ``data`` when ``target`` has an Ethos-U NPU, else None."""
    if not target.has_npu:
        return None
    settings = {k: v for k, v in target.npu.items() if k != "compiler"}
    return vela.compile_model(data, **settings)


def npu_warnings(measurements: dict) -> list[str]:
    """One warning naming the ops Vela leaves to the CPU (by layer where known), if any."""
    rows = (measurements.get("npu") or {}).get("cpu_ops", [])
    if not rows:
        return []
    where = [f"{r['op']} ({r.get('layer') or 'tensor ' + repr(r['tensor'])})" for r in rows]
    return [f"Vela leaves {len(rows)} op(s) to the CPU, which runs them far slower than the NPU: "
            + ", ".join(where)]


def _npu_measurements(npu: VelaResult, target: Target, cpu_arena: Arena) -> dict:
    """Flash, RAM and latency of a Vela-compiled model: NPU part from Vela, CPU fallback ops estimated."""
    cpu_ops = [r for r in op_table(npu.compiled, target) if not r["op"].startswith("CUSTOM")]
    cpu_cycles = sum(r["cycles"] for r in cpu_ops)
    cpu_ms = 1000.0 * cpu_cycles / target.clock_hz
    arena = vela.npu_arena(npu, cpu_arena)
    return {
        "flash_bytes": len(npu.model) + target.flash_reserved_bytes,
        "ram_bytes": arena.bytes + target.ram_reserved_bytes,
        "npu_arena": arena.to_dict(),
        "latency_ms": npu.inference_ms + cpu_ms,
        "latency_model": {"method": "Vela performance estimate for the NPU part, plus MACs x cycles/MAC "
                                    "for the ops Vela leaves to the CPU",
                          "npu_ms": npu.inference_ms, "cpu_ms": cpu_ms, "kernels": target.kernels,
                          "clock_hz": target.clock_hz, "calibrated": False},
        "npu": npu.to_dict(),
        "ops": cpu_ops,
    }


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


def evaluate(measurements: dict, target: Target, overrides: dict[str, float],
             accuracy_drop: float | None = None, verification: dict | None = None) -> list[dict]:
    """Budgets as ``{name, limit, value, unit, ok}``: profile defaults, then ``overrides``.

    Raises:
        ConfigError: an override with no measured value (``require_measurable`` refuses
            those before the work; this is its backstop).
    """
    limits = {}
    if target.flash_bytes:
        limits["flash"] = float(target.flash_bytes)
    if target.ram_bytes:
        limits["ram"] = float(target.ram_bytes)
    limits.update(target.budgets)  # already parsed by Target.from_dict
    limits.update(overrides)
    v = verification or {}
    values = {"flash": measurements.get("flash_bytes"), "ram": measurements.get("ram_bytes"),
              "latency": measurements.get("latency_ms"), "accuracy_drop": accuracy_drop,
              "output_snr_db": v.get("output_snr_db"), "max_error_steps": v.get("output_error_steps_max")}
    unmeasured = [name for name in overrides if values.get(name) is None]
    if unmeasured:
        raise ConfigError(f"budget {', '.join(unmeasured)} was asked for but not measured on {target.name}; "
                          "drop it from --budget and the recipe")
    out = []
    for name in BUDGET_NAMES:
        if name not in limits or values[name] is None:
            continue
        value, limit = values[name], limits[name]
        floor = name in FLOORS
        out.append({"name": name, "limit": limit, "value": value, "unit": _UNITS[name][0],
                    "kind": "floor" if floor else "ceiling", "ok": bool(value >= limit if floor else value <= limit)})
    return out


def failures(budgets: list[dict]) -> list[str]:
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

