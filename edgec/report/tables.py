"""Plain-text tables and the rows every renderer shares (budgets, stages, worst layers)."""

from __future__ import annotations

from edgec.units import format_quantity, kib, pct

__all__ = ["kib", "pct", "table", "budget_rows", "stage_rows", "worst_layers", "key_facts", "lut_fact"]


def table(header: list[str], rows: list[list[str]], indent: str = "  ", right=()) -> list[str]:
    """Columns padded to their widest cell; columns in ``right`` right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return indent + "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                                  for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return [line(header), *(line(r) for r in rows)]


def budget_rows(budgets: list[dict]) -> list[list[str]]:
    """name, value, limit, margin (limit - value; negative = over), status."""
    return [[b["name"], format_quantity(b["value"], b["unit"]), format_quantity(b["limit"], b["unit"]),
             ("" if b["ok"] else "-") + format_quantity(abs(b["limit"] - b["value"]), b["unit"]),
             "ok" if b["ok"] else ("BELOW" if b.get("kind") == "floor" else "EXCEEDED")] for b in budgets]


BUDGET_HEADER = ["budget", "value", "limit", "margin", "status"]
STAGE_HEADER = ["stage", "seconds", "parameters", "kernel sparsity", "float acc", "size"]


def stage_rows(stages: list[dict]) -> list[list[str]]:
    rows = []
    for s in stages:
        if s["name"] == "int8":
            acc = pct(s.get("int8_accuracy")) if "int8_accuracy" in s else "-"
            rows.append(["int8", "-", "-", pct(s["int8_weight_sparsity"]), f"{acc} (int8)",
                         f"{s['tflite_bytes']:,} B .tflite, gzip {s['tflite_gzip_bytes']:,} B"])
            continue
        if s["name"] == "lut":  # the int8 model's weights LUT-compressed (edgec.convert.lut): what ships
            acc = pct(s.get("int8_accuracy")) if "int8_accuracy" in s else "-"
            rows.append(["lut", "-", "-", "-", f"{acc} (int8)",
                         f"{s['tflite_bytes']:,} B .tflite; {s['bits_per_weight']:.2f} bits/weight, "
                         f"{s['lut_tensors']} tensors in tables"])
            continue
        size = f"float gzip {s['float_weights_gzip_bytes']:,} B"
        ratio = (s.get("footprint") or {}).get("ratio")
        if ratio:
            size += f"; int8 {ratio.get('tflite_bytes', 0):.2f}x, MACs {ratio.get('macs', 0):.2f}x" + (
                f", arena {ratio['arena_bytes']:.2f}x" if "arena_bytes" in ratio else "")
        uniq = s.get("unique_values_per_kernel")
        if uniq:
            size += f"; <= {max(uniq.values())} values/kernel"
        acc = pct(s["float_accuracy"]) if "float_accuracy" in s else (
            f"mse {s['float_mse']:.4g}" if "float_mse" in s else "-")
        rows.append([s["name"], f"{s['seconds']:.1f}", f"{s['parameters']:,}", pct(s["kernel_sparsity"]), acc, size])
    return rows


def worst_layers(verification: dict | None, n: int = 3) -> list[dict]:
    layers = (verification or {}).get("layers") or []
    return sorted(layers, key=lambda r: -r["rmse_over_scale"])[:n]


def lut_fact(t: dict) -> str | None:
    """What became of LUT weight compression (``tflite.lut``), in one phrase; None where it was not tried."""
    lut = t.get("lut")
    if not lut:
        return None
    if not lut["applied"]:
        return f"not applied: {lut.get('why_not', 'no tensor pays')}"
    packed = [x for x in lut["tensors"] if x["bits"]]
    bits = "/".join(str(b) for b in sorted({x["bits"] for x in packed}))
    return (f"{len(packed)} weight tensor(s) in {bits}-bit look-up tables: {lut['bytes_before']:,} -> "
            f"{lut['bytes_after']:,} bytes, decoded by TFLite-Micro's DECODE")


def key_facts(r: dict, peak_live: bool = False) -> list[list[str]]:
    """The few figures a reader looks for first: model bytes, MACs, arena (and with ``peak_live`` the
    largest live activations at one op), latency, accuracy."""
    t, meas, v = r["tflite"], r["measurements"], r.get("verification") or {}
    facts = [["int8 model", f"{t['bytes']:,} B ({kib(t['bytes'])})"], ["MACs", f"{meas['macs']:,}"]]
    if (lut := lut_fact(t)) is not None:
        facts.append(["LUT weights", lut])
    if meas.get("arena_bytes") is not None:
        facts.append(["TFLite-Micro arena", f"{meas['arena_bytes']:,} B ({kib(meas['arena_bytes'])})"])
    if peak_live and meas.get("peak_live_bytes") is not None:
        facts.append(["largest live activations at one op", f"{meas['peak_live_bytes']:,} B"])
    c = meas.get("c")
    if c:
        mcu = c.get("mcu", {})
        facts.append(["generated C: arena, bit-exact inputs (host)", f"{c['arena_bytes']:,} B, {c['host']['samples']}"])
        if "flash_bytes" in mcu:
            facts.append(["generated C on Cortex-M4 (QEMU): flash, RAM, instructions",
                          f"{mcu['flash_bytes']:,} B, {mcu['ram_total_bytes']:,} B, "
                          f"{mcu['instructions_per_inference']:,}"])
    if meas.get("latency_ms") is not None:
        facts.append([f"latency on {r['target']['name']} (estimate)", f"{meas['latency_ms']:.3g} ms"])
    if "int8_accuracy" in v:
        facts.append(["accuracy float → int8", f"{pct(v['float_accuracy'])} → {pct(v['int8_accuracy'])}"])
    elif "top1_agreement" in v:
        facts.append(["int8 top-1 agreement with float", pct(v["top1_agreement"])])
    elif v.get("output_snr_db") is not None:
        facts.append([f"int8 output vs float ({v['task']})", f"SNR {v['output_snr_db']:.1f} dB, "
                      f"max error {v['output_error_steps_max']:.0f} steps"])
    return facts
