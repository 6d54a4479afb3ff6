"""The runtimes a target's firmware or app runs a model in, and how each is measured.

A target profile names its ``runtime``; the entry here says which ops it must
run (every op a TFLite-Micro kernel, or any LiteRT op), which target kinds it
runs on, and how its flash, RAM and latency are measured. Adding a runtime is
one :func:`register` call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgec.check.latency import estimate, not_measured, op_table
from edgec.runtime import vela

if TYPE_CHECKING:
    from edgec.check.targets.profile import Target
    from edgec.load.tflite_file import TFLiteModel
    from edgec.runtime.micro import Arena
    from edgec.runtime.vela import VelaResult


@dataclasses.dataclass(frozen=True)
class Measured:
    """What a build or a check measured, for a runtime's :attr:`Runtime.footprint`."""

    tfl: TFLiteModel
    target: Target
    arena: Arena | None  # TFLite-Micro's arena; None where TFLite-Micro cannot run the model (LiteRT targets)
    ops: list[dict[str, Any]]  # the per-op table of edgec.check.latency
    npu: VelaResult | None = None  # Vela's compilation, for an Ethos-U target
    codegen: dict[str, Any] | None = None  # the generated C's measured section, for a runtime "c" target


@dataclasses.dataclass(frozen=True)
class Runtime:
    name: str
    description: str
    kinds: tuple[str, ...]  # target kinds (mcu, mobile) it runs on
    tflm_ops: bool  # every op must have a TFLite-Micro kernel (the generated C is proved against TFLite-Micro)
    generated_c: bool  # judged on edgec's generated C, built and run under QEMU
    npu: bool  # compiled for an Ethos-U NPU with Vela (the profile's [npu] table)
    # runs TFLite-Micro's DECODE op, so that LUT-compressed weights (edgec.convert.lut) shrink what it flashes
    decodes_lut: bool
    footprint: Callable[[Measured], dict[str, Any]]  # flash_bytes, ram_bytes, latency_ms and how


_REGISTRY: dict[str, Runtime] = {}


def register(runtime: Runtime) -> Runtime:
    _REGISTRY[runtime.name] = runtime
    return runtime


def get(name: str) -> Runtime:
    """The runtime called ``name``; KeyError if there is none (profiles check with :func:`names`)."""
    return _REGISTRY[name]


def names() -> list[str]:
    return list(_REGISTRY)


def _tflm(m: Measured) -> dict[str, Any]:
    """Flash: the flatbuffer, TFLite-Micro's runtime by parts (its framework and the model's kernels, where the
    profile has the fitted table) and the profile's reserve for the application; RAM: the measured arena plus
    the reserve; latency: the per-op instruction model for the profile's kernel library."""
    t = m.target
    assert m.arena is not None  # a TFLite-Micro target refuses a model TFLite-Micro cannot run
    est = estimate(m.ops, t)
    parts = t.runtime_flash_parts(list(m.tfl.op_counts))
    if parts and m.tfl.activation_types() - {"int8", "int32"}:
        parts.pop("int8_registration_saving", None)  # the headers register generic kernels for a 16x8 model
    runtime = parts["bytes"] if parts else 0
    extra = {"runtime_flash": parts} if parts else {}
    return {"flash_bytes": m.tfl.nbytes + runtime + t.flash_reserved_bytes, **extra,
            "ram_bytes": m.arena.bytes + t.ram_reserved_bytes,
            **est, "latency_model": _model(t, "sum over ops of the instructions fitted for the op kind and kernel "
                                              "library (measured TFLite-Micro firmware under QEMU) x cycles per "
                                              "instruction / clock"),
            "latency_not_measured": not_measured(m.ops), "ops": m.ops}


def _model(t: Target, method: str) -> dict[str, Any]:
    return {"kernels": t.kernels, "clock_hz": t.clock_hz, "calibrated": t.latency_calibrated,
            "cycles_per_instruction": t.cpi(), "cycles_per_instruction_error": t.cpi_error(), "method": method}


