"""Compile an int8 model for an Arm Ethos-U NPU with Vela and read its estimates.

Vela (``ethos-u-vela``) runs in a child process: it prints a long console
summary and may fail in ways that should not take edgec down with it. Its
figures come from the summary CSV it writes beside the compiled model (the
console shows neither cycles nor inference time). The ops that stay on the
CPU are read back from the compiled flatbuffer: every op that is not Vela's
``ethos-u`` custom op runs on the Cortex-M through TFLite-Micro.
"""

from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys
import tempfile
from pathlib import Path

from edgec.errors import RuntimeCheckError
from edgec.load.tflite_file import TFLiteModel, read_tflite
from edgec.runtime.micro import Arena

_RUN_VELA = "import sys; from ethosu.vela.vela import main; sys.exit(main())"
_TIMEOUT_S = 600


@dataclasses.dataclass(frozen=True)
class VelaResult:
    """What Vela reports for one compiled model."""

    model: bytes  # the compiled flatbuffer, which is what the firmware embeds
    compiled: TFLiteModel  # ``model`` parsed
    sram_bytes: int
    flash_bytes: int
    npu_cycles: int
    inference_ms: float
    npu_clock_hz: float
    macs: int
    npu_ops: int
    cpu_ops: tuple[dict, ...]  # {"index", "op", "tensor"} for each op left to the CPU
    config: dict

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("model", "compiled")}
        d["model_bytes"] = len(self.model)
        d["cpu_ops"] = [dict(row) for row in self.cpu_ops]
        d["config"] = dict(self.config)
        return d


def _kib(text: str) -> int:
    return int(round(float(text) * 1024))


def compile_model(data: bytes, accelerator: str, system_config: str, memory_mode: str,
                  config_file: str = "Arm/vela.ini") -> VelaResult:
    """Run Vela on ``data`` and return its compiled model and summary figures.

    Raises:
        RuntimeCheckError: Vela is not installed, fails, or writes no summary.
    """
    try:
        import ethosu.vela  # noqa: F401  (only to fail early with a clear message)
    except ImportError:
        raise RuntimeCheckError("Ethos-U targets need Arm Vela; install it with "
                                "'pip install ethos-u-vela'") from None
    config = {"accelerator": accelerator, "system_config": system_config, "memory_mode": memory_mode,
              "config_file": config_file}
    with tempfile.TemporaryDirectory(prefix="edgec-vela-") as tmp:
        src = Path(tmp) / "model.tflite"
        src.write_bytes(data)
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-c", _RUN_VELA, str(src), "--accelerator-config", accelerator,
               "--config", config_file, "--system-config", system_config, "--memory-mode", memory_mode,
               "--output-dir", str(out)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT_S, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise RuntimeCheckError(f"Vela did not finish within {_TIMEOUT_S} s; "
                                    "try a smaller model or another target") from None
        compiled = out / "model_vela.tflite"
        summaries = sorted(out.glob("model_summary_*.csv"))
        if proc.returncode != 0 or not compiled.exists() or not summaries:
            lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
            reason = next((ln for ln in reversed(lines) if "error" in ln.lower()), lines[-1] if lines else "")
            raise RuntimeCheckError(f"Vela could not compile the model for {accelerator}: {reason[:300]}; "
                                    "check that the model is full-int8 and uses ops Ethos-U supports")
        with summaries[0].open(newline="") as fh:
            row = next(csv.DictReader(fh))
        model = compiled.read_bytes()
    tfl = read_tflite(model, "Vela output")
    cpu = tuple({"index": op.index, "op": op.name, "tensor": tfl.tensors[op.outputs[0]].name if op.outputs else ""}
                for op in tfl.ops if not op.name.startswith("CUSTOM"))
    return VelaResult(
        model=model,
        compiled=tfl,
        sram_bytes=_kib(row["sram_memory_used"]),
        flash_bytes=_kib(row["off_chip_flash_memory_used"]) + _kib(row["on_chip_flash_memory_used"]),
        npu_cycles=int(float(row["cycles_total"])),
        inference_ms=1000.0 * float(row["inference_time"]),
        npu_clock_hz=float(row["core_clock"]),
        macs=int(float(row["nn_macs"])),
        npu_ops=len(tfl.ops) - len(cpu),
        cpu_ops=cpu,
        config=config,
    )


def npu_arena(npu: VelaResult, cpu_arena: Arena) -> Arena:
    """The tensor arena the Ethos-U firmware needs: Vela's SRAM plan plus TFLite-Micro's structures.

    TFLite-Micro's Python package cannot load Vela's output (it has no
    ``ethos-u`` kernel), so the runtime structures are those measured for the
    uncompiled model, which has more ops and tensors: an upper bound.
    """
    return Arena(bytes=npu.sram_bytes + cpu_arena.tail_bytes, head_bytes=npu.sram_bytes,
                 tail_bytes=cpu_arena.tail_bytes, recorded_bytes=0,
                 host=f"Vela SRAM plan ({npu.config['memory_mode']}) + TFLite-Micro tail of the "
                      "uncompiled model on the x86-64 host (upper bound)")
