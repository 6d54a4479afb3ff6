"""Compile and run generated C: on the host (gcc) and on an emulated Cortex-M4
(arm-none-eabi-gcc, QEMU's mps2-an386 with semihosting and -icount).

Sizes come from the linked ELF: every symbol the model's object file defines,
plus what it pulls from the C library, split into flash (.text, .rodata and the
load image of .data) and RAM (.data, .bss); the stack is measured by painting.
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import numpy as np

from edgec.errors import RuntimeCheckError

C_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
QEMU_MACHINE = "mps2-an386"
BOARD_MEMORY = "4 MiB of code memory and 4 MiB of data memory"  # harness/mps2_an386.ld
TIMER_HZ = 25_000_000  # mps2-an386's APB timers run on the 25 MHz system clock
ICOUNT_SHIFT = 0        # -icount shift=0: one guest instruction per virtual nanosecond


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeCheckError(f"{name} is not installed; install Debian's {package} "
                                f"(apt-get install {package}), or skip this check")
    return path


def _harness(file: str) -> str:
    return resources.files("edgec.emit.codegen").joinpath("c", "harness", file).read_text()


def _run(cmd: list[str], what: str, timeout: float, **kw) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        raise RuntimeCheckError(f"{what} did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        first = next((line for line in err if "error" in line), err[0] if err else f"exit {proc.returncode}")
        raise RuntimeCheckError(f"{what} failed: {first.strip()}")
    return proc


def _defines(gen) -> list[str]:
    up = gen.name.upper()
    return [f'-DMODEL_HEADER="{gen.name}_infer.h"', f"-DINPUT_SIZE={up}_INFER_PACKED_INPUT_SIZE",
            f"-DOUTPUT_SIZE={up}_INFER_PACKED_OUTPUT_SIZE", f"-DINFER={up}_INFER_PACKED"]


def write_sources(gen, workdir: Path) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in gen.files.items():
        (workdir / name).write_text(text)
    return workdir / f"{gen.name}_infer.c"


def host_shift_flags() -> list[str]:
    """Where TFLite's own kernels shift by 32 or more (undefined in C++), TFLite-Micro's host build takes
    the count modulo 32 on x86-64 and AArch64; ``c/fixedpoint.c`` does the same under this define, so
    that the host build of the C can be compared with TFLite-Micro's value by value."""
    return ["-DEC_SHIFT_COUNT_MOD_32"] if platform.machine().lower() in {"x86_64", "amd64", "aarch64",
                                                                          "arm64"} else []


def build_host(gen, workdir: Path, extra_flags: tuple[str, ...] = (), tflite_host_shifts: bool = True) -> Path:
    """The generated model plus a stdin/stdout harness, built with the host's gcc at
    ``-std=c99 -Wall -Wextra -Werror -pedantic -O2``: with ``tflite_host_shifts`` (the default, to compare
    with TFLite-Micro on this machine) as TFLite-Micro's host build computes its undefined shifts, else as
    a Cortex-M computes them (what the written C does)."""
    cc = _tool("gcc", "gcc")
    if tflite_host_shifts:
        extra_flags = (*host_shift_flags(), *extra_flags)
    model_c = write_sources(gen, workdir)
    (workdir / "host_main.c").write_text(_harness("host_main.c"))
    exe = workdir / f"{gen.name}_host"
    _run([cc, *C_FLAGS, "-O2", *extra_flags, *_defines(gen), "-I", str(workdir), str(model_c),
          str(workdir / "host_main.c"), "-o", str(exe)], "compiling the generated C with gcc", 300)
    return exe


def run_host(exe: Path, inputs_q: np.ndarray, output_size: int) -> np.ndarray:
    """int8 outputs of the host build for each row of ``inputs_q``."""
    data = np.ascontiguousarray(inputs_q.astype(np.int8)).tobytes()
    proc = _run([str(exe)], "running the generated C on the host", 600, input=data)
    out = np.frombuffer(proc.stdout, np.int8)
    if out.size != len(inputs_q) * output_size:
        raise RuntimeCheckError(f"the host build wrote {out.size} output bytes for {len(inputs_q)} inputs")
    return out.reshape(len(inputs_q), output_size)


