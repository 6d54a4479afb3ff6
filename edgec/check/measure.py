"""The report's ``measurements``: a model's flash, RAM and latency on a target.

Flash is the model's bytes plus the profile's reserve for the application and
runtime code; RAM is the measured TFLite-Micro arena plus the RAM reserve (for a
runtime "c" target both come from the ELF of edgec's generated C, with the stack
measured under QEMU, and latency from the instructions QEMU counted);
MCU latency is estimated per op (:mod:`edgec.check.latency`); phone latency from
MACs and the profile's reference throughput, next to the LiteRT latency measured
on this host; an Ethos-U target's figures come from Vela. Nothing here imports
TensorFlow.
"""

from __future__ import annotations

from typing import Any

from edgec.check.latency import op_table
from edgec.check.runtimes import Measured
from edgec.check.targets.profile import Target
from edgec.load.tflite_file import TFLiteModel
from edgec.runtime import litert, vela
from edgec.runtime.micro import Arena
from edgec.runtime.vela import VelaResult


def measure(data: bytes, tfl: TFLiteModel, target: Target, arena: Arena | None, host_latency: bool = True,
            npu: VelaResult | None = None, codegen: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``measurements`` section of the report for ``target``.

    ``arena`` is None when TFLite-Micro cannot run the model (allowed only for
    LiteRT targets); ``npu`` is Vela's result for Ethos-U targets, whose RAM,
    flash and NPU latency then come from Vela; ``codegen`` is the ``c`` section of
    :func:`edgec.emit.codegen.crosscheck.emit_and_verify`, whose measured footprint and
    instruction count are what a runtime "c" target is judged on.
    """
    ops = op_table(tfl, target)
    m: dict[str, Any] = {"macs": tfl.macs, "model_bytes": tfl.nbytes, "arena_bytes": arena and arena.bytes,
               "arena_bytes_32bit": arena and arena.bytes_32bit, "arena": arena and arena.to_dict(),
               "peak_live_bytes": tfl.peak_live_bytes}
    if codegen is not None:
        m["c"] = codegen
    m.update(target.runs_on.footprint(Measured(tfl, target, arena, ops, npu, codegen)))
    if host_latency:
        m.update(host_latency_section(litert.host_latency_ms(data)))
    return m


def host_latency_section(ms: float) -> dict[str, Any]:
    """The report's host latency: LiteRT's median invoke on this machine."""
    return {"host_latency_ms": ms,
            "host_latency": {"interpreter": "LiteRT default delegate", "threads": 1, "statistic": "median of 50"}}


def compile_for_npu(data: bytes, target: Target) -> VelaResult | None:
    """Vela's compilation of ``data`` when ``target`` has an Ethos-U NPU, else None."""
    if not target.runs_on.npu:
        return None
    settings = {k: v for k, v in target.npu.items() if k != "compiler"}
    return vela.compile_model(data, **settings)


def latency_warnings(measurements: dict[str, Any]) -> list[str]:
    """One warning naming the op kinds whose latency is costed as another kind's (no measurement of their own)."""
    ops = measurements.get("latency_not_measured") or []
    if not ops:
        return []
    return ["the latency model has no measurement of " + ", ".join(ops) + ": each is costed as the measured op "
            "that shares its inner loop, so the latency estimate is less certain than its band says"]


def npu_warnings(measurements: dict[str, Any]) -> list[str]:
    """One warning naming the ops Vela leaves to the CPU (by layer where known), if any."""
    rows = (measurements.get("npu") or {}).get("cpu_ops", [])
    if not rows:
        return []
    where = [f"{r['op']} ({r.get('layer') or 'tensor ' + repr(r['tensor'])})" for r in rows]
    return [f"Vela leaves {len(rows)} op(s) to the CPU, which runs them far slower than the NPU: "
            + ", ".join(where)]
