"""Generated C against a real TFLite-Micro firmware for Cortex-M4F (../shared/mcu/tflm_cortex_m4.json).

The C side is measured in this run the way that firmware was: built with arm-none-eabi-gcc for
Cortex-M4F hard-float, run under QEMU mps2-an386 with -icount shift=0, instructions per inference
counted by the emulator (per op, with a timer read after each op), outputs compared with TFLite-Micro.
The TFLite-Micro side is what the shared file records for the same model files (digits is edgec's
build of the bundled sample: compared only if this run's build has the same ops and shapes; its bytes may
differ by the metadata).

- instructions: whole inference, C / TFLM with CMSIS-NN kernels (and / reference kernels);
- RAM: C's static data + planned buffer + measured stack + the caller's input and output buffers,
  against the firmware's data + bss + measured stack, with its arena at the smallest size that
  allocates on the M4 (the firmware was linked with edgec's larger 64-bit figure);
- flash: C's code and constants in the ELF (with the C library functions it calls) against the
  firmware's flash, which the shared file records without its embedded test inputs (TFLM + CMSIS-NN + the
  model + a ~1.3 KB harness).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from common import SHARED
from edgec.report.markdown import md_table

MCU = SHARED.parent / "mcu" / "tflm_cortex_m4.json"
FILES = {"kws": SHARED / "kws_ref_model.tflite", "ic": SHARED / "ic_resnet8_ref_int8.tflite"}


def present() -> bool:
    return MCU.exists() and all(p.exists() for p in FILES.values())


def run(sample: Path) -> list[dict]:
    from edgec.emit.codegen import toolchain
    from edgec.emit.codegen.crosscheck import emit_and_verify, probe_inputs
    from edgec.load.tflite_file import read_tflite_file

    measured = json.loads(MCU.read_text())["models"]
    rows = []
    for label, path in {"digits": sample, **FILES}.items():
        entry = measured[label]
        data, tfl = read_tflite_file(path)
        measured_ops = [(o["op"], o["output_shape"]) for o in entry["libs"]["cmsis_nn"]["ops"]]
        if measured_ops != [(op.name, list(tfl.tensors[op.outputs[0]].shape)) for op in tfl.ops]:
            continue  # not the network that was measured
        with tempfile.TemporaryDirectory(prefix="edgec-bench-fw-") as tmp:
            gen, c = emit_and_verify(data, tfl, "model", path.name, probe_inputs(tfl, 100), mcu="require")
            timed = toolchain.measure_mcu(gen, probe_inputs(tfl, 3), Path(tmp), ops=len(tfl.ops))
        cmsis, ref = entry["libs"]["cmsis_nn"], entry["libs"]["ref"]
        mcu = c["mcu"]
        per_op = np.median(np.array(timed.per_op), axis=0)
        ops = []
        for k, op in enumerate(tfl.ops):
            theirs = cmsis["ops"][k]["instructions"] - cmsis["profiler_calibration"]["in_event_instructions"]
            ops.append({"op": op.name, "c": int(per_op[k]), "tflm_cmsis_nn": int(theirs),
                        "ratio": round(float(per_op[k]) / theirs, 3)})
        flash_tflm = cmsis["flash"]  # text + rodata + data, its test inputs already left out
        ram_tflm = cmsis["ram"] - cmsis["arena_in_image"] + cmsis["min_arena"]  # its stack is in "ram"
        rows.append({
            "model": label, "bit_exact_host": c["host"]["samples"], "bit_exact_qemu": mcu["samples"],
            "instructions": mcu["instructions_per_inference"],
            "tflm_cmsis_nn_instructions": int(cmsis["invoke_instructions"]),
            "tflm_reference_instructions": int(ref["invoke_instructions"]),
            "instructions_vs_cmsis_nn": round(mcu["instructions_per_inference"] / cmsis["invoke_instructions"], 3),
            "instructions_vs_reference": round(mcu["instructions_per_inference"] / ref["invoke_instructions"], 3),
            "ram": mcu["ram_total_bytes"], "tflm_ram": ram_tflm,
            "ram_ratio": round(mcu["ram_total_bytes"] / ram_tflm, 3),
            "flash": mcu["flash_bytes"], "tflm_flash": flash_tflm,
            "flash_ratio": round(mcu["flash_bytes"] / flash_tflm, 3),
            "arena": gen.arena_bytes, "ops_in_place": len(gen.in_place), "scratch_bytes": sum(gen.scratch.values()),
            "per_op": ops,
        })
    return rows


def markdown(rows: list[dict]) -> list[str]:
    header = ["model", "instructions C / TFLM+CMSIS-NN", "C / TFLM reference", "RAM C / TFLM", "flash C / TFLM",
              "C instructions", "TFLM+CMSIS-NN", "C RAM (B)", "TFLM RAM (B)", "C flash (B)", "TFLM flash (B)",
              "outputs in place", "bit-exact (host, QEMU inputs)"]
    cells = [[r["model"], f"**{r['instructions_vs_cmsis_nn']}x**", f"{r['instructions_vs_reference']}x",
              f"**{r['ram_ratio']}x**", f"**{r['flash_ratio']}x**", f"{r['instructions']:,}",
              f"{r['tflm_cmsis_nn_instructions']:,}", f"{r['ram']:,}", f"{r['tflm_ram']:,}", f"{r['flash']:,}",
              f"{r['tflm_flash']:,}", r["ops_in_place"], f"{r['bit_exact_host']}, {r['bit_exact_qemu']}"]
             for r in rows]
    lines = ["## Generated C vs a real TFLite-Micro + CMSIS-NN firmware (Cortex-M4F, QEMU -icount)", "",
             *md_table(header, cells), ""]
    for r in rows:
        lines.append(f"Per op, {r['model']} (C / TFLM+CMSIS-NN instructions): "
                     + ", ".join(f"{k} {o['op']} {o['ratio']}x" for k, o in enumerate(r["per_op"])) + ".")
    lines += ["", "TFLite-Micro's side is `../shared/mcu/tflm_cortex_m4.json` (measured once on the real firmware, "
              "generic kernel registration); the C side is measured in this run. TFLM RAM = the firmware's data + "
              "bss + its measured stack, with the arena at the smallest size that allocates on the M4; "
              "TFLM flash = its flash without the embedded test inputs. With the int8-only registration edgec's "
              "headers now emit, that firmware's runtime is 28-36 KB smaller (the shared README's range), so "
              "the flash ratio against such a firmware is higher than shown.", ""]
    return lines
