"""Gate speed: wall time of `edgec check` against `edgec build` on the same model, alternating runs, and
`edgec check` alone on every shared model file and on edgec's own builds of the shared models and of an
FC-only network shaped like MLPerf Tiny's anomaly detector (per-channel FULLY_CONNECTED: the kind whose arena
search once took seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common import (
    EDGEC,
    INPUTS,
    REFERENCES,
    SAMPLE,
    SHARED,
    edgec_build,
    fc_network,
    median,
    run_measured,
    run_timed,
    shared_present,
)
from edgec.report.markdown import md_table

RUNS = 5
LIMIT_S = 0.5  # issue 29: the gate answers within half a second (median)


def _check_targets(tmp: Path, digits: Path) -> list[tuple[str, Path]]:
    files = [("samples/digits (edgec build)", digits)]
    fc, fc_data = fc_network(tmp)
    files.append(("FC autoencoder shape, per-channel FC (edgec build)", edgec_build(fc, fc_data, tmp / "gate-fc")))
    if shared_present():
        for spec in REFERENCES:
            files.append((f"{spec['int8']} (reference file)", SHARED / spec["int8"]))
            data = tmp / f"gate-{spec['inputs']}.npz"
            x = INPUTS[spec["inputs"]](400, 3)
            np.savez(data, x_train=x[:300], x_val=x[300:])
            files.append((f"{spec['float']} (edgec build)",
                          edgec_build(SHARED / spec["float"], data, tmp / f"gate-{spec['inputs']}")))
    return files


def run(tmp: Path) -> dict:
    out = tmp / "gate"
    build = EDGEC + ["build", str(SAMPLE / "digits.keras"), "--target", "cortex-m4", "--data",
                     str(SAMPLE / "digits.npz"), "--out", str(out), "--quiet"]
    check = EDGEC + ["check", str(out / "digits.tflite"), "--target", "cortex-m4", "--quiet"]
    run_measured(build)  # warms the file caches and writes the .tflite to check
    b, c = [], []
    for _ in range(RUNS):
        b.append(run_timed(build))
        c.append(run_timed(check))
    mb, mc = median(b), median(c)
    checks = []
    for label, path in _check_targets(tmp, out / "digits.tflite"):
        cmd = EDGEC + ["check", str(path), "--target", "cortex-m4", "--quiet"]
        run_timed(cmd)  # warm
        times = [run_timed(cmd) for _ in range(RUNS)]
        checks.append({"model": label, "runs": RUNS, "check_s": round(median(times), 3),
                       "check_s_max": round(max(times), 3)})
    return {"model": "samples/digits/digits.keras", "runs": RUNS, "build_s": round(mb, 2), "check_s": round(mc, 3),
            "check_s_max": round(max(c), 3), "check_over_build": round(mc / mb, 3), "checks": checks,
            "limit_s": LIMIT_S, "within_limit": sum(r["check_s"] < LIMIT_S for r in checks)}


def markdown(g: dict) -> list[str]:
    lines = ["## Gate speed: `edgec check` vs `edgec build` (same model, alternating runs)", "",
             *md_table(["model", "runs", "build (median s)", "check (median s)", "check (slowest s)",
                        "**check / build**"], [[g["model"], g["runs"], g["build_s"], g["check_s"], g["check_s_max"],
                                                f"**{g['check_over_build']}x**"]]), ""]
    if g.get("checks"):
        lines += ["`edgec check --target cortex-m4` on every shared model file and on edgec's builds "
                  f"({g['within_limit']} of {len(g['checks'])} under {g['limit_s']} s median):", "",
                  *md_table(["model", "runs", "**check (median s)**", "check (slowest s)"],
                            [[r["model"], r["runs"], f"**{r['check_s']}**", r["check_s_max"]] for r in g["checks"]]),
                  ""]
    return lines + ["Wall time of whole processes on this machine, started as a shell starts them (no memory "
                    "sampling), including interpreter start-up, with Python's bytecode cache on.", ""]
