"""The build report: one dict-backed object rendered as JSON or terminal text.

``report.json`` is API: its keys are versioned by ``schema_version`` and
covered by tests. Timing fields are collected under ``timing`` so the rest is
reproducible byte for byte.
"""

from __future__ import annotations

import dataclasses
import json

SCHEMA_VERSION = 1


def _kib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:.1f} KiB"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def format_quantity(x: float, unit: str) -> str:
    """A budget value for people: bytes as KiB, milliseconds, fractions as percent."""
    if unit == "bytes":
        return _kib(int(x))
    if unit == "ms":
        return f"{x:.1f} ms"
    return f"{100 * x:.2f} %"


@dataclasses.dataclass
class Report:
    """Everything a build measured. ``ok`` is False when any budget failed."""

    model: dict
    target: dict
    tflite: dict
    measurements: dict
    command: str = "build"
    data: dict | None = None
    verification: dict | None = None
    artifacts: dict = dataclasses.field(default_factory=dict)
    budgets: list = dataclasses.field(default_factory=list)
    stages: list = dataclasses.field(default_factory=list)
    fit: dict | None = None  # --fit: the channel fraction chosen and every trial
    warnings: list = dataclasses.field(default_factory=list)
    timing: dict = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(b.get("ok", True) for b in self.budgets)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict:
        d = {"schema_version": SCHEMA_VERSION}
        d.update(dataclasses.asdict(self))
        d["ok"] = self.ok
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def _stage_lines(self) -> list[str]:
        lines = []
        for row in self.stages:
            if row["name"] == "int8":
                acc = f", int8 acc {100 * row['int8_accuracy']:.1f} %" if "int8_accuracy" in row else ""
                lines.append(f"  stage     {'int8':<8s} {row['tflite_bytes']:,} B .tflite, gzip "
                             f"{row['tflite_gzip_bytes']:,} B, weight sparsity "
                             f"{100 * row['int8_weight_sparsity']:.1f} %{acc}")
                continue
            acc = f", float acc {100 * row['float_accuracy']:.1f} %" if "float_accuracy" in row else ""
            uniq = row.get("unique_values_per_kernel")
            clusters = f", <= {max(uniq.values())} values/kernel" if uniq else ""
            lines.append(f"  stage     {row['name']:<8s} {row['seconds']:6.1f} s, {row['parameters']:,} params "
                         f"({row['nonzero_parameters']:,} non-zero, kernel sparsity "
                         f"{100 * row['kernel_sparsity']:.1f} %){clusters}, float gzip "
                         f"{row['float_weights_gzip_bytes']:,} B{acc}")
            lines += self._structure_lines(row)
        return lines

    @staticmethod
    def _structure_lines(row: dict) -> list[str]:
        """What a channels / lowrank stage did to what ships, and which layers it left alone."""
        lines = []
        ratio = (row.get("footprint") or {}).get("ratio")
        if ratio:
            names = {"tflite_bytes": "int8 bytes", "macs": "MACs", "arena_bytes": "arena"}
            lines.append("            " + ", ".join(f"{label} {ratio[k]:.2f}x" for k, label in names.items()
                                                     if k in ratio) + " of the model before this stage")
        left = row.get("left_unpruned") or row.get("left_unfactorized") or {}
        if left:
            lines.append(f"            left as they were: {', '.join(left)}")
        return lines

    def _fit_lines(self) -> list[str]:
        if not self.fit:
            return []
        names = sorted({b for t in self.fit["trials"] for b in t["budgets"]})
        return [f"  fit       channel fraction {self.fit['fraction']:g}: the least found that meets "
                f"{', '.join(names)} ({len(self.fit['trials'])} trials)"]

    def to_text(self) -> str:
        """A compact human summary (no colour)."""
        m, t, v, meas = self.model, self.tflite, self.verification, self.measurements
        lines = [f"edgec {self.command}: {m['name']} -> {self.target['name']}"]
        lines += [f"  warning: {w}" for w in self.warnings]
        params = next((r["parameters"] for r in reversed(self.stages) if "parameters" in r), m["parameters"])
        lines.append(f"  model     {params:,} parameters, {meas['macs']:,} MACs")
        lines.append(f"  int8      {t['bytes']:,} bytes ({_kib(t['bytes'])}), ops: "
                     + ", ".join(f"{k} x{n}" for k, n in t["ops"].items()))
        if meas.get("arena"):
            lines.append(f"  arena     {meas['arena_bytes']:,} bytes (head {meas['arena']['head_bytes']:,} + "
                         f"tail {meas['arena']['tail_bytes']:,}; TFLite-Micro, 64-bit host)")
        if meas.get("npu"):
            npu = meas["npu"]
            lines.append(f"  npu       {npu['config']['accelerator']} (Vela): {npu['npu_ops']} NPU op(s), "
                         f"{len(npu['cpu_ops'])} on the CPU; SRAM {npu['sram_bytes']:,} bytes, "
                         f"compiled model {npu['model_bytes']:,} bytes")
        if "latency_ms" in meas:
            model = meas.get("latency_model", {})
            note = "" if model.get("calibrated") else " (uncalibrated estimate)"
            kern = f", {model['kernels']} kernels" if "kernels" in model else ""
            lines.append(f"  latency   {meas['latency_ms']:.3g} ms estimated on {self.target['name']}{kern}{note}")
        if "host_latency_ms" in meas:
            lines.append(f"  host      {meas['host_latency_ms']:.3f} ms median LiteRT invoke on this machine")
        lines += self._fit_lines()
        lines += self._stage_lines()
        lines += self._verification_lines(v) if v else []
        for b in self.budgets:
            lines.append(f"  budget    {b['name']:<14s} {format_quantity(b['value'], b['unit']):>12s} / "
                         f"{format_quantity(b['limit'], b['unit']):>12s}  {'ok' if b['ok'] else 'EXCEEDED'}")
        for name, path in self.artifacts.items():
            lines.append(f"  wrote     {path}")
        return "\n".join(lines) + "\n"

    @staticmethod
    def _verification_lines(v: dict) -> list[str]:
        lines = []
        parts = []
        if "top1_agreement" in v:
            parts.append(f"top-1 agreement {_pct(v['top1_agreement'])}")
        parts.append(f"output error {v['output_error_steps_mean']:.2f} steps mean, "
                     f"{v['output_error_steps_max']:.0f} max")
        parts.append(f"TFLite-Micro vs LiteRT {v['micro_vs_litert_max_lsb']} LSB")
        lines.append(f"  verify    {v['samples']} samples: " + "; ".join(parts))
        if "int8_accuracy" in v:
            lines.append(f"  accuracy  float {_pct(v['float_accuracy'])}, int8 {_pct(v['int8_accuracy'])}")
        return lines
