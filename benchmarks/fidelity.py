"""Conversion fidelity and size: edgec's int8 model against the peer's, each against the float model.

On the MLPerf Tiny models the peer is the reference int8 file MLCommons
published (converted by TF 2.3, calibrated on real data); on the bundled
sample it is the plain TensorFlow script a user would write
(``plain_tf.py``). Every int8 model runs in LiteRT with its reference kernels
on the same inputs as the float model; reported: top-1 agreement with the
float model, and the output error in that int8 model's own output
quantization steps, |q - (float / scale + zero_point)|.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from common import ENV, INPUTS, REFERENCES, ROOT, SAMPLE, SHARED, edgec_build, shared_present
from edgec.report.markdown import md_table

SAMPLES = 300  # synthetic calibration and evaluation inputs per reference model (different seeds)


def int8_vs_float(data: bytes, x: np.ndarray, float_out: np.ndarray) -> dict:
    """Top-1 agreement and output error (quantization steps) of int8 ``data`` on ``x`` against ``float_out``."""
    from edgec.load.tflite_file import quantize, read_tflite
    from edgec.runtime import litert

    tfl = read_tflite(data)
    q = litert.run(data, quantize(x, tfl.input), reference_kernels=True).astype(np.float64)
    out = tfl.output
    steps = np.abs(q - np.clip(float_out / out.scale + out.zero_point, -128, 127))
    return {"bytes": len(data), "top1_agreement": float(np.mean(q.argmax(1) == float_out.argmax(1))),
            "error_steps_mean": round(float(steps.mean()), 3), "error_steps_max": float(steps.max()),
            "output_scale": float(out.scale), "predicted": q.argmax(1)}


def _float_outputs(model: Path, x: np.ndarray) -> np.ndarray:
    from edgec.check.verification import predict
    from edgec.load.model import load_model

    return predict(load_model(model).keras, x)


def _row(label: str, inputs: str, peer: str, ours: bytes, theirs: bytes, x: np.ndarray, float_out: np.ndarray,
         y: np.ndarray | None = None) -> dict:
    row = {"model": label, "inputs": inputs, "peer_name": peer, "samples": int(len(x)),
           "float_classes_seen": int(len(np.unique(float_out.argmax(1)))), "n_classes": int(float_out.shape[1])}
    for side, data in (("edgec", ours), ("peer", theirs)):
        r = int8_vs_float(data, x, float_out)
        predicted = r.pop("predicted")
        if y is not None:
            r["accuracy"] = float(np.mean(predicted == y))
        row[side] = r
    if y is not None:
        row["float_accuracy"] = float(np.mean(float_out.argmax(1) == y))
    row["size_ratio"] = round(len(ours) / len(theirs), 3)
    return row


def reference_rows(tmp: Path) -> list[dict]:
    """edgec's conversion of each MLPerf Tiny float model against the published int8 reference."""
    rows = []
    for spec in REFERENCES:
        make = INPUTS[spec["inputs"]]
        x_cal, x_eval = make(SAMPLES, 0), make(SAMPLES, 1)
        data = tmp / f"{spec['inputs']}.npz"
        np.savez(data, x_train=x_cal, x_val=x_eval)
        ours = edgec_build(SHARED / spec["float"], data, tmp / spec["inputs"]).read_bytes()
        rows.append(_row(f"{spec['task']}: {spec['float']}", f"synthetic {spec['inputs_label']}",
                         f"MLPerf Tiny reference `{spec['int8']}`", ours, (SHARED / spec["int8"]).read_bytes(),
                         x_eval, _float_outputs(SHARED / spec["float"], x_eval)))
    return rows


def sample_row(tmp: Path, sample_tflite: Path) -> dict:
    """The bundled sample (``sample_tflite``: edgec's build of it) against the plain TensorFlow script,
    on its held-out labelled split."""
    from edgec.check.verification import class_labels
    from edgec.load.data import load_data

    model, npz = SAMPLE / "digits.keras", SAMPLE / "digits.npz"
    ours = sample_tflite.read_bytes()
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "plain_tf.py"), str(model), str(npz),
                    str(tmp / "sample-plain")], check=True, capture_output=True, env=ENV)
    theirs = (tmp / "sample-plain" / "model.tflite").read_bytes()
    ds = load_data(str(npz), (8, 8, 1))
    float_out = _float_outputs(model, ds.x_val)
    return _row("bundled sample (digits.keras)", "its held-out labelled split",
                "plain TensorFlow script (`benchmarks/plain_tf.py`)", ours, theirs, ds.x_val, float_out,
                class_labels(ds.y_val, float_out.shape[1]))


def run(tmp: Path, sample_tflite: Path) -> list[dict]:
    rows = [sample_row(tmp, sample_tflite)]
    if shared_present():
        rows += reference_rows(tmp)
    return rows


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def markdown(rows: list[dict]) -> list[str]:
    def cells(r):
        e, p = r["edgec"], r["peer"]
        return [r["model"], r["peer_name"], f"{r['inputs']} ({r['samples']}; float model predicts "
                f"{r['float_classes_seen']} of {r['n_classes']} classes)",
                f"**{r['size_ratio']}** ({e['bytes']:,} / {p['bytes']:,})", _pct(e["top1_agreement"]),
                _pct(p["top1_agreement"]), e["error_steps_mean"], p["error_steps_mean"],
                f"{e['error_steps_max']:.1f}", f"{p['error_steps_max']:.1f}"]

    lines = ["## Conversion fidelity and size", "",
             *md_table(["model", "peer", "inputs", "edgec bytes / peer bytes", "top-1 agreement with float: edgec",
                        "peer", "output error, mean steps: edgec", "peer", "max steps: edgec", "peer"],
                       [cells(r) for r in rows])]
    labelled = [r for r in rows if "float_accuracy" in r]
    for r in labelled:
        lines += ["", f"{r['model']} with labels: float {_pct(r['float_accuracy'])}, edgec int8 "
                      f"{_pct(r['edgec']['accuracy'])}, peer int8 {_pct(r['peer']['accuracy'])}."]
    lines += ["", "Steps are each int8 model's own output quantization steps (all outputs here are softmax, "
              "scale 1/256). The MLPerf Tiny reference files were calibrated on real Speech Commands / CIFAR-10 "
              "data; edgec's conversions were calibrated on synthetic inputs from the same generator as the "
              "evaluation inputs (different seeds), which favours edgec on these inputs. No data set is available "
              "here to compare on real inputs.", ""]
    return lines
