"""Gate speed: wall time of `edgec check` against `edgec build` on the same model, alternating runs."""

from __future__ import annotations

from pathlib import Path

from common import EDGEC, SAMPLE, median, run_measured
from edgec.report.markdown import md_table

RUNS = 5


def run(tmp: Path) -> dict:
    out = tmp / "gate"
    build = EDGEC + ["build", str(SAMPLE / "digits.keras"), "--target", "cortex-m4", "--data",
                     str(SAMPLE / "digits.npz"), "--out", str(out), "--quiet"]
    check = EDGEC + ["check", str(out / "digits.tflite"), "--target", "cortex-m4", "--quiet"]
    run_measured(build)  # warms the file caches and writes the .tflite to check
    b, c = [], []
    for _ in range(RUNS):
        b.append(run_measured(build).seconds)
        c.append(run_measured(check).seconds)
    mb, mc = median(b), median(c)
    return {"model": "samples/digits/digits.keras", "runs": RUNS, "build_s": round(mb, 2), "check_s": round(mc, 3),
            "check_s_max": round(max(c), 3), "check_over_build": round(mc / mb, 3)}


def markdown(g: dict) -> list[str]:
    return ["## Gate speed: `edgec check` vs `edgec build` (same model, alternating runs)", "",
            *md_table(["model", "runs", "build (median s)", "check (median s)", "check (slowest s)",
                       "**check / build**"], [[g["model"], g["runs"], g["build_s"], g["check_s"], g["check_s_max"],
                                               f"**{g['check_over_build']}x**"]]), "",
            "Wall time of whole processes on this machine, including interpreter start-up.", ""]
