"""Precision choices side by side: FULLY_CONNECTED weights per channel (the default) or per tensor, int8
or int16 (16x8) activations, and min-max, percentile or MSE activation ranges, on the sample and both
shared models (and the FC autoencoder shape whose arena per-tensor FC shrinks most). Each row is one
`edgec build`; the figures are its report's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common import INPUTS, REFERENCES, SAMPLE, SHARED, edgec_build, fc_network, shared_present
from edgec.report.markdown import md_table

VARIANTS = (("int8, per-channel FC (default)", ()), ("int8, per-tensor FC", ("--fc-quantization", "per-tensor")),
            ("16x8, per-channel FC", ("--activations", "int16")),
            ("int8, calibration percentile:99.99", ("--calibration", "percentile:99.99")),
            ("int8, calibration mse", ("--calibration", "mse")))


def _models(tmp: Path) -> list[tuple[str, Path, Path]]:
    models = [("samples/digits", SAMPLE / "digits.keras", SAMPLE / "digits.npz")]
    fc, fc_data = fc_network(tmp)
    models.append(("FC autoencoder shape (untrained)", fc, fc_data))
    if shared_present():
        for spec in REFERENCES:
            data = tmp / f"precision-{spec['inputs']}.npz"
            x = INPUTS[spec["inputs"]](400, 4)
            np.savez(data, x_train=x[:300], x_val=x[300:])
            models.append((spec["float"], SHARED / spec["float"], data))
    return models


def run(tmp: Path) -> list[dict]:
    rows = []
    for label, model, data in _models(tmp):
        for k, (variant, flags) in enumerate(VARIANTS):
            out = tmp / f"precision-{len(rows)}"
            edgec_build(model, data, out, *flags)
            r = json.loads((out / "report.json").read_text())
            v, m = r["verification"], r["measurements"]
            rows.append({"model": label, "variant": variant, "tflite_bytes": r["tflite"]["bytes"],
                         "arena_bytes": m.get("arena_bytes"), "output_snr_db": v.get("output_snr_db"),
                         "int8_accuracy": v.get("int8_accuracy"), "float_accuracy": v.get("float_accuracy"),
                         "samples": v.get("samples")})
    return rows


def markdown(rows: list[dict]) -> list[str]:
    base = {r["model"]: r for r in rows if r["variant"] == VARIANTS[0][0]}

    def cells(r):
        b = base[r["model"]]
        acc = "" if r["int8_accuracy"] is None else f"{100 * r['int8_accuracy']:.1f} % (float " \
                                                     f"{100 * r['float_accuracy']:.1f} %)"
        snr = "" if r["output_snr_db"] is None else f"{r['output_snr_db']:.1f}"
        return [r["model"], r["variant"], f"{r['tflite_bytes']:,}", f"**{r['tflite_bytes'] / b['tflite_bytes']:.3g}x**",
                f"{r['arena_bytes']:,}", f"**{r['arena_bytes'] / b['arena_bytes']:.3g}x**", snr, acc]

    return ["## Precision: FULLY_CONNECTED weight scales, int8 or 16x8 activations, calibration methods", "",
            *md_table(["model", "variant", ".tflite (B)", "**/ default**", "arena (B)", "**/ default**",
                       "output SNR vs float (dB)", "accuracy (labels)"], [cells(r) for r in rows]), "",
            "One `edgec build --target cortex-m4` per row, on the validation samples of its data (synthetic "
            "inputs for the shared models, so no accuracy; the sample's digits have labels). The SNR is on "
            "validation samples drawn like the calibration ones: clipping ranges pays where calibration has "
            "outliers the deployed inputs lack (tests/test_precision.py), which these data sets do not.", ""]
