"""A short Markdown summary for a CI job's step summary (``--summary-md``)."""

from __future__ import annotations

from edgec.report.tables import BUDGET_HEADER, budget_rows, kib, pct, worst_layers


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def render(r: dict) -> str:
    m, t, meas, v = r["model"], r["tflite"], r["measurements"], r.get("verification") or {}
    verdict = "all budgets met" if r["ok"] else "budget exceeded"
    lines = [f"### edgec {r['command']}: {m['name']} on {r['target']['name']} — "
             f"{'✅' if r['ok'] else '❌'} {verdict}", ""]
    if r["budgets"]:
        rows = [row[:-1] + ["✅ ok" if row[-1] == "ok" else "❌ exceeded"] for row in budget_rows(r["budgets"])]
        lines += _md_table(BUDGET_HEADER, rows) + [""]
    sizes = [["int8 model", f"{t['bytes']:,} B ({kib(t['bytes'])})"], ["MACs", f"{meas['macs']:,}"]]
    if meas.get("arena_bytes") is not None:
        sizes.append(["TFLite-Micro arena", f"{meas['arena_bytes']:,} B ({kib(meas['arena_bytes'])})"])
    if meas.get("latency_ms") is not None:
        sizes.append([f"latency on {r['target']['name']} (estimate)", f"{meas['latency_ms']:.3g} ms"])
    if "int8_accuracy" in v:
        sizes.append(["accuracy float → int8", f"{pct(v['float_accuracy'])} → {pct(v['int8_accuracy'])}"])
    elif "top1_agreement" in v:
        sizes.append(["int8 top-1 agreement with float", pct(v["top1_agreement"])])
    lines += _md_table(["", ""], sizes)
    worst = worst_layers(v)
    if worst:
        lines += ["", "Worst int8 layers (RMSE in quantization steps): " + ", ".join(
            f"`{w['layer']}` {w['rmse_over_scale']:.2f}" for w in worst)]
    return "\n".join(lines) + "\n"