@dataclasses.dataclass(frozen=True)
class McuRun:
    """What one QEMU run measured."""

    outputs: np.ndarray              # int8, one row per input
    instructions: list[int]          # per inference
    instructions_per_tick: float     # measured by the calibration loop
    stack_bytes: int                 # deepest stack use of any inference
    flash_bytes: int                 # the model's .text + .rodata (+ .data image), from the ELF
    ram_bytes: int                   # the model's .data + .bss, from the ELF
    code_bytes: int                  # .text only (kernels and the infer function)
    library: list[str]               # C library functions the model pulled in
    per_op: list[list[int]] | None = None  # instructions of each op, per inference (when profiled)

    def to_dict(self) -> dict:
        return {"instructions": self.instructions, "instructions_per_tick": self.instructions_per_tick,
                "stack_bytes": self.stack_bytes, "flash_bytes": self.flash_bytes,
                "ram_bytes": self.ram_bytes, "code_bytes": self.code_bytes, "library": self.library,
                **({"per_op_instructions": self.per_op} if self.per_op else {})}


def _inputs_c(gen, inputs_q: np.ndarray) -> str:
    rows = []
    for x in inputs_q.astype(np.int8):
        rows.append("    {" + ", ".join(str(int(v)) for v in x.reshape(-1)) + "}")
    up = gen.name.upper()
    return (f'#include <stdint.h>\n#include "{gen.name}_infer.h"\n'
            f"const int8_t h_inputs[{len(rows)}][{up}_INFER_PACKED_INPUT_SIZE] = {{\n" + ",\n".join(rows) + "\n};\n"
            f"const int h_count = {len(rows)};\n")


