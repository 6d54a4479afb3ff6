"""Generate C for an int8 model and prove it: bit-exact with TFLite-Micro on the
host, and on an emulated Cortex-M4 where flash, RAM and instructions are measured.

Wrong C is never written: any difference from TFLite-Micro is an error.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgec.emit.codegen import Generated, generate, toolchain
from edgec.errors import RuntimeCheckError
from edgec.load.tflite_file import TFLiteModel
from edgec.runtime import micro

MCU_SAMPLES = 3


def probe_inputs(tfl: TFLiteModel, samples: int = 100, seed: int = 0) -> np.ndarray:
    """int8 inputs that exercise the kernels without a data set: the extremes, the zero
    point, and random values spread over the whole int8 range; one row per sample, every
    input of the model packed one after another (as ``<NAME>_INFER_PACKED`` takes them)."""
    ins = [tfl.tensors[k] for k in tfl.inputs]
    n = sum(t.elements for t in ins)
    rng = np.random.default_rng(seed)
    zero = np.concatenate([np.full(t.elements, t.zero_point or 0) for t in ins])
    fixed = [np.full(n, -128), np.full(n, 127), zero]
    spread = rng.integers(-128, 128, size=(max(samples - len(fixed), 0), n))
    return np.concatenate([np.stack(fixed), spread]).astype(np.int8)[:samples]


def tflm_outputs(data: bytes, tfl: TFLiteModel, packed: np.ndarray) -> np.ndarray:
    """TFLite-Micro's outputs for packed inputs (rows of :func:`probe_inputs`), packed the same way."""
    bounds = np.cumsum([0] + [tfl.tensors[k].elements for k in tfl.inputs])
    parts = [packed[:, bounds[k]:bounds[k + 1]] for k in range(len(tfl.inputs))]
    return np.concatenate(micro.run_many(data, parts), axis=1)


def _compare(ours: np.ndarray, reference: np.ndarray, what: str, source: str) -> dict:
    diff = np.abs(ours.astype(np.int32) - reference.astype(np.int32))
    result = {"samples": int(len(ours)), "values": int(diff.size), "mismatched_values": int((diff > 0).sum()),
              "max_abs_diff": int(diff.max(initial=0)), "bit_exact": bool((diff == 0).all())}
    if not result["bit_exact"]:
        raise RuntimeCheckError(f"the C generated for {source} differs from {what} in {result['mismatched_values']} "
                                f"of {result['values']} output values (up to {result['max_abs_diff']} LSB); "
                                "this is a bug in edgec: report it with the model, and deploy with TFLite-Micro")
    return result


def _compare_mcu(gen: Generated, outputs: np.ndarray, inputs_q: np.ndarray, reference: np.ndarray, work: Path,
                 source: str) -> dict:
    """The Cortex-M's outputs against TFLite-Micro's. Where they differ, TFLite-Micro's own kernels may have
    shifted by 32 or more, which C++ leaves undefined: its host build then differs from its Cortex-M build.
    The M4 is then compared with the C built on the host with the Cortex-M's shifts, and the values that
    TFLite-Micro's host build computes otherwise are counted; any other difference is an error."""
    if np.array_equal(outputs, reference):
        return _compare(outputs, reference, "TFLite-Micro (run under QEMU)", source)
    cortex_m = toolchain.run_host(toolchain.build_host(gen, work / "host-cortex-m", tflite_host_shifts=False),
                                  inputs_q, gen.output_bytes)
    if np.array_equal(cortex_m, reference):  # the shifts are not why: report the difference as it is
        return _compare(outputs, reference, "TFLite-Micro (run under QEMU)", source)
    result = _compare(outputs, cortex_m, "its own host build with the Cortex-M's shifts (run under QEMU)", source)
    result["reference"] = ("TFLite-Micro as a Cortex-M computes it: the C on the host with the Cortex-M's shifts "
                           "by 32 or more, where TFLite-Micro's kernels shift that far (undefined in C++)")
    result["values_differing_from_tflite_micro_host"] = int((cortex_m != reference).sum())
    return result


def emit_and_verify(data: bytes, tfl: TFLiteModel, name: str, source: str, inputs_q: np.ndarray,
                    mcu: str = "auto", target=None, workdir: Path | None = None,
                    lut: bool = False) -> tuple[Generated, dict]:
    """Generate, compile on the host, compare with TFLite-Micro; then, unless ``mcu`` is
    ``"off"``, build for the Cortex-M4 and run under QEMU (``"require"``: missing tools, or a model
    too large for the emulated board, are an error; ``"auto"``: they are reported as skipped).
    ``target`` (a profile) turns the instruction count into milliseconds with its clock and
    ``cycles_per_instruction``; ``lut`` stores few-valued weights as indices and tables.

    Returns:
        The generated sources and the report's ``c`` section.
    """
    gen = generate(data, tfl, name, source, lut=lut)
    section: dict = gen.to_dict()
    with tempfile.TemporaryDirectory(prefix="edgec-c-") as tmp:
        work = Path(workdir or tmp)
        reference = tflm_outputs(data, tfl, inputs_q)
        exe = toolchain.build_host(gen, work / "host")
        section["host"] = {"compiler": " ".join(["gcc -std=c99 -Wall -Wextra -Werror -pedantic -O2",
                                                 *toolchain.host_shift_flags()]),
                           **_compare(toolchain.run_host(exe, inputs_q, gen.output_bytes), reference,
                                      "TFLite-Micro on the host", source)}
        if mcu == "off":
            section["mcu"] = {"skipped": "not asked for"}
            return gen, section
        try:
            run = toolchain.measure_mcu(gen, inputs_q[:MCU_SAMPLES], work / "mcu")
        except RuntimeCheckError as exc:
            if mcu == "require" or not ("not installed" in str(exc) or "does not fit" in str(exc)):
                raise
            section["mcu"] = {"skipped": str(exc)}
            return gen, section
        comparison = _compare_mcu(gen, run.outputs, inputs_q[:MCU_SAMPLES], reference[:MCU_SAMPLES], work, source)
    cpi = target.cycles_per_instruction.get("c", 1.0) if target else 1.0
    cycles = float(np.median(run.instructions)) * cpi
    section["mcu"] = {
        "machine": f"QEMU {toolchain.QEMU_MACHINE} (Cortex-M4F), arm-none-eabi-gcc -O2",
        **comparison,
        **run.to_dict(),
        "instructions_per_inference": int(np.median(run.instructions)),
        "instructions_per_mac": float(np.median(run.instructions)) / tfl.macs if tfl.macs else None,
        "ram_total_bytes": run.ram_bytes + run.stack_bytes + gen.input_bytes + gen.output_bytes,
        "cycles_per_instruction": cpi,
        "latency_ms": 1000.0 * cycles / target.clock_hz if target and target.clock_hz else None,
    }
    return gen, section
