"""Tool overhead: `edgec build` (post-training int8 only) against the plain TensorFlow script.

Both are whole processes started the same way, alternating, on the same model
and data. edgec does more than the script (it verifies the int8 model against
the float one in LiteRT and TFLite-Micro, measures the arena and host latency,
writes headers and reports): the ratio is what that costs.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from common import EDGEC, INPUTS, REFERENCES, ROOT, SAMPLE, SHARED, median, run_measured, shared_present
from edgec.report.markdown import md_table

PLAIN = ROOT / "benchmarks" / "plain_tf.py"
PLAIN_QAT = ROOT / "benchmarks" / "plain_qat.py"
QAT_EPOCHS = 2


def _cases(tmp: Path) -> list[tuple[str, list[str], list[str], int]]:
    """(label, edgec's command, the plain script's command, runs) per model."""
    def build(model: Path, data: Path, *extra: str) -> list[str]:
        return EDGEC + ["build", str(model), "--target", "cortex-m4", "--data", str(data), "--out",
                        str(tmp / "overhead-edgec"), "--quiet", *extra]

    def plain(script: Path, model: Path, data: Path, *extra: str) -> list[str]:
        return [sys.executable, str(script), str(model), str(data), str(tmp / "overhead-plain"), *extra]

    digits, digits_data = SAMPLE / "digits.keras", SAMPLE / "digits.npz"
    cases = [("samples/digits/digits.keras", build(digits, digits_data), plain(PLAIN, digits, digits_data), 5)]
    if shared_present():
        for spec in REFERENCES:  # the KWS SavedModel and the ResNet-8 .h5
            data = tmp / f"overhead-{spec['inputs']}.npz"
            x = INPUTS[spec["inputs"]](400, 2)
            labels = np.random.default_rng(2).integers(0, 10, len(x))  # QAT trains on them: any labels time alike
            np.savez(data, x_train=x[:300], x_val=x[300:], y_train=labels[:300], y_val=labels[300:])
            model = SHARED / spec["float"]
            cases.append((spec["float"], build(model, data), plain(PLAIN, model, data), 3))
            if spec["float"].endswith(".h5"):  # TFMOT needs tf_keras: the .h5 loads there as it is
                cases.append((f"{spec['float']} --stage qat:epochs={QAT_EPOCHS} (vs a plain TFMOT QAT script)",
                              build(model, data, "--stage", f"qat:epochs={QAT_EPOCHS}"),
                              plain(PLAIN_QAT, model, data, str(QAT_EPOCHS)), 3))
    return cases


def run(tmp: Path) -> list[dict]:
    from edgec.config import BuildConfig, TrainingConfig

    sys.path.insert(0, str(PLAIN.parent))
    import plain_qat
    from plain_tf import CALIBRATION_SAMPLES

    if CALIBRATION_SAMPLES != BuildConfig.calibration_samples:  # plain_qat.py converts with plain_tf.py's code
        raise RuntimeError("plain_tf.py must calibrate on as many samples as edgec does")
    if (plain_qat.LEARNING_RATE, plain_qat.BATCH_SIZE) != (TrainingConfig.learning_rate / 10,
                                                          TrainingConfig.batch_size):
        raise RuntimeError("plain_qat.py must fine-tune as edgec's QAT stage does")
    rows = []
    for label, edgec, plain, runs in _cases(tmp):
        run_measured(plain), run_measured(edgec)  # warm the file caches
        sides = {"edgec": [], "plain": []}
        for i in range(runs):
            order = ("plain", "edgec") if i % 2 == 0 else ("edgec", "plain")
            for side in order:
                sides[side].append(run_measured(edgec if side == "edgec" else plain))
        row = {"model": label, "runs": runs}
        for side, costs in sides.items():
            row[side] = {key: median([getattr(c, key) for c in costs])
                         for key in (f.name for f in dataclasses.fields(costs[0]))}
        row["time_ratio"] = round(row["edgec"]["seconds"] / row["plain"]["seconds"], 2)
        row["memory_ratio"] = round(row["edgec"]["peak_tree_rss"] / row["plain"]["peak_tree_rss"], 2)
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> list[str]:
    mib = 1 << 20
    def cells(r):
        e, p = r["edgec"], r["plain"]
        return [r["model"], r["runs"], f"{e['seconds']:.1f}", f"{p['seconds']:.1f}", f"**{r['time_ratio']}x**",
                f"{e['peak_tree_rss'] / mib:.0f}", f"{p['peak_tree_rss'] / mib:.0f}", f"**{r['memory_ratio']}x**",
                f"{e['peak_process_rss'] / mib:.0f}", f"{p['peak_process_rss'] / mib:.0f}"]

    lines = ["## Tool overhead: `edgec build` (post-training int8) vs the plain TensorFlow script + `xxd -i`", "",
             *md_table(["model", "runs", "edgec s", "plain s", "**time edgec / plain**", "edgec peak MiB",
                        "plain peak MiB", "**memory edgec / plain**", "largest single process: edgec MiB",
                        "plain MiB"], [cells(r) for r in rows])]
    lines += ["", "Medians of alternating runs on this machine (wall time of whole processes, including imports). "
              "Peak memory: the largest sum of resident memory over the process and its children (edgec runs its "
              "interpreters in a child process), sampled every 10 ms; the last columns are the kernel's exact "
              "peak of the largest single process. The plain script only converts and dumps; `edgec build` also "
              "verifies the int8 model against the float one (LiteRT and TFLite-Micro), measures the arena and "
              "host latency, and writes headers and reports. "
              "The peer scripts are [`benchmarks/plain_tf.py`](plain_tf.py) and, for the QAT row, "
              f"[`benchmarks/plain_qat.py`](plain_qat.py) (TFMOT's quantize_model, {QAT_EPOCHS} epochs of the same "
              "fine-tuning, then the same conversion).", ""]
    return lines
