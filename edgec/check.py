"""``check()``: measure an existing int8 ``.tflite`` against a target, without TensorFlow.

This is the CI gate: it reads the flatbuffer, measures the TFLite-Micro arena,
estimates latency, runs LiteRT for the host latency, and judges the budgets.
Only LiteRT, TFLite-Micro and NumPy are imported, so it answers in about a second.
"""

from __future__ import annotations

from pathlib import Path

from edgec import budgets, targets
from edgec.errors import UnsupportedOpError
from edgec.report import Report
from edgec.runtime import micro
from edgec.runtime.model_file import read_model_file


def check(path: str, target_name: str, overrides: dict[str, float] | None = None,
          kernels: str | None = None) -> Report:
    """Measure ``path`` on ``target_name`` and judge its budgets.

    Raises:
        EdgecError: unreadable model, unknown target, or a model TFLite-Micro cannot load.
    """
    target = targets.get(target_name).with_kernels(kernels)
    data, tfl = read_model_file(path)
    try:
        arena = micro.measure_arena(data)
    except UnsupportedOpError as exc:
        op = tfl.find_op(exc.op, exc.index)
        raise exc.at(tfl.describe_op(op)) if op else exc from None
    measurements = budgets.measure(data, tfl, target, arena, npu=budgets.compile_for_npu(data, target))
    return Report(
        command="check",
        model={"name": Path(path).stem, "source": str(path), "parameters": tfl.params},
        target=target.to_dict(),
        tflite=tflite_summary(tfl),
        measurements=measurements,
        budgets=budgets.evaluate(measurements, target, overrides or {}),
        warnings=budgets.npu_warnings(measurements),
    )


def tflite_summary(tfl) -> dict:
    return {"bytes": tfl.nbytes, "input": tfl.input.to_dict(), "output": tfl.output.to_dict(), "ops": tfl.op_counts}
