"""Side by side: channel importance by L1, Taylor and Hessian at the same fraction, and SVD, Tucker-2 and CP
factorizations, on the sample (real labels: accuracy) and ResNet-8 (random data: sizes and MACs only).

Every row is one build by edgec's own pipeline, measured in this run. Part of ``make bench``.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from common import SAMPLE, SHARED, build_report
from edgec.report.markdown import md_table

CHANNEL_CRITERIA = ("l1", "taylor", "hessian")
SEEDS = (0, 1, 2)
CHANNELS = "channels:fraction=0.5,epochs=5,criterion={criterion}"
LOWRANK = {  # label -> recipe; macs: the fraction of the MACs of the layers each method may factorize
    "svd, macs 0.4 (Dense and 1x1 only)": "lowrank:macs=0.4,epochs={epochs}",
    "tucker, macs 0.4": "lowrank:method=tucker,macs=0.4,epochs={epochs}",
    "cp, macs 0.4": "lowrank:method=cp,macs=0.4,epochs={epochs}",
    "tucker, ratio 0.5": "lowrank:method=tucker,ratio=0.5,epochs={epochs}",
}


def _build(model: Path, data: str, out: Path, stage: str, seed: int = 0) -> dict:
    report = build_report(model, data, out, [stage], seed)
    row = report["stages"][1]
    return {"stage": stage, "seed": seed, "int8_accuracy": report["verification"].get("int8_accuracy"),
            "float_accuracy_after": row.get("float_accuracy"), "footprint": row["footprint"],
            "importance": row.get("importance"), "factorized": row.get("factorized", [])}


def run(tmp: Path) -> dict:
    digits = str(SAMPLE / "digits.npz")
    results: dict = {"channels": {c: [_build(SAMPLE / "digits.keras", digits, tmp / f"{c}{s}",
                                             CHANNELS.format(criterion=c), s) for s in SEEDS]
                                  for c in CHANNEL_CRITERIA},
                     "lowrank_sample": {label: _build(SAMPLE / "digits.keras", digits, tmp / f"lr{i}",
                                                      recipe.format(epochs=3))
                                        for i, (label, recipe) in enumerate(LOWRANK.items())}}
    if (SHARED / "ic_resnet8.h5").exists():
        results["lowrank_resnet8"] = {label: _build(SHARED / "ic_resnet8.h5", "random", tmp / f"r8_{i}",
                                                    recipe.format(epochs=0))
                                      for i, (label, recipe) in enumerate(LOWRANK.items())}
    return results


def run_all() -> dict:
    with tempfile.TemporaryDirectory(prefix="edgec-criteria-") as tmp:
        return run(Path(tmp))


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def markdown(r: dict) -> list[str]:
    lines = ["## Channel importance and factorizations side by side", "",
             "`channels:fraction=0.5,epochs=5` on the sample (cortex-m4), the criterion alone changed, three seeds "
             "(the seed sets the fine-tuning's shuffling and initial state; taylor and hessian rank on the "
             "training data). taylor: |activation x gradient| per channel on the labels; hessian: the optimal "
             "brain damage saliency with the Fisher's diagonal.", ""]
    rows = []
    for criterion, runs in r["channels"].items():
        accs = [x["int8_accuracy"] for x in runs]
        rows.append([criterion, *(_pct(a) for a in accs), _pct(statistics.median(accs)), _pct(min(accs)),
                     f"{runs[0]['footprint']['after']['macs']:,}"])
    lines += md_table(["criterion", *(f"int8 acc, seed {s}" for s in SEEDS), "median", "worst", "MACs after"], rows)

    def lowrank_rows(runs: dict, accuracy: bool) -> list:
        out = []
        for label, x in runs.items():
            fp = x["footprint"]
            out.append([label, f"{fp['after']['macs']:,}", f"{fp['ratio']['macs']:.3f}",
                        f"{fp['after']['parameters']:,}", f"{fp['after']['tflite_bytes']:,}",
                        *([_pct(x["int8_accuracy"])] if accuracy else []),
                        str(sum(1 for f in x["factorized"] if f.get("method") in ("tucker", "cp")))])
        return out

    head = ["recipe", "MACs after", "MACs after / before", "parameters", "int8 .tflite B"]
    lines += ["", "`lowrank` on the sample, fine-tuned 3 epochs. `macs=0.4`: one rank ratio for all the layers the "
                  "method may factorize, searched so that they keep at most 40 % of their MACs (svd may factorize "
                  "only Dense and 1x1 layers; tucker and cp also the kxk convolutions), so tucker and cp are compared "
                  "at the same MAC budget:", ""]
    lines += md_table([*head, "int8 accuracy", "kxk convs factored"], lowrank_rows(r["lowrank_sample"], True))
    if r.get("lowrank_resnet8"):
        lines += ["", "`lowrank` on MLPerf Tiny ResNet-8 (`../shared/models/ic_resnet8.h5`), random data, not "
                      "fine-tuned (sizes and MACs only; the model converts and runs in TFLite-Micro in each row):", ""]
        lines += md_table([*head, "kxk convs factored"], lowrank_rows(r["lowrank_resnet8"], False))
    return lines + [""]


if __name__ == "__main__":
    print("\n".join(markdown(run_all())))
