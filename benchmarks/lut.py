"""LUT weight compression, measured: what the .tflite, the TFLite-Micro arena and the generated C weigh with
and without it, on the sample (real labels) and the MLPerf Tiny models (random inputs and random labels:
sizes only).

Each recipe is built three times by edgec's own pipeline with the same seed, ``lut = "off"``, ``"on"`` and
``"auto"`` (the default, which ships one of the other two), all with ``--emit c`` (the C built for the
Cortex-M4 and run under QEMU where the tools are installed), so that every ratio compares the same trained
model stored two ways. Part of ``make bench``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import SAMPLE, SHARED, build_report
from edgec.report.markdown import md_table

SAMPLE_RECIPES = {
    "ptq": [],
    "cluster16": ["cluster:clusters=16,epochs=3"],
    "ternary": ["ternary"],
    "binary": ["binary"],
}
SHARED_RUNS = (  # (label, model path under ../shared/models, recipe): random data, one epoch
    ("ResNet-8", "ic_resnet8.h5", ["cluster:clusters=16,epochs=1"]),
    ("KWS DS-CNN", "kws_ref_model", ["cluster:clusters=16,epochs=1"]),
)


def _build(model: Path, data: str, out: Path, stages: list[str], lut: str) -> dict:
    report = build_report(model, data, out, stages, emit=("c",), lut=lut)
    c = report["measurements"]["c"]
    mcu = c.get("mcu", {})
    section = report["tflite"].get("lut") or {}
    return {"tflite_bytes": report["tflite"]["bytes"], "arena_bytes": report["measurements"]["arena_bytes"],
            # the TFLite-Micro firmware's flash estimate (model, runtime by parts, DECODE's code, reserve)
            "firmware_flash_bytes": report["measurements"]["flash_bytes"],
            "tflm_latency_ms": report["measurements"]["latency_ms"],  # the latency model's, DECODE included
            "lut_applied": bool(section.get("applied")),
            "int8_accuracy": report["verification"].get("int8_accuracy"),
            "weight_bits": section.get("weight_bits"),
            "lut_tensors": [(t["tensor"], t["bits"]) for t in section.get("tensors", []) if t["bits"]],
            # the weight tensors judged, as int8 and as shipped (the rest of the file is not weights)
            "weight_bytes": sum(t["bytes_before"] for t in section.get("tensors", [])),
            "weight_bytes_shipped": sum(t["bytes_after"] if t["bits"] else t["bytes_before"]
                                        for t in section.get("tensors", [])),
            # what the indices alone (no tables, no DECODE ops) would take off the int8 file
            "index_only_saving": sum(t["bytes_before"] - t["bytes_before"] * t["bits"] // 8
                                     for t in section.get("tensors", []) if t["bits"] and section["applied"]),
            "tflm_bit_exact": (section.get("tflite_micro_bit_exact") or {}).get("bit_exact"),
            "c_lut_ops": c.get("lut_ops", []), "c_bit_exact": c["host"]["bit_exact"],
            "c_arena_bytes": c["arena_bytes"],
            "c_flash_bytes": mcu.get("flash_bytes"), "c_instructions": mcu.get("instructions_per_inference"),
            "c_mcu_bit_exact": mcu.get("bit_exact")}


def _builds(model: Path, data: str, tmp: Path, stages: list[str]) -> dict:
    return {lut: _build(model, data, tmp / lut, stages, lut) for lut in ("off", "on", "auto")}


def random_labelled(model: Path, out: Path, n: int = 256) -> Path:
    """Random inputs of the model's shape with random class labels: what a stage that fine-tunes needs, where
    the model's data set is not here (sizes only: its accuracy means nothing)."""
    import numpy as np

    from edgec.load.model import load_model

    keras = load_model(str(model)).keras
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, *keras.inputs[0].shape[1:])).astype(np.float32)
    y = rng.integers(0, int(keras.outputs[0].shape[-1]), size=n)
    np.savez(out, x=x, y=y)
    return out


def run(tmp: Path) -> dict:
    results: dict = {"sample": {}, "shared": {}}
    for name, stages in SAMPLE_RECIPES.items():
        results["sample"][name] = {"stages": stages,
                                   **_builds(SAMPLE / "digits.keras", str(SAMPLE / "digits.npz"), tmp / name, stages)}
    for label, file, stages in SHARED_RUNS:
        if (SHARED / file).exists():
            data = random_labelled(SHARED / file, tmp / f"{label}.npz")
            results["shared"][label] = {"stages": stages, **_builds(SHARED / file, str(data), tmp / label, stages)}
    return results


def run_all() -> dict:
    with tempfile.TemporaryDirectory(prefix="edgec-lut-") as tmp:
        return run(Path(tmp))


