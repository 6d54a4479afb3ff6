"""``report.html``: one self-contained page (inline CSS and SVG; no scripts, no network)."""

from __future__ import annotations

import html

from edgec.report import plots
from edgec.report.tables import BUDGET_HEADER, STAGE_HEADER, budget_rows, key_facts, pct, stage_rows
from edgec.report.text import render as render_text

PLOTS = ("budgets", "latency", "macs", "arena", "stages", "accuracy_macs", "quant-error")
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;color:#222;
padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0} td,th{padding:.2em .7em;border-bottom:1px solid #eee;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums} .ok{color:#1a7f37;font-weight:600}
.bad{color:#cf222e;font-weight:600} .warn{background:#fff8c5;padding:.4em .7em;border-radius:4px}
figure{margin:1em 0} figure svg{max-width:100%;height:auto} .note{color:#666}
details pre{background:#f6f8fa;padding:1em;overflow:auto}
"""


def _e(x) -> str:
    return html.escape(str(x))


def _table(header, rows, numeric=()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td class=\"{'n' if i in numeric else ''}\">{_e(c)}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(name: str, title: str, svg: str | None, missing: str) -> str:
    if svg is None:
        return f'<figure class="plot-missing" id="plot-{name}"><figcaption>{_e(title)}</figcaption>' \
               f'<p class="note">{_e(missing)}</p></figure>'
    return f'<figure class="plot" id="plot-{name}"><figcaption>{_e(title)}</figcaption>{svg}</figure>'


def render(r: dict) -> str:
    m, meas, v = r["model"], r["measurements"], r.get("verification") or {}
    ops = meas.get("ops") or []
    layers = v.get("layers") or []
    verdict = ('<span class="ok">all budgets met</span>' if r["ok"] else '<span class="bad">budget exceeded</span>')
    parts = [f"<h1>edgec {_e(r['command'])}: {_e(m['name'])} → {_e(r['target']['name'])}</h1><p>{verdict}</p>"]
    parts += [f'<p class="warn">{_e(w)}</p>' for w in r["warnings"]]
    parts.append(_table(["", ""], key_facts(r, peak_live=True)))
    if r["budgets"]:
        parts.append("<h2>Budgets</h2>" + _table(BUDGET_HEADER, budget_rows(r["budgets"]), numeric=(1, 2, 3)))
    parts.append(_figure("budgets", "Budget use", plots.budgets(r["budgets"]), "no budgets were set"))
    parts.append("<h2>Per layer</h2>")
    parts.append(_figure("latency", "Share of the estimated latency per op", plots.latency_share(ops),
                         "no per-op latency model for this target"))
    parts.append(_figure("macs", "MACs and parameters per op", plots.macs_params(ops), "no op table"))
    parts.append(_figure("arena", "Activation memory over the op sequence", plots.arena(ops, meas.get("arena_bytes")),
                         "no op table"))
    if ops:
        rows = [[o["index"], o["op"], o.get("layer", ""), "x".join(map(str, o["output_shape"])), f"{o['params']:,}",
                 f"{o['macs']:,}", f"{o.get('cycles', 0):,}", pct(o.get("latency_share")),
                 f"{o.get('live_bytes', 0):,}"]
                for o in ops]
        parts.append(_table(["#", "op", "layer", "output", "params", "MACs", "cycles (est.)", "latency share",
                             "live bytes"], rows, numeric=(0, 4, 5, 6, 7, 8)))
    parts.append("<h2>Quantization error per layer</h2>")
    parts.append(_figure("quant-error", "Each int8 layer against its float version on the same inputs",
                         plots.quant_error(layers), "not measured (only builds of post-training-quantized "
                                                    "models measure it)"))
    if layers:
        parts.append(_table(["layer", "op", "RMSE (steps)", "cosine", "scale"],
                            [[x["layer"], x["op"], f"{x['rmse_over_scale']:.3f}", f"{x['cosine']:.6f}",
                              f"{x['scale']:.4g}"] for x in layers], numeric=(2, 3, 4)))
    parts.append("<h2>Stages</h2>")
    parts.append(_figure("stages", "Size and accuracy across the stages", plots.stages(r["stages"]),
                         "no compression stages ran"))
    if r["stages"]:
        parts.append(_table(STAGE_HEADER, stage_rows(r["stages"]), numeric=(1, 2, 3)))
        figure = plots.accuracy_macs(r["stages"])
        if figure:
            parts.append(_figure("accuracy_macs", "Accuracy against MACs", figure, ""))
    parts.append(f"<h2>Summary as printed</h2><details><summary>terminal text</summary>"
                 f"<pre>{_e(render_text(r))}</pre></details>")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width\"><title>edgec report: {_e(m['name'])}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
