"""``check()``: measure an existing int8 ``.tflite`` against a target, without TensorFlow.

This is the CI gate: it reads the flatbuffer, measures the TFLite-Micro arena,
estimates latency, runs LiteRT for the host latency, and judges the budgets.
Only LiteRT, TFLite-Micro and NumPy are imported, so it answers in about a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgec.check import budgets, targets
from edgec.check.latency import estimate, not_measured, op_table
from edgec.check.measure import compile_for_npu, host_latency_section, latency_warnings, measure, npu_warnings
from edgec.check.targets import Target
from edgec.errors import InterpreterCrash, ModelLoadError, RuntimeCheckError, UnsupportedOpError
from edgec.load.tflite_file import DECODE, TFLiteModel, fix_for, read_tflite_file
from edgec.report import Report
from edgec.runtime import litert, micro, sandbox

C_CHECK_SAMPLES = 20  # probe inputs the generated C must reproduce bit for bit in a check


def check(path: str, target_name: str, overrides: dict[str, float] | None = None,
          kernels: str | None = None) -> Report:
    """Measure ``path`` on ``target_name`` and judge its budgets.

    Raises:
        EdgecError: unreadable model, unknown target, or a model TFLite-Micro cannot load.
    """
    target = targets.get(target_name).with_kernels(kernels)
    budgets.require_measurable(overrides or {}, target,
                               "edgec check has no data or float model to measure accuracy with; gate "
                               "accuracy_drop in edgec build with labelled --data",
                               "edgec check has no float model to compare the int8 output with; gate it in "
                               "edgec build")
    data, tfl = read_tflite_file(path)
    if DECODE in tfl.op_counts and not target.runs_on.decodes_lut:
        raise ModelLoadError(f"{path} holds LUT-compressed weights that TFLite-Micro's DECODE op unpacks, and "
                             f"target {target.name} runs {target.runtime}, which has no DECODE op; check it on a "
                             "target that runs tflite-micro (cortex-m4), or check the uncompressed model")
    with sandbox.model_label(str(path), fix=fix_for(data)):
        return _check(path, data, tfl, target, overrides)


def _host_latency(data: bytes, target: Target) -> tuple[float | None, str | None, bool]:
    """LiteRT's host latency for ``data``. On an MCU target, which runs TFLite-Micro, LiteRT is not
    needed: a file it refuses or crashes on is a warning and no host latency, and after a crash
    TFLite-Micro is given the file on edgec's own flatbuffer verifier alone. On a LiteRT target the
    refusal or crash is the error it is.

    Returns:
        The latency in ms (or None), the warning (or None), and whether LiteRT crashed.
    """
    try:
        return litert.host_latency_ms(data), None, False
    except RuntimeCheckError as exc:  # an InterpreterCrash too
        if target.kind == "mobile":
            raise
        if isinstance(exc, InterpreterCrash):
            what = "did not finish on this file (stopped at the time limit)" if exc.how == "timed out" else \
                f"crashed on this file ({exc.how})"
            return None, (f"LiteRT {what}; {target.name} runs TFLite-Micro, which was given the file after "
                          "edgec's own flatbuffer verifier passed it; the host latency was not measured"), True
        reason = exc.one_line().split("; ")[0]
        return None, (f"{reason[:240]}{'...' if len(reason) > 240 else ''}; {target.name} runs TFLite-Micro, so "
                      "only the host latency was not measured"), False


def not_full_integer(tfl: TFLiteModel) -> str | None:
    """One line when the model is not full-integer (float or hybrid): the MCU figures assume int8 kernels."""
    floats = tfl.float_tensors()
    if not floats:
        return None
    io = [t for t in (tfl.input, tfl.output) if t in floats]
    kind = "float" if io else "hybrid (integer weights, float activations)"
    return (f"the model is {kind}, not full-integer int8: {len(floats)} of its activation tensors are "
            f"{floats[0].dtype} (first: '{floats[0].name}'); the arena is real, but the latency estimate "
            "assumes int8 kernels and a float op runs several times slower on a Cortex-M; convert it with full "
            "int8 quantization (edgec build does)")


def sixteen_bit(tfl: TFLiteModel) -> str | None:
    """One line when the model computes with int16 activations (TFLite's 16x8 mode): the latency tables
    were measured on int8 kernels."""
    if "int16" not in tfl.activation_types():
        return None
    return ("the model has int16 activations (16x8): the latency estimate uses the int8 kernels' measured costs, "
            "and TFLite-Micro's 16x8 kernels cost more per MAC (not yet measured), so the estimate is low")


def _check(path: str, data: bytes, tfl: TFLiteModel, target: Target, overrides: dict[str, float] | None) -> Report:
    codegen, warnings = None, []
    if target.kind == "mcu" and (flag := not_full_integer(tfl) or sixteen_bit(tfl)):
        warnings.append(flag)
    host_ms, trouble, litert_crash = _host_latency(data, target)
    if trouble:
        warnings.append(trouble)
    try:
        arena = micro.measure_arena(data, litert_verify=not litert_crash)
        if target.judged_on_c:  # judged on the generated C, built and run under QEMU
            # imported here: the C generator is a tenth of the gate's start-up, and only these targets need it
            from edgec.emit.codegen.crosscheck import emit_and_verify, probe_inputs

            _, codegen = emit_and_verify(data, tfl, Path(path).stem, Path(path).name,
                                         probe_inputs(tfl, C_CHECK_SAMPLES), mcu="require", target=target)
            codegen["tflm_arena_bytes"] = arena.bytes
    except UnsupportedOpError as exc:
        exc = tfl.locate(exc)
        if target.needs_tflm_ops:
            raise exc from None
        arena = None  # as in a build: a phone runs it with LiteRT, so there is no arena to judge
        warnings.append(f"{exc.one_line()} (no arena measured; fine for {target.name}, which runs LiteRT)")
    measurements = measure(data, tfl, target, arena, npu=compile_for_npu(data, target),
                                   codegen=codegen, host_latency=False)
    if host_ms is not None:
        measurements.update(host_latency_section(host_ms))
    return Report(
        command="check",
        model={"name": Path(path).stem, "source": str(path), "parameters": tfl.params},
        target=target.to_dict(),
        tflite=tflite_summary(tfl),
        measurements=measurements,
        budgets=budgets.judge(measurements, target, overrides or {}),
        warnings=warnings + npu_warnings(measurements) + latency_warnings(measurements),
    )


def tflite_summary(tfl: TFLiteModel) -> dict[str, Any]:
    return {"bytes": tfl.nbytes, "input": tfl.input.to_dict(), "output": tfl.output.to_dict(), "ops": tfl.op_counts}


def inspect(path: str, target_name: str, kernels: str | None = None) -> dict[str, Any]:
    """The per-op table of ``path`` on ``target_name``: op, output shape, parameters, MACs, estimated
    cycles and latency share, and the activation bytes live while the op runs."""
    target = targets.get(target_name).with_kernels(kernels)
    data, tfl = read_tflite_file(path)
    ops = op_table(tfl, target)
    mcu = target.kind == "mcu"
    est = estimate(ops, target) if mcu else {}
    return {"model": str(path), "target": target.name, "kernels": target.kernels, "macs": tfl.macs,
            "parameters": tfl.params, "peak_live_bytes": tfl.peak_live_bytes,
            "cycles_calibrated": mcu and target.latency_calibrated, "clock_hz": target.clock_hz,
            "instructions": est.get("instructions"), "cycles": est.get("cycles"), "latency_ms": est.get("latency_ms"),
            "latency_ms_range": est.get("latency_ms_range"), "not_measured": not_measured(ops) if mcu else [],
            "ops": ops}
