"""The report's plots, drawn with matplotlib as inline SVG (text kept as text, no dates or random
ids in the output, so the same report gives the same bytes)."""

from __future__ import annotations

import io


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "edgec", "font.size": 9,
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": "edgec"})
    _plt().close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _labels(ops: list[dict]) -> list[str]:
    return [f"#{o['index']} {o.get('layer') or o['op']}" for o in ops]


def _height(n: int) -> float:
    return max(2.2, 0.28 * n + 0.8)


def latency_share(ops: list[dict]) -> str | None:
    if not ops or not any(o.get("latency_share") for o in ops):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, _height(len(ops))))
    ax.barh(_labels(ops), [100 * o["latency_share"] for o in ops], color="#4878d0")
    ax.invert_yaxis()
    ax.set_xlabel("share of estimated latency (%)")
    return _svg(fig)


def macs_params(ops: list[dict]) -> str | None:
    if not ops:
        return None
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, _height(len(ops))), sharey=True)
    labels = _labels(ops)
    a.barh(labels, [o["macs"] for o in ops], color="#6acc64")
    a.set_xlabel("MACs")
    b.barh(labels, [o["params"] for o in ops], color="#ee854a")
    b.set_xlabel("parameters")
    for axis in (a, b):
        axis.xaxis.set_major_locator(plt.MaxNLocator(4))
    a.invert_yaxis()
    return _svg(fig)


def arena(ops: list[dict], arena_bytes: int | None) -> str | None:
    if not ops or "live_bytes" not in ops[0]:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.2))
    live = [o["live_bytes"] for o in ops]
    x = list(range(len(ops)))
    palette = plt.get_cmap("tab20").colors
    for k, o in enumerate(ops):  # one stacked segment per live tensor, its colour kept across ops
        bottom = 0
        for index, nbytes in o.get("live_tensors", []):
            ax.bar(k, nbytes, bottom=bottom, width=0.8, color=palette[index % len(palette)], edgecolor="white",
                   linewidth=0.5)
            if nbytes > 0.12 * max(live):
                ax.text(k, bottom + nbytes / 2, f"t{index}", ha="center", va="center", fontsize=6)
            bottom += nbytes
    ax.plot([], [], "s", color=palette[0], label="live activation tensors (t<index>, one colour each)")
    peak = max(range(len(live)), key=live.__getitem__)
    ax.plot([peak], [live[peak]], "v", color="#d65f5f")
    ax.annotate(f"peak {live[peak]:,} B at #{peak} {ops[peak]['op']}", (peak, live[peak]),
                textcoords="offset points", xytext=(6, 6), color="#d65f5f")
    if arena_bytes:
        ax.axhline(arena_bytes, color="#555555", linestyle="--", label=f"TFLite-Micro arena {arena_bytes:,} B")
    ax.set_xticks(x, [f"#{o['index']} {o['op']}" for o in ops], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("bytes")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _svg(fig)


def stages(rows: list[dict]) -> str | None:
    float_rows = [r for r in rows if r["name"] != "int8"]
    if len(float_rows) < 2:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3))
    names = [r["name"] for r in float_rows]
    ax.bar(names, [r["float_weights_gzip_bytes"] for r in float_rows], color="#8c8c8c", label="float weights, gzip")
    ax.set_ylabel("bytes (gzip)")
    acc = [r.get("float_accuracy") for r in float_rows]
    if all(a is not None for a in acc):
        twin = ax.twinx()
        twin.plot(names, [100 * float(a) for a in acc if a is not None], "o-", color="#d65f5f", label="float accuracy")
        twin.set_ylabel("accuracy (%)")
        int8 = next((r for r in rows if r["name"] == "int8" and "int8_accuracy" in r), None)
        if int8:
            twin.plot([names[-1]], [100 * int8["int8_accuracy"]], "s", color="#4878d0", label="int8 accuracy")
        twin.legend(loc="lower left", frameon=False)
    return _svg(fig)


def budgets(rows: list[dict]) -> str | None:
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.55 * len(rows) + 0.8))
    used = [100 * r["value"] / r["limit"] if r["limit"] else 0 for r in rows]
    colors = ["#6acc64" if r["ok"] else "#d65f5f" for r in rows]
    names = [r["name"] for r in rows]
    ax.barh(names, [max(100, u) for u in used], color="#eeeeee")
    ax.barh(names, used, color=colors)
    ax.axvline(100, color="#555555", linestyle="--")
    for i, u in enumerate(used):
        ax.text(min(u, max(used + [100])) + 1, i, f"{u:.0f} %", va="center")
    ax.invert_yaxis()
    ax.set_xlabel("% of the budget used")
    return _svg(fig)


def quant_error(layers: list[dict]) -> str | None:
    if not layers:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, _height(len(layers))))
    labels = [f"{r['layer']} ({r['op']})" for r in layers]
    worst = max(range(len(layers)), key=lambda i: layers[i]["rmse_over_scale"])
    ax.barh(labels, [r["rmse_over_scale"] for r in layers],
            color=["#d65f5f" if i == worst else "#4878d0" for i in range(len(layers))])
    ax.axvline(0.2887, color="#555555", linestyle=":", label="rounding alone (1/sqrt(12))")
    ax.invert_yaxis()
    ax.set_xlabel("RMSE of the int8 output, in quantization steps")
    ax.legend(loc="lower right", frameon=False)
    return _svg(fig)
