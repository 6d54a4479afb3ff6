"""The report's plots: small bar charts written directly as inline SVG.

They were drawn with matplotlib until measured: importing it and drawing six figures took 1.3 s of a
7.9 s `edgec build` of the sample, more than edgec's whole overhead over the plain TensorFlow script.
These charts are bars, lines and text; written by hand they take milliseconds, and the same report
gives the same bytes. Every label is escaped (layer and tensor names come from the user's model).
"""

from __future__ import annotations

import math
from html import escape

FONT = 11          # px
CHAR_W = 6.4       # px per character at FONT, for laying out labels
ROW = 20           # px per bar of a horizontal chart
WIDTH = 720        # px of a chart
PALETTE = ("#4878d0", "#ee854a", "#6acc64", "#d65f5f", "#956cb4", "#8c613c", "#dc7ec0", "#797979", "#d5bb67",
           "#82c6e2")
GREY, DARK, RED = "#eeeeee", "#555555", "#d65f5f"


def _num(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _ticks(hi: float, n: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``hi``: steps of 1, 2 or 5 times a power of ten."""
    if hi <= 0:
        return [0.0, 1.0]
    raw = hi / n
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [k * step for k in range(int(math.ceil(hi / step - 1e-9)) + 1)]


def _tick_text(v: float) -> str:
    if abs(v) >= 1e6:
        return f"{_num(v / 1e6)}M"
    if abs(v) >= 1e4:
        return f"{_num(v / 1e3)}k"
    return _num(v)


class _Svg:
    def __init__(self, width: float, height: float):
        self.width, self.height = width, height
        self.parts: list[str] = []

    def rect(self, x: float, y: float, w: float, h: float, fill: str, title: str | None = None) -> None:
        tip = f"<title>{escape(title)}</title>" if title else ""
        self.parts.append(f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(max(w, 0))}" height="{_num(max(h, 0))}" '
                          f'fill="{fill}">{tip}</rect>')

    def line(self, x1: float, y1: float, x2: float, y2: float, color: str = DARK, dash: str | None = None) -> None:
        style = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<line x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}" stroke="{color}"'
                          f' stroke-width="1"{style}/>')

    def text(self, x: float, y: float, s: str, anchor: str = "start", size: int = FONT, color: str = "#222222",
             rotate: float = 0) -> None:
        turn = f' transform="rotate({_num(rotate)} {_num(x)} {_num(y)})"' if rotate else ""
        self.parts.append(f'<text x="{_num(x)}" y="{_num(y)}" font-size="{size}" text-anchor="{anchor}" '
                          f'fill="{color}"{turn}>{escape(s)}</text>')

    def polyline(self, points: list[tuple[float, float]], color: str) -> None:
        coords = " ".join(f"{_num(x)},{_num(y)}" for x, y in points)
        self.parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        for x, y in points:
            self.parts.append(f'<circle cx="{_num(x)}" cy="{_num(y)}" r="3" fill="{color}"/>')

    def render(self) -> str:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{_num(self.width)}" height="{_num(self.height)}" '
                f'viewBox="0 0 {_num(self.width)} {_num(self.height)}" font-family="sans-serif">'
                + "".join(self.parts) + "</svg>")


def _label_width(labels: list[str]) -> float:
    return min(260.0, CHAR_W * max((len(s) for s in labels), default=4) + 10)


def _hbars(svg: _Svg, x0: float, width: float, top: float, labels: list[str], values: list[float],
           colors: list[str], xlabel: str, hi: float | None = None, show_labels: bool = True,
           background: list[float] | None = None) -> tuple[float, float]:
    """Horizontal bars from ``x0`` over ``width`` px; returns (scale px per unit, bottom y). A value that is
    not finite (a layer whose error is infinite) is written as text, not drawn."""
    shown = [v if math.isfinite(v) else 0.0 for v in values]
    ticks = _ticks(max([hi or 0.0, *shown, *(background or [])]))
    scale = width / ticks[-1]
    bottom = top + ROW * len(labels)
    for v in ticks:
        x = x0 + v * scale
        svg.line(x, top, x, bottom, "#dddddd")
        svg.text(x, bottom + 14, _tick_text(v), "middle", 10)
    for i, (label, v) in enumerate(zip(labels, values)):
        y = top + i * ROW
        if background:
            svg.rect(x0, y + 3, background[i] * scale, ROW - 6, GREY)
        if math.isfinite(v):
            svg.rect(x0, y + 3, v * scale, ROW - 6, colors[i % len(colors)], f"{label}: {_num(v)}")
        else:
            svg.text(x0 + 4, y + ROW / 2 + 4, str(v), size=10, color=RED)
        if show_labels:
            svg.text(x0 - 6, y + ROW / 2 + 4, label, "end")
    svg.line(x0, top, x0, bottom)
    svg.text(x0 + width / 2, bottom + 30, xlabel, "middle")
    return scale, bottom


def _hchart(labels: list[str], values: list[float], colors: list[str], xlabel: str,
            marks: tuple[tuple[float, str, str], ...] = (), hi: float | None = None,
            background: list[float] | None = None, annotate: list[str] | None = None) -> str:
    left = _label_width(labels)
    width = WIDTH - left - 40
    height = ROW * len(labels) + 50 + 16 * len(marks)
    svg = _Svg(WIDTH, height)
    scale, bottom = _hbars(svg, left, width, 6, labels, values, colors, xlabel,
                           max([hi or 0.0, *(m[0] for m in marks)]), background=background)
    for k, (value, dash, legend) in enumerate(marks):
        x = left + value * scale
        svg.line(x, 6, x, bottom, DARK, dash)
        svg.line(left, bottom + 44 + 16 * k, left + 24, bottom + 44 + 16 * k, DARK, dash)
        svg.text(left + 30, bottom + 48 + 16 * k, legend)
    for i, note in enumerate(annotate or []):
        if math.isfinite(values[i]):
            svg.text(left + values[i] * scale + 4, 6 + i * ROW + ROW / 2 + 4, note, size=10)
    return svg.render()


def _labels(ops: list[dict]) -> list[str]:
    return [f"#{o['index']} {o.get('layer') or o['op']}" for o in ops]


def latency_share(ops: list[dict]) -> str | None:
    if not ops or not any(o.get("latency_share") for o in ops):
        return None
    return _hchart(_labels(ops), [100 * o["latency_share"] for o in ops], [PALETTE[0]],
                   "share of estimated latency (%)")


def macs_params(ops: list[dict]) -> str | None:
    if not ops:
        return None
    labels = _labels(ops)
    left = _label_width(labels)
    panel = (WIDTH - left - 60) / 2
    svg = _Svg(WIDTH, ROW * len(ops) + 50)
    _hbars(svg, left, panel, 6, labels, [o["macs"] for o in ops], [PALETTE[2]], "MACs")
    _hbars(svg, left + panel + 40, panel, 6, labels, [o["params"] for o in ops], [PALETTE[1]], "parameters",
           show_labels=False)
    return svg.render()


def arena(ops: list[dict], arena_bytes: int | None) -> str | None:
    """One stacked bar per op: its live activation tensors, one colour per tensor kept across ops; the
    peak marked, TFLite-Micro's arena as a dashed line."""
    if not ops or "live_bytes" not in ops[0]:
        return None
    live = [o["live_bytes"] for o in ops]
    ticks = _ticks(max([*live, arena_bytes or 0]))
    names = [f"#{o['index']} {o['op']}" for o in ops]
    left, top, plot_h = 60.0, 30.0, 200.0
    bottom_room = min(160.0, CHAR_W * max(len(n) for n in names) * 0.75 + 20)
    step = (WIDTH - left - 20) / len(ops)
    svg = _Svg(WIDTH, top + plot_h + bottom_room + 20)
    scale = plot_h / ticks[-1]
    base = top + plot_h
    for v in ticks:
        y = base - v * scale
        svg.line(left, y, WIDTH - 20, y, "#dddddd")
        svg.text(left - 6, y + 4, _tick_text(v), "end", 10)
    for k, o in enumerate(ops):
        x, height = left + k * step + 0.1 * step, 0.0
        for index, nbytes in o.get("live_tensors", []):
            svg.rect(x, base - (height + nbytes) * scale, 0.8 * step, nbytes * scale, PALETTE[index % len(PALETTE)],
                     f"t{index}: {nbytes:,} B live at #{o['index']} {o['op']}")
            if nbytes > 0.12 * max(live) and step > 18:
                svg.text(x + 0.4 * step, base - (height + nbytes / 2) * scale + 3, f"t{index}", "middle", 8)
            height += nbytes
        svg.text(x + 0.4 * step, base + 12, names[k], "end", 9, rotate=-60)
    peak = max(range(len(live)), key=live.__getitem__)
    svg.text(left + (peak + 0.5) * step, base - live[peak] * scale - 6,
             f"peak {live[peak]:,} B at #{peak} {ops[peak]['op']}", "middle", 10, RED)
    if arena_bytes:
        y = base - arena_bytes * scale
        svg.line(left, y, WIDTH - 20, y, DARK, "5,3")
        svg.text(WIDTH - 22, y - 4, f"TFLite-Micro arena {arena_bytes:,} B", "end", 10)
    svg.line(left, top, left, base)
    svg.text(left, 14, "bytes of live activation tensors (t<index>, one colour each)", size=10)
    return svg.render()


def stages(rows: list[dict]) -> str | None:
    """Float weights (gzip) per stage as bars, float accuracy as a line on its own scale."""
    float_rows = [r for r in rows if r["name"] not in ("int8", "lut")]  # the rows after conversion
    if len(float_rows) < 2:
        return None
    names = [r["name"] for r in float_rows]
    sizes = [r["float_weights_gzip_bytes"] for r in float_rows]
    left, top, plot_h, right = 60.0, 20.0, 180.0, 60.0
    step = (WIDTH - left - right) / len(names)
    svg = _Svg(WIDTH, top + plot_h + 60)
    ticks = _ticks(max(sizes))
    scale, base = plot_h / ticks[-1], top + plot_h
    for v in ticks:
        svg.line(left, base - v * scale, WIDTH - right, base - v * scale, "#dddddd")
        svg.text(left - 6, base - v * scale + 4, _tick_text(v), "end", 10)
    for k, (name, size) in enumerate(zip(names, sizes)):
        svg.rect(left + (k + 0.15) * step, base - size * scale, 0.7 * step, size * scale, "#8c8c8c",
                 f"{name}: {size:,} B")
        svg.text(left + (k + 0.5) * step, base + 14, name, "middle")
    svg.text(left, 12, "float weights, gzip (bytes)", size=10)
    acc = [r.get("float_accuracy") for r in float_rows]
    if all(a is not None for a in acc):
        points = [(left + (k + 0.5) * step, base - float(a) * plot_h) for k, a in enumerate(acc) if a is not None]
        svg.polyline(points, RED)
        for v in (0, 50, 100):
            svg.text(WIDTH - right + 6, base - v / 100 * plot_h + 4, f"{v} %", size=10, color=RED)
        legend = "float accuracy (right scale)"
        int8 = next((r for r in rows if r["name"] == "int8" and "int8_accuracy" in r), None)
        if int8:
            svg.rect(points[-1][0] - 3, base - int8["int8_accuracy"] * plot_h - 3, 6, 6, PALETTE[0],
                     f"int8 accuracy {100 * int8['int8_accuracy']:.1f} %")
            legend += "; square: int8 accuracy"
        svg.text(left, base + 34, legend, size=10, color=RED)
    return svg.render()


def accuracy_macs(rows: list[dict]) -> str | None:
    """Accuracy against MACs along the stages that change the MACs (``channels``, ``lowrank``): the model
    passed in, each such stage's model (float), and the int8 model; None without such a stage."""
    points: list[tuple[str, int, float]] = []
    for r in rows:
        fp = r.get("footprint")
        if fp and r.get("float_accuracy") is not None:
            if not points and rows[0].get("float_accuracy") is not None:
                points.append(("input", fp["before"]["macs"], rows[0]["float_accuracy"]))
            points.append((r["name"], fp["after"]["macs"], r["float_accuracy"]))
    int8 = next((r for r in rows if r["name"] == "int8" and r.get("int8_accuracy") is not None), None)
    if not points:
        return None
    if int8:
        points.append(("int8", points[-1][1], int8["int8_accuracy"]))
    left, top, plot_w, plot_h = 60.0, 20.0, WIDTH - 100.0, 180.0
    svg = _Svg(WIDTH, top + plot_h + 50)
    xticks = _ticks(max(m for _, m, _ in points))
    lo = min(0.5, min(a for _, _, a in points))
    base = top + plot_h

    def xy(macs: float, acc: float) -> tuple[float, float]:
        return left + macs / xticks[-1] * plot_w, base - (acc - lo) / (1 - lo) * plot_h

    for v in xticks:
        svg.line(left + v / xticks[-1] * plot_w, top, left + v / xticks[-1] * plot_w, base, "#dddddd")
        svg.text(left + v / xticks[-1] * plot_w, base + 14, _tick_text(v), "middle", 10)
    for v in (lo, (lo + 1) / 2, 1.0):
        svg.text(left - 6, xy(0, v)[1] + 4, f"{100 * v:.0f} %", "end", 10)
    svg.polyline([xy(m, a) for _, m, a in points], RED)
    for name, m, a in points:
        x, y = xy(m, a)
        svg.rect(x - 3, y - 3, 6, 6, RED, f"{name}: {m:,} MACs, accuracy {100 * a:.1f} %")
        svg.text(x + 6, y + 14 if name == "int8" else y - 6, name, size=10)  # int8 sits at its stage's MACs
    svg.text(left, 12, "accuracy (float; int8 for the last point) against MACs", size=10)
    svg.text(left + plot_w / 2, base + 34, "MACs per inference", "middle", 10)
    return svg.render()


def budgets(rows: list[dict]) -> str | None:
    if not rows:
        return None
    used = [100 * r["value"] / r["limit"] if r["limit"] else 0 for r in rows]
    return _hchart([r["name"] for r in rows], used, ["#6acc64" if r["ok"] else RED for r in rows],
                   "% of the budget used", marks=((100.0, "5,3", "the budget"),),
                   background=[max(100.0, u) for u in used], annotate=[f"{u:.0f} %" for u in used])


def quant_error(layers: list[dict]) -> str | None:
    if not layers:
        return None
    worst = max(range(len(layers)), key=lambda i: layers[i]["rmse_over_scale"])
    return _hchart([f"{r['layer']} ({r['op']})" for r in layers], [r["rmse_over_scale"] for r in layers],
                   [RED if i == worst else PALETTE[0] for i in range(len(layers))],
                   "RMSE of the int8 output, in quantization steps",
                   marks=((0.2887, "2,2", "rounding alone (1/sqrt(12))"),))
