"""Compression on the bundled sample (real labels): each recipe against the float model.

Runs edgec's own pipeline for every recipe, in one process (part of
``make bench``, which writes the table into RESULTS.md). Every figure is
measured here; ``tests/test_compress_sample.py`` runs the same function and
asserts the compression issue's acceptance bounds on it.
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

from common import SAMPLE, SHARED, build_report
from edgec.report.markdown import md_table

RECIPES = {
    "ptq": [],
    "prune75+pqat": ["prune:sparsity=0.75,epochs=20", "qat"],
    "qat": ["qat"],
    "cluster16": ["cluster:clusters=16,epochs=3"],
    "channels50": ["channels:fraction=0.5,epochs=5"],
    "lowrank": ["lowrank:epochs=3"],
}
# The int8 weights of these stored as LUT indices and tables (--lut on: auto leaves the sample's, which save
# less than TFLite-Micro's DECODE kernel takes; benchmarks/lut.py has the rest of that story).
LUT_RECIPES = {
    "cluster16+lut": ["cluster:clusters=16,epochs=3"],
    "ternary+lut": ["ternary"],
    "binary+lut": ["binary"],
}
DISTILL = "distill:teacher={teacher},student={student},alpha={alpha},temperature=4,epochs=30,learning_rate=0.01"
DISTILL_SEEDS = (0, 1, 2)


def make_student(path: Path) -> int:
    """A small CNN student for the digits task (690 parameters), saved untrained."""
    from edgec import frameworks

    k = frameworks.tf_keras()
    k.utils.set_random_seed(0)
    inp = k.Input((8, 8, 1))
    x = k.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="s_conv")(inp)
    x = k.layers.Flatten(name="s_flat")(x)
    model = k.Model(inp, k.layers.Dense(10, activation="softmax", name="s_out")(x))
    model.save(path)
    return model.count_params()


def build(out: Path, stages: list[str], seed: int = 0, **settings) -> dict:
    report = build_report(SAMPLE / "digits.keras", SAMPLE / "digits.npz", out, stages, seed,
                          budgets=(("accuracy_drop", 1.0),), **settings)
    tflite = (out / "digits.tflite").read_bytes()
    from edgec.load.tflite_file import read_tflite, weight_sparsity

    packed = bool((report["tflite"].get("lut") or {}).get("applied"))
    if packed:  # the packed weights are not int8: the int8 model's
        sparsity = next(s for s in report["stages"] if s["name"] == "int8")["int8_weight_sparsity"]
    else:
        sparsity = weight_sparsity(tflite, read_tflite(tflite))
    return {"lut": packed, "stages": stages, "seed": seed, "report_stages": report["stages"],
            "float_accuracy": report["verification"].get("float_accuracy"),
            "int8_accuracy": report["verification"]["int8_accuracy"],
            "macs": report["measurements"]["macs"], "arena_bytes": report["measurements"]["arena_bytes"],
            "tflite_bytes": len(tflite), "tflite_gzip_bytes": len(gzip.compress(tflite, 9, mtime=0)),
            "int8_weight_sparsity": sparsity}


def resnet8_channels(tmp: Path) -> dict | None:
    """Footprint of MLPerf Tiny's ResNet-8 before and after channels 50 % (random calibration: sizes only)."""
    model = SHARED / "ic_resnet8.h5"
    if not model.exists():
        return None
    report = build_report(model, "random", tmp / "resnet8", ["channels:fraction=0.5,epochs=1"])
    return report["stages"][1]["footprint"]


def run_all() -> dict:
    results = {}
    with tempfile.TemporaryDirectory(prefix="edgec-compress-") as tmp:
        tmp = Path(tmp)
        for name, stages in RECIPES.items():
            results[name] = build(tmp / name, stages)
        for name, stages in LUT_RECIPES.items():
            results[name] = build(tmp / name, stages, lut="on")
        student = tmp / "student.keras"
        results["student_parameters"] = make_student(student)
        for alpha, label in ((0.1, "distilled"), (1.0, "labels_only")):
            results[label] = [build(tmp / f"{label}{seed}", [DISTILL.format(teacher=SAMPLE / "digits.keras",
                                                                            student=student, alpha=alpha)], seed)
                              for seed in DISTILL_SEEDS]
        results["resnet8_channels50"] = resnet8_channels(tmp)
    # The distill runs load the teacher as their input model: its row 0 is the teacher.
    results["teacher_parameters"] = results["distilled"][0]["report_stages"][0]["parameters"]
    results["float"] = float_baseline()
    return results


