"""A short Markdown summary for a CI job's step summary (``--summary-md``)."""

from __future__ import annotations

from edgec.report.tables import BUDGET_HEADER, budget_rows, key_facts, worst_layers


def md_table(header: list[str], rows: list[list]) -> list[str]:
    """A Markdown table: header, separator, one line per row (cells shown with ``str``)."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def render(r: dict) -> str:
    m, v = r["model"], r.get("verification") or {}
    verdict = "all budgets met" if r["ok"] else "budget exceeded"
    lines = [f"### edgec {r['command']}: {m['name']} on {r['target']['name']} — "
             f"{'✅' if r['ok'] else '❌'} {verdict}", ""]
    if r["budgets"]:
        rows = [row[:-1] + ["✅ ok" if row[-1] == "ok" else "❌ exceeded"] for row in budget_rows(r["budgets"])]
        lines += md_table(BUDGET_HEADER, rows) + [""]
    lines += md_table(["", ""], key_facts(r))
    worst = worst_layers(v)
    if worst:
        lines += ["", "Worst int8 layers (RMSE in quantization steps): " + ", ".join(
            f"`{w['layer']}` {w['rmse_over_scale']:.2f}" for w in worst)]
    return "\n".join(lines) + "\n"