def build_mcu(gen, inputs_q: np.ndarray, workdir: Path, opt: str = "-O2",
              ops: int = 0) -> tuple[Path, Path]:
    """A bare-metal mps2-an386 image of the model, the harness and ``inputs_q``;
    returns (ELF, the model's object file). With ``ops`` (the model's op count) the
    model records the timer after each op and the harness prints the per-op ticks."""
    cc = _tool("arm-none-eabi-gcc", "gcc-arm-none-eabi")
    model_c = write_sources(gen, workdir)
    profile: list[str] = []
    if ops:
        (workdir / "ec_profile.h").write_text(
            f"#include <stdint.h>\nextern volatile uint32_t h_op_ticks[{ops}];\n"
            f"#define {gen.name.upper()}_OP_DONE(k) (h_op_ticks[k] = *(volatile uint32_t *)0x40000004u)\n")
        profile = ["-include", str(workdir / "ec_profile.h")]
    (workdir / "mcu_main.c").write_text(_harness("mcu_main.c"))
    (workdir / "mps2_an386.ld").write_text(_harness("mps2_an386.ld"))
    (workdir / "inputs.c").write_text(_inputs_c(gen, inputs_q))
    flags = [opt, *ARM_FLAGS, "-ffunction-sections", "-fdata-sections", "-I", str(workdir)]
    obj = workdir / f"{gen.name}.o"
    _run([cc, *C_FLAGS, *flags, *profile, "-c", str(model_c), "-o", str(obj)],
         "compiling the generated C with arm-none-eabi-gcc", 600)
    elf = workdir / f"{gen.name}.elf"
    # the harness holds startup code (a vector table of function pointers): no -pedantic
    per_op = [f"-DPER_OP={ops}", "-DEC_PROFILE"] if ops else []
    link = [cc, "-std=c99", "-Wall", "-Wextra", *flags, *_defines(gen), *per_op, "-nostartfiles", "--specs=nano.specs",
            "-T", str(workdir / "mps2_an386.ld"), "-Wl,--gc-sections", str(obj),
            str(workdir / "mcu_main.c"), str(workdir / "inputs.c"), "-o", str(elf)]
    try:
        proc = subprocess.run(link, capture_output=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise RuntimeCheckError("linking the Cortex-M4 image did not finish within 600 s") from None
    if proc.returncode != 0 and b"overflowed by" in proc.stderr:
        raise RuntimeCheckError(f"the generated C for {gen.name} does not fit {QEMU_MACHINE}'s {BOARD_MEMORY} "
                                "(its code and weights, or its buffers), so it runs on the host only")
    if proc.returncode != 0:
        _run(link, "linking the Cortex-M4 image (libnewlib-arm-none-eabi)", 600)
    return elf, obj


def _symbols(nm: str, path: Path, defined: bool = True) -> dict[str, tuple[str, int]]:
    args = [nm, "-S", "-t", "d"] + (["--defined-only"] if defined else ["-u"]) + [str(path)]
    out = _run(args, f"reading symbols of {path.name}", 60).stdout.decode()
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if defined and len(parts) == 4:
            table[parts[3]] = (parts[2], int(parts[1]))
        elif not defined and parts:
            table[parts[-1]] = ("U", 0)
    return table


def model_footprint(elf: Path, obj: Path) -> tuple[int, int, int, list[str]]:
    """(flash, RAM, code) bytes of the model's symbols in the linked ELF, and the C
    library functions it uses (their code counted as flash). Sizes come from the ELF,
    kinds from the object file (the image merges .rodata into its .text)."""
    nm = _tool("arm-none-eabi-nm", "binutils-arm-none-eabi")
    linked = _symbols(nm, elf)
    own = _symbols(nm, obj)
    library = sorted(n for n in _symbols(nm, obj, defined=False) if n in linked)
    flash = ram = code = 0
    for name in [*own, *library]:
        if name not in linked:
            continue
        size = linked[name][1]
        kind = own.get(name, ("t", 0))[0].lower()
        if kind == "t":
            code += size
            flash += size
        elif kind == "r":
            flash += size
        elif kind == "d":
            flash += size
            ram += size
        elif kind == "b":
            ram += size
    return flash, ram, code, library


def run_qemu(elf: Path, count: int, output_size: int, timeout: float = 900):
    """Run the image under QEMU with semihosting and ``-icount``: (outputs, instructions
    per inference, calibration instructions per tick, deepest stack use, per-op instructions
    per inference or None)."""
    qemu = _tool("qemu-system-arm", "qemu-system-arm")
    log = elf.with_suffix(".semihosting.txt")
    log.unlink(missing_ok=True)
    _run([qemu, "-M", QEMU_MACHINE, "-nographic", "-monitor", "none", "-serial", "none",
          "-chardev", f"file,id=semihosting,path={log}",
          "-semihosting-config", "enable=on,target=native,chardev=semihosting",
          "-icount", f"shift={ICOUNT_SHIFT},align=off,sleep=off", "-kernel", str(elf)],
         f"running {elf.name} under qemu-system-arm -M {QEMU_MACHINE}", timeout, stdin=subprocess.DEVNULL)
    lines = log.read_text("ascii", "replace").splitlines() if log.exists() else []
    if any(line.startswith("F ") for line in lines):
        raise RuntimeCheckError(f"{elf.name} faulted under QEMU")
    calib = next((line.split() for line in lines if line.startswith("C ")), None)
    if calib is None:
        raise RuntimeCheckError(f"{elf.name} printed nothing under QEMU; is semihosting enabled?")
    per_tick = int(calib[2], 16) / int(calib[1], 16)
    ticks = [line.split() for line in lines if line.startswith("T ")]
    outs = [line.split()[1:] for line in lines if line.startswith("O ")]
    if len(ticks) != count or len(outs) != count:
        raise RuntimeCheckError(f"{elf.name} reported {len(outs)} of {count} inferences under QEMU")
    rows = []
    for words in outs:
        raw = b"".join(int(w, 16).to_bytes(4, "big") for w in words)
        rows.append(np.frombuffer(raw[:output_size], np.int8))
    instructions = [round(int(t[1], 16) * per_tick) for t in ticks]
    stack = max(int(t[2], 16) for t in ticks)
    profiles = [[round(int(w, 16) * per_tick) for w in line.split()[1:]] for line in lines if line.startswith("P ")]
    return np.stack(rows), instructions, per_tick, stack, profiles or None


def measure_mcu(gen, inputs_q: np.ndarray, workdir: Path, opt: str = "-O2", ops: int = 0) -> McuRun:
    """Build for the Cortex-M4, run ``inputs_q`` under QEMU, read sizes from the ELF. With ``ops``
    (the model's op count), a second image that times each op gives ``per_op``; sizes and the
    whole-inference counts come from the image without the timing."""
    elf, obj = build_mcu(gen, inputs_q, workdir, opt)
    flash, ram, code, library = model_footprint(elf, obj)
    outputs, instructions, per_tick, stack, _ = run_qemu(elf, len(inputs_q), gen.output_bytes)
    per_op = None
    if ops:
        timed, _ = build_mcu(gen, inputs_q, workdir / "per_op", opt, ops)
        per_op = run_qemu(timed, len(inputs_q), gen.output_bytes)[4]
    return McuRun(outputs, instructions, per_tick, stack, flash, ram, code, library, per_op)
