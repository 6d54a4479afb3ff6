"""The terminal summary of a build or check report (stderr)."""

from __future__ import annotations

from edgec.report.tables import (
    BUDGET_HEADER,
    STAGE_HEADER,
    budget_rows,
    kib,
    lut_fact,
    pct,
    stage_rows,
    table,
    worst_layers,
)

_GREEN, _RED, _YELLOW, _RESET = "\033[32m", "\033[31m", "\033[33m", "\033[0m"


def render(r: dict, color: bool = False) -> str:
    def paint(text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if color else text

    m, t, v, meas = r["model"], r["tflite"], r.get("verification"), r["measurements"]
    lines = [f"edgec {r['command']}: {m['name']} -> {r['target']['name']}"]
    lines += [paint(f"  warning: {w}", _YELLOW) for w in r["warnings"]]
    params = next((s["parameters"] for s in reversed(r["stages"]) if "parameters" in s), m["parameters"])
    lines.append(f"  model     {params:,} parameters, {meas['macs']:,} MACs")
    kind = "16x8" if t.get("input", {}).get("dtype") == "int16" else "int8"
    lines.append(f"  {kind:<9} {t['bytes']:,} bytes ({kib(t['bytes'])}), ops: "
                 + ", ".join(f"{k} x{n}" for k, n in t["ops"].items()))
    if (lut := lut_fact(t)) is not None:
        lines.append(f"  lut       {lut}")
    if meas.get("arena"):
        a = meas["arena"]
        kept = a["head_bytes"] + a["tail_bytes"]
        extra = meas["arena_bytes"] - kept
        why = (f" + {extra:,} needed only while allocating (kernels' temporary buffers, alignment)"
               if extra > 0 else "")
        lines.append(f"  arena     {meas['arena_bytes']:,} bytes = head {a['head_bytes']:,} (activations) + "
                     f"tail {a['tail_bytes']:,} (runtime structures){why}; TFLite-Micro, 64-bit host")
        if a.get("arena_bytes_32bit"):
            lines.append(f"            about {a['arena_bytes_32bit']:,} bytes on a 32-bit MCU (estimated from the "
                         "allocation record; the headers keep the measured figure)")
    if rf := meas.get("runtime_flash"):
        saving = rf.get("int8_registration_saving")
        note = (f"; registering the int8 kernels, as edgec's headers do, saved {kib(saving[0])}-{kib(saving[1])} "
                "on the measured firmware" if saving else "")
        lines.append(f"  runtime   {rf['bytes']:,} bytes of TFLite-Micro flash = framework {rf['framework']:,} + "
                     + " + ".join(f"{k} {v:,}" + (" (no size of its own: the largest kernel's)"
                                                  if k in rf.get("not_measured", ()) else
                                                  " (measured apart from that firmware)"
                                                  if k in rf.get("measured_apart", ()) else "")
                                  for k, v in rf["kernels"].items())
                     + f" (fitted on a real firmware, ±{rf['error']:.0%}){note}")
    if meas.get("c"):
        lines += codegen_lines(meas["c"])
    if meas.get("npu"):
        npu = meas["npu"]
        lines.append(f"  npu       {npu['config']['accelerator']} (Vela): {npu['npu_ops']} NPU op(s), "
                     f"{len(npu['cpu_ops'])} on the CPU; SRAM {npu['sram_bytes']:,} bytes, "
                     f"compiled model {npu['model_bytes']:,} bytes")
    if "latency_ms" in meas:
        model = meas.get("latency_model", {})
        note = "" if model.get("calibrated") else " (uncalibrated estimate)"
        kern = f", {model['kernels']} kernels" if "kernels" in model else ""
        lo_hi = meas.get("latency_ms_range")
        band = f" ({lo_hi[0]:.3g}-{lo_hi[1]:.3g})" if lo_hi and lo_hi[1] > lo_hi[0] else ""
        lines.append(f"  latency   {meas['latency_ms']:.3g} ms{band} estimated on {r['target']['name']}{kern}{note}")
    if "host_latency_ms" in meas:
        lines.append(f"  host      {meas['host_latency_ms']:.3f} ms median LiteRT invoke on this machine")
    fit = r.get("fit")
    if fit:
        names = sorted({b for trial in fit["trials"] for b in trial["budgets"]})
        lines.append(f"  fit       channel fraction {fit['fraction']:g}: the least found that meets "
                     f"{', '.join(names)} ({len(fit['trials'])} trials)")
    if v:
        lines += _verification(v)
    if r["stages"]:
        lines.append("")
        lines += table(STAGE_HEADER, stage_rows(r["stages"]), right=(1, 2, 3))
        for s in r["stages"]:
            left = s.get("left_unpruned") or s.get("left_unfactorized")
            if left:
                lines.append(f"  {s['name']} left as they were: {', '.join(left)}")
    if r["budgets"]:
        lines.append("")
        rows = budget_rows(r["budgets"])
        out = table(BUDGET_HEADER, rows, right=(1, 2, 3))
        for i, row in enumerate(rows, start=1):
            status = row[-1]
            out[i] = out[i][: len(out[i]) - len(status)] + paint(status, _GREEN if status == "ok" else _RED)
        lines += out
    if r["artifacts"]:
        lines.append("")
        lines += [f"  wrote     {path}" for path in r["artifacts"].values()]
    if rep := r.get("reproducibility"):
        lines.append(f"  seed      {rep['seed']} ({', '.join(rep['seeded'])}); TensorFlow op determinism "
                     f"{'on' if rep['tf_op_determinism'] else 'OFF: training may differ between runs'}")
        if task := rep.get("distributed"):
            role = "the chief: it writes the artifacts" if task["chief"] else "not the chief: it wrote nothing"
            lines.append(f"  cluster   {task['type']} {task['index']} of {task['workers']} workers, {role}")
    return "\n".join(lines) + "\n"


def _interval(ci) -> str:
    return f"[{pct(ci[0])}, {pct(ci[1])}]"


def _verification(v: dict) -> list[str]:
    if "outputs" in v:  # several outputs: a line each, then the accuracy the budget judged
        lines = [f"  verify    {v['samples']} samples, {len(v['outputs'])} outputs, each judged by its own kind; "
                 f"the budgets judge the worst"]
        for name, o in v["outputs"].items():
            lines.append(f"    '{name}' " + "; ".join(p for p in _output_parts(o) if p))
        if "int8_accuracy" in v:
            lines.append(f"  accuracy  ('{v['worst_output']['accuracy_drop']}') float {pct(v['float_accuracy'])}, "
                         f"int8 {pct(v['int8_accuracy'])}")
        return lines
    lines = [f"  verify    {v['samples']} samples: " + "; ".join(p for p in _output_parts(v) if p)]
    if "int8_accuracy" in v:
        ci = (f" (95 % intervals on {v['accuracy_samples']} samples: float {_interval(v['float_accuracy_ci95'])}, "
              f"int8 {_interval(v['int8_accuracy_ci95'])}, drop {_interval(v['accuracy_drop_ci95'])})"
              if "accuracy_samples" in v else "")
        lines.append(f"  accuracy  float {pct(v['float_accuracy'])}, int8 {pct(v['int8_accuracy'])}{ci}")
    worst = worst_layers(v)
    if worst:
        lines.append("  worst     " + "; ".join(f"{w['layer']} ({w['op']}) {w['rmse_over_scale']:.2f} steps RMSE, "
                                                f"cos {w['cosine']:.5f}" for w in worst))
    elif "layers" in v:
        lines.append("  worst     per-layer quantization error not measured (the model is not post-training "
                     "quantized)")
    return lines


def _output_parts(v: dict) -> list[str]:
    """What one output's verification says: its kind, agreement, error, SNR, TFLite-Micro."""
    parts = [f"judged as {v.get('task', 'classifier')} ({v['task_reason']})" if "task_reason" in v else ""]
    if "top1_agreement" in v:
        parts.append(f"top-1 agreement {pct(v['top1_agreement'])}")
    parts.append(f"output error {v['output_error_steps_mean']:.2f} steps mean, {v['output_error_steps_max']:.0f} max")
    if v.get("output_snr_db") is not None and "top1_agreement" not in v:
        parts.append(f"SNR {v['output_snr_db']:.1f} dB, RMSE {v['output_rmse']:.3g}, "
                     f"cosine {v['output_cosine_mean']:.4f}")
    if v.get("anomaly_score_rank_correlation") is not None:
        parts.append(f"anomaly-score rank correlation {v['anomaly_score_rank_correlation']:.3f}")
    if v.get("micro_vs_litert_max_lsb") is None:
        parts.append("TFLite-Micro not run (it cannot load the model)")
    else:
        parts.append(f"TFLite-Micro vs LiteRT {v['micro_vs_litert_max_lsb']} LSB")
    return parts


def codegen_lines(c: dict) -> list[str]:
    """The generated C: its arena next to TFLite-Micro's, the bit-exactness checks, and what the
    Cortex-M4 build measured under QEMU."""
    tflm = f" (TFLite-Micro {c['tflm_arena_bytes']:,})" if c.get("tflm_arena_bytes") else ""
    host = c["host"]
    lines = [f"  C code    {', '.join(sorted(c['files']))}: arena {c['arena_bytes']:,} bytes{tflm}; "
             f"bit-exact with TFLite-Micro on {host['samples']} inputs (host gcc)"]
    if c.get("lut_ops"):
        bits = sorted({o["bits"] for o in c["lut_ops"]})
        lines.append(f"            weights of {len(c['lut_ops'])} ops as {'/'.join(map(str, bits))}-bit indices and "
                     "a table per channel, decoded before the product reads them")
    mcu = c.get("mcu", {})
    if "skipped" in mcu:
        lines.append(f"            Cortex-M4 build not run: {mcu['skipped']}")
    else:
        latency = f", {mcu['latency_ms']:.3g} ms at 1 instr/cycle" if mcu.get("latency_ms") else ""
        per_mac = f" ({mcu['instructions_per_mac']:.1f}/MAC)" if mcu.get("instructions_per_mac") else ""
        lines.append(f"            Cortex-M4 (QEMU): flash {mcu['flash_bytes']:,} B, "
                     f"RAM {mcu['ram_total_bytes']:,} B (arena + stack {mcu['stack_bytes']:,} + input/output), "
                     f"{mcu['instructions_per_inference']:,} instructions{per_mac}{latency}; "
                     f"bit-exact on {mcu['samples']} inputs")
        differing = mcu.get("values_differing_from_tflite_micro_host")
        if differing:
            lines.append(f"            {differing:,} output values are TFLite-Micro's Cortex-M values, not its host "
                         "build's: its kernels shift by 32 or more there (undefined in C++)")
    return lines


def inspect_text(info: dict) -> str:
    """``edgec inspect``'s table for the terminal."""
    rows = [[o["index"], o["op"], "x".join(map(str, o["output_shape"])), f"{o['params']:,}", f"{o['macs']:,}",
             f"{o['elementwise']:,}", f"{o['instructions']:,}", f"{o['cycles']:,}", pct(o["latency_share"]),
             f"{o['live_bytes']:,}", o["tensor"][:48]] for o in info["ops"]]
    note = "" if info["cycles_calibrated"] else " (uncalibrated)"
    lines = [f"edgec inspect: {info['model']} on {info['target']} ({info['kernels']} kernels{note})"]
    lines += table(["#", "op", "output", "params", "MACs", "elementwise", "instructions", "cycles", "latency",
                    "live bytes", "output tensor"], rows, right=(0, 3, 4, 5, 6, 7, 8, 9))
    elementwise = sum(o["elementwise"] for o in info["ops"])
    lines.append(f"  total {info['parameters']:,} parameters, {info['macs']:,} MACs and {elementwise:,} elementwise "
                 "output values (ADD, MUL, activations: costed per value); "
                 f"largest live activations {info['peak_live_bytes']:,} bytes")
    if info.get("latency_ms") is not None:
        lo, hi = info["latency_ms_range"]
        lines.append(f"  estimate {info['instructions']:,} instructions, {info['cycles']:,} cycles: "
                     f"{info['latency_ms']:.3g} ms ({lo:.3g}-{hi:.3g}) at {info['clock_hz'] / 1e6:g} MHz")
    if info.get("not_measured"):
        lines.append(f"  not measured on a real build, costed as a similar op: {', '.join(info['not_measured'])}")
    return "\n".join(lines) + "\n"