def _tflm_ethos_u(m: Measured) -> dict[str, Any]:
    """Vela's compiled model and arena; the NPU part's latency from Vela, the ops it leaves to the CPU
    estimated per op."""
    t, npu = m.target, m.npu
    assert npu is not None and m.arena is not None and t.clock_hz
    cpu_ops = [r for r in op_table(npu.compiled, t) if not r["op"].startswith("CUSTOM")]  # the NPU's: Vela
    cpu_ms = 1000.0 * sum(r["cycles"] for r in cpu_ops) / t.clock_hz
    arena = vela.npu_arena(npu, m.arena)
    return {
        "flash_bytes": len(npu.model) + t.flash_reserved_bytes,
        "ram_bytes": arena.bytes + t.ram_reserved_bytes,
        "npu_arena": arena.to_dict(),
        "latency_ms": npu.inference_ms + cpu_ms,
        "latency_model": {"method": "Vela performance estimate for the NPU part, plus MACs x cycles/MAC "
                                    "for the ops Vela leaves to the CPU",
                          "npu_ms": npu.inference_ms, "cpu_ms": cpu_ms, "kernels": t.kernels,
                          "clock_hz": t.clock_hz, "calibrated": False},
        "npu": npu.to_dict(),
        "ops": cpu_ops,
    }


def _generated_c(m: Measured) -> dict[str, Any]:
    """Flash and RAM from the ELF of the generated C (stack measured under QEMU); latency from the
    instructions QEMU counted, times the profile's cycles per instruction for ``c``."""
    t = m.target
    assert m.codegen is not None and t.clock_hz
    mcu = m.codegen["mcu"]
    cpi = t.cycles_per_instruction.get("c", 1.0)
    cycles = mcu["instructions_per_inference"] * cpi
    ms = 1000.0 * cycles / t.clock_hz
    rel = t.cycles_per_instruction_error.get("c", 0.0)
    return {"flash_bytes": mcu["flash_bytes"] + t.flash_reserved_bytes,
            "ram_bytes": mcu["ram_total_bytes"] + t.ram_reserved_bytes,
            "instructions": mcu["instructions_per_inference"], "cycles": cycles, "latency_ms": ms,
            "latency_ms_range": [ms * (1 - rel), ms * (1 + rel)], "latency_relative_error": rel,
            "latency_model": {"clock_hz": t.clock_hz, "calibrated": "c" in t.calibrated, "kernels": "c",
                              "cycles_per_instruction": cpi, "cycles_per_instruction_error": rel,
                              "method": "instructions per inference counted under QEMU (-icount) "
                                        "x cycles_per_instruction / clock"},
            "ops": m.ops}


def _litert(m: Measured) -> dict[str, Any]:
    """Flash: the flatbuffer; no RAM figure (a phone's is not the budget); latency from the MACs and
    the profile's reference throughput, where it has one."""
    out: dict[str, Any] = {"flash_bytes": m.tfl.nbytes, "ram_bytes": None, "ops": m.ops}
    rate = m.target.phone_macs_per_second
    if rate:
        out["latency_ms"] = 1000.0 * m.tfl.macs / rate
        out["latency_model"] = {"method": "MACs / phone_macs_per_second", "phone_macs_per_second": rate,
                                "calibrated": False}
    return out


register(Runtime("tflite-micro", "TFLite-Micro on the MCU's CPU", ("mcu",), tflm_ops=True, generated_c=False,
                 npu=False, decodes_lut=True, footprint=_tflm))
register(Runtime("tflite-micro+ethos-u", "TFLite-Micro with an Ethos-U NPU (Vela-compiled model)", ("mcu",),
                 tflm_ops=True, generated_c=False, npu=True, decodes_lut=False, footprint=_tflm_ethos_u))
register(Runtime("c", "edgec's generated C, no interpreter", ("mcu",), tflm_ops=True, generated_c=True, npu=False,
                 decodes_lut=False, footprint=_generated_c))
register(Runtime("litert", "LiteRT on a phone", ("mobile",), tflm_ops=False, generated_c=False, npu=False,
                 decodes_lut=False, footprint=_litert))