def float_baseline() -> dict:
    """The float model as given: its accuracy on the held-out split and its float32 .tflite size."""
    from edgec import frameworks
    from edgec.check.verification import accuracy, predict
    from edgec.load.data import load_data
    from edgec.load.model import load_model

    model = load_model(SAMPLE / "digits.keras").for_stages()
    ds = load_data(str(SAMPLE / "digits.npz"), tuple(model.inputs[0].shape[1:]))
    data = frameworks.tf().lite.TFLiteConverter.from_keras_model(model).convert()
    return {"accuracy": accuracy(predict(model, ds.x_val), ds.y_val), "tflite_bytes": len(data),
            "tflite_gzip_bytes": len(gzip.compress(data, 9, mtime=0)), "parameters": int(model.count_params())}


def _pct(x) -> str:
    return f"{100 * x:.1f} %"


def _pp(x) -> str:
    return f"{100 * x:+.1f} pp"


def markdown(r: dict) -> list[str]:
    f = r["float"]
    lines = ["## Compression on the bundled sample (sklearn digits, 360 held-out labels)", "",
             "Each recipe is one `edgec build` of `samples/digits/digits.keras` (cortex-m4 target), against the "
             f"float model as given: {_pct(f['accuracy'])} accurate, {f['parameters']:,} parameters, "
             f"{f['tflite_bytes']:,} bytes as a float32 .tflite ({f['tflite_gzip_bytes']:,} gzipped).", ""]

    def row(name, x, acc):
        return [name, _pct(acc), _pp(acc - f["accuracy"]), f"{x['tflite_bytes']:,}",
                f"**{x['tflite_bytes'] / f['tflite_bytes']:.3f}**", f"{x['tflite_gzip_bytes']:,}",
                f"{x['tflite_gzip_bytes'] / f['tflite_gzip_bytes']:.3f}", _pct(x["int8_weight_sparsity"]),
                f"{x['macs']:,}", f"{x['arena_bytes']:,}"]

    rows = [row(f"{name} ({' → '.join(r[name]['stages']) or 'post-training int8'})", r[name],
                r[name]["int8_accuracy"]) for name in RECIPES]
    rows += [row(f"{name} ({' → '.join(r[name]['stages'])}, --lut on{'' if r[name]['lut'] else ': NOT applied'})",
                 r[name], r[name]["int8_accuracy"]) for name in LUT_RECIPES if name in r]
    accs = sorted(d["int8_accuracy"] for d in r["distilled"])
    rows.append(row(f"distill ({r['student_parameters']:,}-parameter student, median of {len(accs)} seeds)",
                    r["distilled"][0], accs[len(accs) // 2]))
    lines += md_table(["recipe", "int8 accuracy", "vs float", ".tflite bytes", "**size / float**", "gzip bytes",
                       "gzip / float", "int8 weight sparsity", "MACs", "arena bytes"], rows)
    clustered = r["cluster16"]["report_stages"][1]["unique_values_per_kernel"]
    lines += ["", f"Clustering: unique values per clustered kernel {clustered}.", "",
              f"Distillation: student {r['student_parameters']:,} parameters, teacher "
              f"{r['teacher_parameters']:,}; "
              "same student file, epochs and seeds; alpha 0.1 vs 1.0 (labels only, teacher ignored).", "",
              *md_table(["seed", "distilled int8", "labels-only int8"],
                        [[d["seed"], _pct(d["int8_accuracy"]), _pct(b["int8_accuracy"])]
                         for d, b in zip(r["distilled"], r["labels_only"])])]
    fp = r.get("resnet8_channels50")
    if fp:
        lines += ["", "MLPerf Tiny ResNet-8 (`../shared/models/ic_resnet8.h5`), `channels:fraction=0.5`, "
                      "random calibration (sizes only; no CIFAR-10 here for accuracy):", ""]
        keys = ("parameters", "macs", "tflite_bytes", "arena_bytes")
        lines += md_table(["", "parameters", "MACs", "int8 .tflite bytes", "TFLite-Micro arena bytes"],
                          [[key, *(f"{fp[key][k]:,}" for k in keys)] for key in ("before", "after")]
                          + [["after / before", *(f"{fp['ratio'][k]:.3f}" for k in keys)]])
    return lines + [""]


if __name__ == "__main__":
    print("\n".join(markdown(run_all())))
