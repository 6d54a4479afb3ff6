"""The MCU latency model against measurement: instructions per op and per model against a real TFLite-Micro
firmware counted under QEMU (../shared/mcu/tflm_cortex_m4.json), for both kernel libraries, and the
latency estimate against every published MLPerf Tiny figure whose stack matches a profile
(../shared/mcu/published.md). The profiles' tables were fitted on these same measurements
(``scripts/fit_latency.py``), so the ratios show the fit; other models judge how it generalizes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from common import ROOT, SHARED
from edgec.report.markdown import md_table

sys.path.insert(0, str(ROOT / "scripts"))
import fit_latency  # noqa: E402

MCU = SHARED.parent / "mcu"
_LIBS = {"ref": "tflm-reference", "cmsis_nn": "tflm-cmsis-nn"}
_MODEL_FILES = {"kws": SHARED / "kws_ref_model.tflite", "ic": SHARED / "ic_resnet8_ref_int8.tflite"}


def present() -> bool:
    return (MCU / "tflm_cortex_m4.json").exists() and all(p.exists() for p in _MODEL_FILES.values())


def run(sample: Path) -> dict:
    from edgec.check import targets
    from edgec.check.latency import op_table
    from edgec.load.tflite_file import read_tflite_file

    measured = json.loads((MCU / "tflm_cortex_m4.json").read_text())["models"]
    files = {**_MODEL_FILES, "digits": sample}
    per_op, per_model = [], []
    for model, path in files.items():
        _, tfl = read_tflite_file(path)
        for key, lib in _LIBS.items():
            rows = op_table(tfl, targets.get("cortex-m4").with_kernels(lib))
            ops = measured[model]["libs"][key]["ops"]
            if [r["op"] for r in rows] != [o["op"] for o in ops]:  # the sample was rebuilt differently
                continue
            for r, o in zip(rows, ops):
                per_op.append({"model": model, "kernels": lib, "op": r["op"], "estimated": r["instructions"],
                               "measured": o["instructions"] - 24.0})  # minus the profiler's own code
            per_model.append({"model": model, "kernels": lib, "estimated": sum(r["instructions"] for r in rows),
                              "measured": measured[model]["libs"][key]["invoke_instructions"]})
    kinds: dict[tuple[str, str], list[float]] = {}
    for r in per_op:
        kinds.setdefault((r["kernels"], r["op"]), []).append(r["estimated"] / r["measured"])
    by_kind = [{"kernels": lib, "op": op, "ops": len(v), "ratio_min": min(v), "ratio_max": max(v)}
               for (lib, op), v in sorted(kinds.items())]
    return {"by_kind": by_kind, "models": [{**m, "ratio": m["estimated"] / m["measured"]} for m in per_model],
            "published": published_vs_estimate(), "flash": flash_vs_firmware(files, measured)}


def flash_vs_firmware(files: dict[str, Path], measured: dict) -> list[dict]:
    """The firmware's flash from parts (the model's bytes + the cortex-m4 profile's TFLite-Micro framework and
    the model's kernels) against the measured firmware's flash (its text + rodata + data less its embedded
    test inputs), per library.
    The measured firmware registered the generic kernels; with the int8 variants edgec's headers register,
    CMSIS-NN's runtime was smaller by the range the profile states."""
    from edgec.check import targets
    from edgec.load.tflite_file import read_tflite_file

    out = []
    for model, path in files.items():
        data, tfl = read_tflite_file(path)
        for key, lib in _LIBS.items():
            fw = measured[model]["libs"][key]
            parts = targets.get("cortex-m4").with_kernels(lib).runtime_flash_parts(list(tfl.op_counts))
            estimate = len(data) + parts["bytes"]  # the measured "flash" leaves the test inputs out
            out.append({"model": model, "kernels": lib, "estimated": estimate, "measured": fw["flash"],
                        "runtime_estimated": parts["bytes"], "runtime_measured": fw["runtime_flash"],
                        "ratio": round(estimate / fw["flash"], 3)})
    return out


def published_vs_estimate() -> list[dict]:
    """Every published latency whose stack matches a profile's cycles-per-instruction rule: the estimate
    (the profile's instruction model x its cycles per instruction, at the board's clock) over the figure."""
    from edgec.check import targets
    from edgec.check.latency import estimate, op_table
    from edgec.load.tflite_file import read_tflite_file

    rows = fit_latency.published()
    tfls = {m: read_tflite_file(p)[1] for m, p in _MODEL_FILES.items()}
    out = []
    for profile, rule in fit_latency.CPI_RULES.items():
        if "stacks" not in rule or "scale_from" in rule:
            continue
        target = targets.get(profile).with_kernels("tflm-cmsis-nn")
        chosen = []
        for stack in rule["stacks"]:
            chosen = [r for r in fit_latency.core_rows(rows, rule["core"]) if stack in r["software"]]
            if chosen:
                break
        for r in chosen:
            for model, tfl in tfls.items():
                cycles = estimate(op_table(tfl, target), target)["cycles"]
                ms = cycles / (r["mhz"] * 1e3)
                out.append({"profile": profile, "board": r["board"], "mhz": r["mhz"], "software": r["software"],
                            "model": model, "published_ms": r[model], "estimated_ms": round(ms, 2),
                            "ratio": round(ms / r[model], 3)})
    return out


def markdown(res: dict) -> list[str]:
    lines = ["## MCU latency model against a measured TFLite-Micro firmware and published latencies", "",
             "Instructions per inference, estimated (the cortex-m4 profile's tables) against counted under QEMU "
             "(`../shared/mcu/tflm_cortex_m4.json`):", "",
             *md_table(["model", "kernels", "estimated", "measured", "**estimated / measured**"],
                       [[m["model"], m["kernels"], f"{m['estimated']:,.0f}", f"{m['measured']:,.0f}",
                         f"**{m['ratio']:.3f}**"] for m in res["models"]]),
             "", "Per op kind (estimated / measured over its ops):", "",
             *md_table(["kernels", "op", "ops", "ratio min", "ratio max"],
                       [[k["kernels"], k["op"], k["ops"], f"{k['ratio_min']:.3f}", f"{k['ratio_max']:.3f}"]
                        for k in res["by_kind"]]),
             "", "Latency against the published MLPerf Tiny figures whose stack matches a profile "
             "(`../shared/mcu/published.md`; the estimate at the board's clock):", "",
             *md_table(["profile", "board", "MHz", "software", "model", "published ms", "estimated ms",
                        "**estimated / published**"],
                       [[p["profile"], p["board"], f"{p['mhz']:g}", p["software"], p["model"], p["published_ms"],
                         p["estimated_ms"], f"**{p['ratio']}**"] for p in res["published"]])]
    if res.get("flash"):
        lines += ["", "Firmware flash from parts (model + the profile's TFLite-Micro framework and the model's "
                  "kernels) against the measured firmware (its flash less its test inputs; generic kernel "
                  "registration):", "",
                  *md_table(["model", "kernels", "runtime estimated", "runtime measured", "firmware estimated",
                             "firmware measured", "**estimated / measured**"],
                            [[f["model"], f["kernels"], f"{f['runtime_estimated']:,}", f"{f['runtime_measured']:,}",
                              f"{f['estimated']:,}", f"{f['measured']:,}", f"**{f['ratio']}**"]
                             for f in res["flash"]])]
    return lines + ["", "The instruction tables, the cycles per instruction and the runtime's flash by parts were "
                    "fitted on these same measurements and figures (`scripts/fit_latency.py`): the ratios show "
                    "the fit.", ""]