def _ratio(a, b) -> str:
    return f"{a / b:.3f}" if a and b else "-"


def _n(x) -> str:
    return f"{x:,}" if isinstance(x, int) else "-"


def markdown(r: dict) -> list[str]:
    ptq = r["sample"]["ptq"]["off"]["tflite_bytes"]
    lines = ["## LUT weight compression (`--lut`): .tflite, arena and generated C", "",
             "Each recipe built with seed 0 and `--lut off`, `--lut on` and `--lut auto` (the default), all "
             "with `--emit c` "
             "(cortex-m4). LUT: TFLite-Micro's DECODE op in the .tflite; indices and a table per channel in "
             "the C. *vs PTQ*: against the sample's plain post-training int8 file "
             f"({ptq:,} B). C flash and instructions: the model's code and data on a Cortex-M4 under QEMU "
             "(arm-none-eabi-gcc -O2).", ""]
    rows = []
    runs = [(f"sample {name}", v) for name, v in r["sample"].items()] + list(r["shared"].items())
    for label, v in runs:
        off, on = v["off"], v["on"]
        auto = "LUT" if v["auto"]["lut_applied"] else "int8"  # what the third build, --lut auto, shipped
        # the least any look-up table at these widths could give: the int8 file with each compressed tensor
        # cut to bits/8 of its bytes, tables and DECODE ops free (the two builds hold the same tensors)
        floor = off["tflite_bytes"] - on["index_only_saving"]
        acc = f"{100 * on['int8_accuracy']:.1f} %" if label.startswith("sample") else "random data"
        bits = f"{on['weight_bits']:.2f}" if on["weight_bits"] else "-"
        exact = "yes" if on["tflm_bit_exact"] and on["c_bit_exact"] else ("-" if on["tflm_bit_exact"] is None
                                                                          else "NO")
        rows.append([f"{label} ({' → '.join(v['stages']) or 'post-training int8'})", acc,
                     _n(off["tflite_bytes"]), _n(on["tflite_bytes"]), _ratio(on["tflite_bytes"], off["tflite_bytes"]),
                     _ratio(on.get("weight_bytes_shipped"), on.get("weight_bytes")),
                     _ratio(on["tflite_bytes"], ptq) if label.startswith("sample") else "-",
                     _ratio(floor, ptq) if label.startswith("sample") and on["index_only_saving"] else "-", bits,
                     f"{_n(off['arena_bytes'])} → {_n(on['arena_bytes'])}",
                     _n(off["c_flash_bytes"]), _n(on["c_flash_bytes"]),
                     _ratio(on["c_flash_bytes"], off["c_flash_bytes"]),
                     _ratio(on["c_instructions"], off["c_instructions"]), exact,
                     _ratio(on["firmware_flash_bytes"], off["firmware_flash_bytes"]),
                     _ratio(on["tflm_latency_ms"], off["tflm_latency_ms"]), auto])
    lines += md_table(["recipe", "int8 accuracy", "int8 .tflite B", "LUT .tflite B", "LUT / int8",
                       "weights LUT / int8", "LUT / PTQ", "least possible / PTQ",
                       "bits per weight", "TFLM arena B", "C flash B", "LUT C flash B", "C flash ratio",
                       "C instructions ratio", "bit-exact", "TFLM firmware flash ratio", "TFLM latency ratio",
                       "auto ships"], rows)
    lines += ["", "weights LUT / int8: the conv, depthwise and FC weight tensors alone (the rest of the file, "
              "biases, scales, names, the graph, stays). least possible / PTQ: the int8 file with each "
              "compressed tensor cut to its index bits alone (no tables, no DECODE ops), against the PTQ file: "
              "no look-up table at those widths gets below it. bits per weight: over the LUT-compressed tensors, "
              "indices and tables. bit-exact: TFLite-Micro "
              "on the compressed model against the uncompressed one, and the generated C against TFLite-Micro "
              "(both checked on every build). The arena grows by the largest decoded tensor: TFLite-Micro decodes "
              "each into the arena before its op runs; the generated C decodes a convolution's weights into its "
              "scratch once per op and a fully connected layer's two rows at a time. TFLM firmware flash ratio: "
              "the build's flash estimate for a TFLite-Micro firmware (the .tflite, the runtime by parts with "
              "DECODE's code as the profile measured it apart, the reserve), on against off. TFLM latency ratio: the "
              "latency model's estimate for TFLite-Micro with CMSIS-NN, DECODE costed as measured apart, on against "
              "off. auto ships: what the "
              "`--lut auto` build shipped (the tables only where the bytes saved exceed DECODE's code).", ""]
    return lines


if __name__ == "__main__":
    print("\n".join(markdown(run_all())))
