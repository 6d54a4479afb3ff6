"""Run edgec's benchmarks side by side and write benchmarks/RESULTS.md and results.json.

Every figure here is measured in this run (or read from ../shared/models/README.md
where it is a published figure, cited as such); nothing is typed in by hand.
Usage: ``make bench`` (or ``.venv/bin/python benchmarks/run.py``).
"""

from __future__ import annotations

import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models"
SAMPLE = ROOT / "samples" / "digits"
sys.path.insert(0, str(ROOT))


def published_latencies() -> list[dict]:
    """The MLPerf Tiny latencies quoted in ../shared/models/README.md (parsed, not retyped)."""
    text = (SHARED / "README.md").read_text()
    out = []
    for section, model in (("Keyword spotting", "kws_ref_model.tflite"), ("Image classification", "ic_resnet8_ref_int8.tflite")):
        body = text.split(f"## {section}")[1].split("\n## ")[0]
        ref = re.search(r"\*\*([\d.]+) ms(?: per inference)?\*\*", body)
        opt = re.findall(r"\*\*([\d.]+) ms\*\*", body)
        out.append({"model": model, "kernels": "reference", "published_ms": float(ref.group(1))})
        out.append({"model": model, "kernels": "optimized", "published_ms": float(opt[-1])})
    return out


def bench_latency() -> list[dict]:
    from edgec import budgets, targets
    from edgec.runtime import micro
    from edgec.runtime.model_file import read_model_file

    rows = []
    for item in published_latencies():
        data, tfl = read_model_file(SHARED / item["model"])
        t = targets.get("cortex-m4").with_kernels(item["kernels"])
        est = budgets.measure(data, tfl, t, micro.measure_arena(data), host_latency=False)["latency_ms"]
        rows.append({**item, "estimated_ms": round(est, 1), "ratio": round(est / item["published_ms"], 3)})
    return rows


def _time(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr}")
    return time.perf_counter() - t0


def bench_gate(runs: int = 3) -> dict:
    """Wall time of `edgec check` vs `edgec build` on the same model, alternating runs."""
    edgec = [sys.executable, "-m", "edgec"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        build = edgec + ["build", str(SAMPLE / "digits.keras"), "--target", "cortex-m4", "--data",
                         str(SAMPLE / "digits.npz"), "--out", str(out), "--quiet"]
        check = edgec + ["check", str(out / "digits.tflite"), "--target", "cortex-m4", "--quiet"]
        _time(build)  # warm file caches, and produce the .tflite to check
        b, c = [], []
        for _ in range(runs):
            b.append(_time(build))
            c.append(_time(check))
    mb, mc = statistics.median(b), statistics.median(c)
    return {"model": "samples/digits/digits.keras", "runs": runs, "build_s": round(mb, 2), "check_s": round(mc, 3),
            "build_over_check": round(mb / mc, 1)}


def main() -> None:
    results = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}"}
    lines = ["# edgec benchmark results", "",
             f"Written by `benchmarks/run.py` on {results['machine']}; every figure below was measured in that run.", ""]
    results["gate"] = g = bench_gate()
    lines += ["## Gate speed: `edgec check` vs `edgec build` (same model, alternating runs)", "",
              "| model | runs | build (median s) | check (median s) | build / check |", "|---|---|---|---|---|",
              f"| {g['model']} | {g['runs']} | {g['build_s']} | {g['check_s']} | **{g['build_over_check']}x** |", "",
              "Wall time of whole processes on this machine, including interpreter start-up.", ""]
    if SHARED.exists():
        results["latency"] = rows = bench_latency()
        lines += ["## MCU latency estimate vs published (cortex-m4 profile, 120 MHz)", "",
                  "| model | kernels | published ms | estimated ms | estimate / published |", "|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['kernels']} | {r['published_ms']} | {r['estimated_ms']} | {r['ratio']} |" for r in rows]
        lines += ["", "Published figures: MLPerf Tiny on NUCLEO-L4R5ZI as quoted in `../shared/models/README.md`. "
                  "The profile's conv and depthwise cycles/MAC were fitted on these same two models, so these "
                  "ratios show the fit, not how the model generalizes to other networks.", ""]
    else:
        lines += ["(../shared/models absent: the latency comparison was skipped.)", ""]
    from codegen import bench_codegen, markdown

    results["codegen"] = bench_codegen()
    lines += markdown(results["codegen"])
    (ROOT / "benchmarks" / "RESULTS.md").write_text("\n".join(lines))
    (ROOT / "benchmarks" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
