"""Generated C vs TFLite-Micro, per model: RAM, flash, instructions per inference.

Both sides are measured in this run. The C side is built with arm-none-eabi-gcc
-O2 for a Cortex-M4F and run under QEMU (mps2-an386, -icount): flash and static
RAM from the ELF, stack by painting, instructions counted by the emulator. The
TFLite-Micro side is its arena, found by TFLite-Micro itself (smallest arena
that allocates, 64-bit host build), and its runtime's own code.

TFLite-Micro cannot be built for a Cortex-M here (its source tree is in no
package registry this project reaches), so its runtime's code is measured in
the x86-64 build the tflite-micro wheel ships: the framework and the kernels of
the model's ops that a linker keeps (``tflm_runtime.py`` says how). To compare
like with like, the generated C is measured the same way, built for x86-64 with
the host's gcc; the flash ratio "with runtime" is that x86-64 comparison.

What the TFLite-Micro side still leaves out, so that the ratios favour it: its
RAM is the arena (tensors plus the interpreter's per-tensor and per-node
structures, 64-bit pointers) and its runtime's static data, without the
interpreter object or its stack; the C side's RAM includes its measured stack.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import tflm_runtime
from edgec.report.markdown import md_table


def run(models: list[tuple[str, Path]]) -> list[dict]:
    from edgec.check import targets
    from edgec.emit.codegen.crosscheck import emit_and_verify, probe_inputs
    from edgec.load.tflite_file import read_tflite_file
    from edgec.runtime import micro

    rows = []
    library = tflm_runtime.Binary(tflm_runtime.runtime_library())
    for label, path in models:
        data, tfl = read_tflite_file(path)
        arena = micro.measure_arena(data)
        gen, c = emit_and_verify(data, tfl, "model", path.name, probe_inputs(tfl, 100), mcu="require",
                                 target=targets.get("cortex-m4"))
        mcu = c["mcu"]
        runtime, with_compression = tflm_runtime.tflm_footprint(list(tfl.op_counts), library)
        with tempfile.TemporaryDirectory(prefix="edgec-bench-x86-") as tmp:
            c_x86, _ = tflm_runtime.c_footprint(gen, Path(tmp))
        tflm_ram = arena.bytes + runtime.ram
        rows.append({
            "model": label, "macs": tfl.macs, "ops": sorted(tfl.op_counts), "tflite_bytes": tfl.nbytes,
            "tflm_arena_bytes": arena.bytes, "tflm_runtime_x86": runtime.to_dict(),
            "tflm_compression_x86_bytes": with_compression.flash - runtime.flash,
            "c_x86": c_x86.to_dict(),
            "c_arena_bytes": gen.arena_bytes, "c_stack_bytes": mcu["stack_bytes"],
            "c_ram_bytes": mcu["ram_total_bytes"], "c_flash_bytes": mcu["flash_bytes"],
            "c_code_bytes": mcu["code_bytes"], "instructions": mcu["instructions_per_inference"],
            "instructions_per_mac": round(mcu["instructions_per_mac"], 2),
            "bit_exact_host": c["host"]["samples"], "bit_exact_qemu": mcu["samples"],
            "ram_ratio": round(mcu["ram_total_bytes"] / tflm_ram, 3),
            "arena_ratio": round(gen.arena_bytes / arena.bytes, 3),
            "flash_ratio": round(mcu["flash_bytes"] / tfl.nbytes, 3),
            "flash_ratio_with_runtime_x86": round(c_x86.flash / (tfl.nbytes + runtime.flash), 3),
        })
    return rows


def markdown(rows: list[dict]) -> list[str]:
    header = ["model", "C RAM / TFLM RAM", "C arena / TFLM arena", "C flash / .tflite bytes (M4)",
              "C flash / (.tflite + TFLM runtime) (x86-64)", "C RAM (B)", "TFLM arena (B)", "C flash M4 (B)",
              ".tflite (B)", "C flash x86-64 (B)", "TFLM runtime x86-64 (B)", "instructions / inference", "MACs",
              "instr / MAC", "bit-exact (host, QEMU inputs)"]
    cells = [[r["model"], f"**{r['ram_ratio']}x**", f"{r['arena_ratio']}x", f"{r['flash_ratio']}x",
              f"**{r['flash_ratio_with_runtime_x86']}x**", f"{r['c_ram_bytes']:,}", f"{r['tflm_arena_bytes']:,}",
              f"{r['c_flash_bytes']:,}", f"{r['tflite_bytes']:,}", f"{r['c_x86']['flash']:,}",
              f"{r['tflm_runtime_x86']['flash']:,}", f"{r['instructions']:,}", f"{r['macs']:,}",
              r["instructions_per_mac"], f"{r['bit_exact_host']}, {r['bit_exact_qemu']}"] for r in rows]
    lines = ["## Generated C vs TFLite-Micro (Cortex-M4F under QEMU mps2-an386)", "", *md_table(header, cells)]
    lines += ["", "**RAM.** C RAM = planned activation buffer + measured stack + the caller's input and output "
              "buffers (Cortex-M4 ELF and QEMU). TFLM RAM = its arena (smallest that allocates, 64-bit host) + its "
              "runtime's static data (" + ", ".join(f"{r['tflm_runtime_x86']['ram']} B" for r in rows) + "); its "
              "stack and interpreter object are not counted, so the RAM ratio is an upper bound for the generated C.",
              "",
              "**Flash.** On the Cortex-M4, C flash = the model's code and constants in the linked ELF "
              "(arm-none-eabi-gcc -O2); TFLite-Micro cannot be built for Cortex-M here (its source is in no package "
              "registry this machine reaches), so the M4 column compares with the .tflite bytes alone. The runtime's "
              "own code is measured in the x86-64 TFLite-Micro library the tflite-micro wheel ships (GCC, reference "
              "kernels): `benchmarks/tflm_runtime.py` walks its symbol table, code and relocations from what a "
              "firmware calls (MicroInterpreter's constructor, AllocateTensors, Invoke, input, output; each op's "
              "Register_ and parser; the op resolver's lookups) and counts what a linker with --gc-sections would "
              "keep: code, read-only data and vtables, not unwind tables or the C/C++ libraries. Tensor decompression, "
              "which the wheel is built with and a default firmware is not, is left out ("
              + ", ".join(f"{r['tflm_compression_x86_bytes']:,} B" for r in rows) + "); the kernels' own branches "
              "for compressed tensors stay in. The generated C is measured by the same walk, built for x86-64 with "
              "the host's gcc -O2 -fPIC, so the x86-64 column compares like with like; the tests check the walk "
              "against the C object's section sizes. Runtime code per model (x86-64): "
              + ", ".join(f"{r['model'].split(' (')[0]} {r['tflm_runtime_x86']['code']:,} B code + "
                          f"{r['tflm_runtime_x86']['rodata']:,} B read-only data" for r in rows) + ".",
              "",
              "**Instructions** are counted by QEMU (-icount, calibrated against a loop of known length each run); "
              "cycles on a real Cortex-M4 are higher (multi-cycle loads, 64-bit multiplies, branches).", ""]
    return lines
