"""MCU latency estimate against the published MLPerf Tiny latencies (cortex-m4 profile)."""

from __future__ import annotations

import re

from common import REFERENCES, SHARED
from edgec.check.measure import measure
from edgec.report.markdown import md_table


def published_latencies() -> list[dict]:
    """The MLPerf Tiny latencies quoted in ../shared/models/README.md (parsed, not retyped)."""
    text = (SHARED / "README.md").read_text()
    out = []
    for spec in REFERENCES:
        model = spec["int8"]
        body = text.split(f"## {spec['readme_section']}")[1].split("\n## ")[0]
        ref = re.search(r"\*\*([\d.]+) ms(?: per inference)?\*\*", body)
        opt = re.findall(r"\*\*([\d.]+) ms\*\*", body)
        out.append({"model": model, "kernels": "reference", "published_ms": float(ref.group(1))})
        out.append({"model": model, "kernels": "optimized", "published_ms": float(opt[-1])})
    return out


def run() -> list[dict]:
    from edgec.check import targets
    from edgec.load.tflite_file import read_tflite_file
    from edgec.runtime import micro

    rows = []
    for item in published_latencies():
        data, tfl = read_tflite_file(SHARED / item["model"])
        t = targets.get("cortex-m4").with_kernels(item["kernels"])
        est = measure(data, tfl, t, micro.measure_arena(data), host_latency=False)["latency_ms"]
        rows.append({**item, "estimated_ms": round(est, 1), "ratio": round(est / item["published_ms"], 3)})
    return rows


def markdown(rows: list[dict]) -> list[str]:
    lines = ["## MCU latency estimate vs published (cortex-m4 profile, 120 MHz)", "",
             *md_table(["model", "kernels", "published ms", "estimated ms", "**estimate / published**"],
                       [[r["model"], r["kernels"], r["published_ms"], r["estimated_ms"], f"**{r['ratio']}**"]
                        for r in rows])]
    return lines + ["", "Published figures: MLPerf Tiny on NUCLEO-L4R5ZI as quoted in `../shared/models/README.md`. "
                    "The profile's conv and depthwise cycles/MAC were fitted on these same two models, so these "
                    "ratios show the fit, not how the estimate generalizes to other networks.", ""]
