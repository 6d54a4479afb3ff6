"""Fit the MCU latency model's instruction tables and the runtime's flash by parts on ../shared/mcu, and write
them into the target profiles.

For each kernel library (TFLite-Micro's reference kernels, CMSIS-NN) and op kind, the instructions an op
executes are fitted as a non-negative sum of terms (a fixed cost, per MAC, per output value, per kernel
tap, per input value; the terms an op kind has are in ``edgec.check.latency.TERMS``) on the per-op counts
measured under QEMU in ``../shared/mcu/tflm_cortex_m4.json``. The tables, with each kind's fit error, go
between the ``# instructions: fitted`` markers of the profiles whose core executes the same Thumb-2 + DSP
instructions (``cortex-m4``, ``cortex-m4-c``, ``cortex-m33``); nothing is typed in by hand.

    .venv/bin/python scripts/fit_latency.py            # print the fit and its errors
    .venv/bin/python scripts/fit_latency.py --write    # and rewrite the profiles' tables
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgec.check.latency import LIBRARIES, TERMS, conv_kind, op_terms  # noqa: E402

MEASURED = ROOT.parent / "shared" / "mcu" / "tflm_cortex_m4.json"
PUBLISHED = MEASURED.parent / "published.md"
# Which published latencies give each profile's cycles per instruction (CPI): rows of its core whose stack
# runs CMSIS-NN's kernels (TFLite-Micro's preferred, else the same kernels without an interpreter). A core
# without such a row is scaled from the M4 by the ratio of cycles one software stack took on both cores.
CPI_RULES = {
    "cortex-m4": {"core": "M4", "stacks": ("TFLM + CMSIS-NN", "microTVM + CMSIS-NN")},
    "cortex-m33": {"core": "M33", "stacks": ("TFLM + CMSIS-NN", "microTVM + CMSIS-NN")},
    "cortex-m7": {"scale_from": "cortex-m4", "core": "M7", "same_software": "Plumerai"},
    "cortex-m0plus": {"scale_from": "cortex-m4", "core": "M0+", "same_software": "Bosch"},
    "cortex-m55": {"scale_from": "cortex-m4", "core": "M85", "stacks": ("TFLM + CMSIS-NN",)},
}
PROFILES = tuple(CPI_RULES)
BEGIN, END = "# latency: fitted by scripts/fit_latency.py, do not edit\n", "# latency: end\n"
_LIB_KEYS = {"ref": "tflm-reference", "cmsis_nn": "tflm-cmsis-nn"}


def measured_rows() -> dict[str, list[dict]]:
    """Library -> the per-op rows of every measured model (the profiler's own 24 instructions removed)."""
    data = json.loads(MEASURED.read_text())
    rows: dict[str, list[dict]] = {lib: [] for lib in _LIB_KEYS.values()}
    for model, entry in data["models"].items():
        for key, lib in _LIB_KEYS.items():
            for op in entry["libs"][key]["ops"]:
                kind = conv_kind(op["op"], op.get("kernel") or [0, 0], op.get("stride_hint") or [0, 0],
                                 op.get("in_c") or 0, padded=False)
                rows[lib].append({**op, "op": kind, "model": model, "instructions": op["instructions"] - 24.0})
    return rows


def features(op: dict) -> dict[str, float]:
    """The terms of one measured op, from the fields the measurement recorded."""
    kernel = op.get("kernel") or [1, 1]
    out_c = op.get("out_c") or 1
    return op_terms(macs=op["macs"], outputs=op["output_elements"], inputs=op["input_elements"],
                    taps=op["output_elements"] * kernel[0] * kernel[1], patch=op["macs"] / out_c)


def fit(rows: list[dict]) -> dict[str, dict]:
    """Op kind -> {term: instructions per unit, "error": relative RMS error of its ops}."""
    out = {}
    for kind in sorted({r["op"] for r in rows}):
        ops = [r for r in rows if r["op"] == kind]
        names = TERMS.get(kind, TERMS["default"])
        a = np.array([[features(r)[n] for n in names] for r in ops], np.float64)
        y = np.array([r["instructions"] for r in ops], np.float64)
        while len(names) > len(ops):  # fewer ops than terms: keep the terms that scale
            names, a = names[1:], a[:, 1:]
        scale = np.maximum(a.max(axis=0), 1.0)
        coef, _ = nnls(a / scale / y[:, None], np.ones(len(y)))  # least relative error
        coef = coef / scale
        pred = a @ coef
        table = {n: float(f"{c:.4g}") for n, c in zip(names, coef)}
        table["error"] = float(f"{np.sqrt(np.mean(((pred - y) / y) ** 2)):.3g}")
        out[kind] = table
    return out


def report(fitted: dict[str, dict[str, dict]], rows: dict[str, list[dict]]) -> None:
    for lib, tables in fitted.items():
        print(f"{lib}:")
        for kind, table in tables.items():
            print(f"  {kind:22s} " + ", ".join(f"{k}={v}" for k, v in table.items()))
        by_model: dict[str, list[float]] = {}
        for r in rows[lib]:
            t = tables[r["op"]]
            pred = sum(t.get(n, 0.0) * v for n, v in features(r).items())
            by_model.setdefault(r["model"], [0.0, 0.0])
            by_model[r["model"]][0] += pred
            by_model[r["model"]][1] += r["instructions"]
        for model, (pred, meas) in by_model.items():
            print(f"  model {model:8s} predicted {pred:,.0f} measured {meas:,.0f} ratio {pred / meas:.3f}")


def published() -> list[dict]:
    """The rows of published.md's latency table: core, MHz, software, submitter, KWS and IC ms."""
    rows = []
    for line in PUBLISHED.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 7 or not cells[5].replace(".", "").isdigit():
            continue
        core_clock = cells[3].replace("Cortex-", "")
        core, _, mhz = core_clock.partition("@")
        rows.append({"version": cells[0], "submitter": cells[1], "board": cells[2], "core": core.strip(),
                     "mhz": float(mhz.replace("MHz", "")),
                     "software": cells[4], "kws": float(cells[5]), "ic": float(cells[6])})
    return rows


def measured_instructions() -> dict[str, float]:
    data = json.loads(MEASURED.read_text())["models"]
    return {m: data[m]["libs"]["cmsis_nn"]["invoke_instructions"] for m in ("kws", "ic")}


def core_rows(rows: list[dict], core: str) -> list[dict]:
    """Rows of ``core`` (the M4 rows say "Cortex-M4F" once and "M4" after; M33, M7, M0+ likewise)."""
    return [r for r in rows if r["core"].rstrip("F") == core]


def fit_cpi() -> dict[str, dict]:
    """Profile -> {"cpi", "error", "calibrated", "source"} for the CMSIS-NN library."""
    rows, counts = published(), measured_instructions()
    out: dict[str, dict] = {}
    for profile, rule in CPI_RULES.items():
        of_core = core_rows(rows, rule["core"])
        if "stacks" in rule:
            for stack in rule["stacks"]:
                chosen = [r for r in of_core if stack in r["software"]]
                if chosen:
                    break
            cpis = [r[m] * r["mhz"] * 1e3 / counts[m] for r in chosen for m in counts]
            what = f"{stack} on {', '.join(r['board'] for r in chosen)}"
            value = float(np.exp(np.mean(np.log(cpis))))
        if "scale_from" in rule:
            base = out[rule["scale_from"]]
            if "same_software" in rule:
                soft = [r for r in of_core if rule["same_software"] in r["submitter"]][0]
                ref = [r for r in core_rows(rows, "M4") if r["submitter"] == soft["submitter"]][0]
                ratios = [soft[m] * soft["mhz"] / (ref[m] * ref["mhz"]) for m in counts]
                what = f"the M4's x the cycles {soft['software']} took on {soft['board']} against {ref['board']}"
            else:  # another core's TFLM + CMSIS-NN figure, relative to the M4's
                ratios = [c / base["cpi"] for c in cpis]
                what = f"{what} ({rule['core']}, not this core)"
            value = base["cpi"] * float(np.exp(np.mean(np.log(ratios))))
            cpis = [base["cpi"] * r for r in ratios]
        error = max(abs(c / value - 1) for c in cpis)
        if "scale_from" in rule:
            error += out[rule["scale_from"]]["error"]
        out[profile] = {"cpi": float(f"{value:.4g}"), "error": float(f"{error:.3g}"),
                        "calibrated": "scale_from" not in rule, "source": what}
    return out


def toml_block(fitted: dict[str, dict[str, dict]], cpi: dict) -> str:
    value, error = cpi["cpi"], cpi["error"]
    state = "fitted to" if cpi["calibrated"] else "NOT calibrated on this core: from"
    lines = [BEGIN.rstrip("\n"),
             f"# Cycles per counted instruction for CMSIS-NN: {state}",
             f"# {cpi['source']}",
             f"# ({PUBLISHED.name}; error: the largest deviation of one published figure from the fit).",
             "# The reference kernels and edgec's C have no published latency: they take the CMSIS-NN value,",
             "# not calibrated.",
             "[cycles_per_instruction]",
             *(f"{lib} = {value!r}" for lib in LIBRARIES),
             "# error: only for CMSIS-NN, whose factor the published figures speak for",
             "[cycles_per_instruction_error]",
             f"tflm-cmsis-nn = {error!r}",
             f"# Instructions per op, fitted on {MEASURED.name} (TFLite-Micro and CMSIS-NN for Cortex-M4F, counted",
             "# under QEMU): per op kind a non-negative sum of terms (edgec.check.latency.TERMS); error = the",
             "# relative RMS error of the fit over its ops. The M7, M0+ and M55 run other instructions: their",
             "# cycles per instruction fold that in."]
    for lib in LIBRARIES:
        if lib not in fitted:
            continue
        lines.append(f"[instructions.{lib}]")
        for kind, table in fitted[lib].items():
            lines.append(f"{kind} = {{ " + ", ".join(f"{k} = {v!r}" for k, v in table.items()) + " }")
    return "\n".join(lines) + "\n" + END


# Profiles whose core runs the Thumb-2 code the firmware in ../shared/mcu was built to: its code sizes carry over.
FLASH_PROFILES = ("cortex-m4", "cortex-m33", "cortex-m7")
FLASH_BEGIN, FLASH_END = "# runtime flash: fitted by scripts/fit_latency.py, do not edit\n", "# runtime flash: end\n"
_SAVING = re.compile(r"(\d+)-(\d+) KB runtime flash instead of (\d+)-(\d+) KB")


def fit_flash() -> dict[str, dict]:
    """Library -> {"framework", op: bytes, ..., "error"}: TFLite-Micro's runtime flash as parts. Each part's
    size is measured in the x86-64 TFLite-Micro library the tflite-micro wheel ships (benchmarks/tflm_runtime.py:
    the framework a firmware reaches, and what each op's kernel adds to it), and scaled to Cortex-M4 Thumb-2
    by factors fitted on the real firmware in ../shared/mcu (least relative error of its flash, model
    included): one for the reference build, one for CMSIS-NN's kernels beside the same framework; error = the
    relative RMS error of the runtime's flash over its models."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import tflm_runtime

    library = tflm_runtime.Binary(tflm_runtime.runtime_library())
    framework = tflm_runtime.tflm_footprint([], library)[0].flash
    kernels = {op: tflm_runtime.tflm_footprint([op], library)[0].flash - framework for op in tflm_runtime.PARSERS}
    data = json.loads(MEASURED.read_text())["models"]
    out: dict[str, dict] = {}
    for key, lib in _LIB_KEYS.items():  # the reference kernels first: the framework is the same code for both
        fw, ks, measured, models = [], [], [], []
        for entry in data.values():
            kinds = {o["op"] for o in entry["libs"][key]["ops"]}
            fw.append(framework)
            ks.append(sum(kernels[k] for k in kinds))
            measured.append(entry["libs"][key]["runtime_flash"])
            models.append(entry["model_bytes"])
        y, model_bytes = np.array(measured, float), np.array(models, float)
        if lib == "tflm-reference":
            x, base = np.array(fw, float) + np.array(ks, float), np.zeros(len(y))
        else:  # CMSIS-NN's kernels scaled on their own, beside the reference fit's framework
            x, base = np.array(ks, float), np.full(len(y), out["tflm-reference"]["framework"], float)
        # least relative error of the firmware's flash (the model + the runtime ~ base + scale * x), which is
        # what a flash budget judges
        total = y + model_bytes
        scale = float(np.sum(x * (y - base) / total ** 2) / np.sum((x / total) ** 2))
        fitted_fw = round(scale * framework) if lib == "tflm-reference" else out["tflm-reference"]["framework"]
        table = {"framework": fitted_fw, **{k: round(scale * v) for k, v in sorted(kernels.items())}}
        table["error"] = float(f"{np.sqrt(np.mean(((base + scale * x) / y - 1) ** 2)):.3g}")  # of the runtime
        out[lib] = table
    if m := _SAVING.search((MEASURED.parent / "README.md").read_text()):
        low, high, gen_low, gen_high = (int(g) * 1000 for g in m.groups())
        out["tflm-cmsis-nn"]["int8_saving_min"] = gen_low - low
        out["tflm-cmsis-nn"]["int8_saving_max"] = gen_high - high
    return out


def flash_block(tables: dict[str, dict]) -> str:
    lines = [FLASH_BEGIN.rstrip("\n"),
             "# TFLite-Micro's runtime flash (its framework + the kernels a model registers, with libc/libgcc and a",
             "# ~1.3 KB harness), per kernel library: each part measured in the wheel's x86-64 library and scaled to",
             f"# Thumb-2 by one factor fitted on {MEASURED.name}'s firmware (error: relative RMS over its models).",
             "# CMSIS-NN's figures are for the generic registration that firmware used; int8_saving_min/max: what",
             "# registering the int8 kernels (as edgec's headers do) saved there, from its README."]
    for lib, table in tables.items():
        lines.append(f"[runtime_flash.{lib}]")
        lines += [f"{k} = {v!r}" for k, v in table.items()]
    return "\n".join(lines) + "\n" + FLASH_END


def replace_block(text: str, begin: str, end: str, block: str) -> str:
    """``text`` with the block between ``begin`` and ``end`` replaced by ``block`` (appended if absent)."""
    if begin in text:
        head, rest = text.split(begin, 1)
        return head + block + rest.split(end, 1)[1]
    return text.rstrip("\n") + "\n\n" + block


def main() -> int:
    rows = measured_rows()
    fitted = {lib: fit(r) for lib, r in rows.items()}
    report(fitted, rows)
    cpis = fit_cpi()
    for name, c in cpis.items():
        print(f"{name}: cycles per instruction {c['cpi']} (error {c['error']}, "
              f"{'calibrated' if c['calibrated'] else 'not calibrated'}): {c['source']}")
    if "--write" in sys.argv:
        for name in PROFILES:
            block = toml_block(fitted, cpis[name])
            path = ROOT / "edgec" / "check" / "targets" / f"{name}.toml"
            text = path.read_text()
            calibrated = '["tflm-cmsis-nn"]' if cpis[name]["calibrated"] else "[]"
            text = re.sub(r"^calibrated = .*$", f"calibrated = {calibrated}  # written by scripts/fit_latency.py",
                          text, count=1, flags=re.M)
            path.write_text(replace_block(text, BEGIN, END, block))
            print(f"wrote {path.relative_to(ROOT)}")
    flash = fit_flash()
    for lib, table in flash.items():
        print(f"{lib} runtime flash: " + ", ".join(f"{k}={v}" for k, v in table.items()))
    if "--write" in sys.argv:
        block = flash_block(flash)
        for name in FLASH_PROFILES:
            path = ROOT / "edgec" / "check" / "targets" / f"{name}.toml"
            path.write_text(replace_block(path.read_text(), FLASH_BEGIN, FLASH_END, block))
            print(f"wrote {path.relative_to(ROOT)} (runtime flash)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
