"""The peer: what a user writes without edgec to get an int8 model into firmware.

Keras's own loader (TFLiteConverter.from_saved_model for a SavedModel folder),
TFLiteConverter with a representative dataset (full int8, int8 input and
output, the same number of calibration samples edgec uses), then ``xxd -i``
for the C array. Usage: ``plain_tf.py MODEL DATA.npz OUT_DIR``.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

CALIBRATION_SAMPLES = 300  # edgec's default (BuildConfig.calibration_samples); checked by benchmarks/overhead.py


def convert_and_dump(converter, x: np.ndarray, out_dir: str) -> None:
    """Full int8 with int8 input and output, calibrated on the first CALIBRATION_SAMPLES of ``x``; then the
    .tflite and its ``xxd -i`` C array into ``out_dir``."""
    def representative_dataset():
        for sample in x[:CALIBRATION_SAMPLES]:
            yield [sample[None]]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.tflite").write_bytes(converter.convert())
    with open(out / "model_data.cc", "w") as fh:
        subprocess.run(["xxd", "-i", "model.tflite"], cwd=out, stdout=fh, check=True)


def main(model_path: str, data_path: str, out_dir: str) -> None:
    arrays = np.load(data_path)
    x = (arrays["x_train"] if "x_train" in arrays else arrays["x"]).astype(np.float32)
    if Path(model_path).is_dir():  # a SavedModel (MLPerf Tiny's KWS reference)
        converter = tf.lite.TFLiteConverter.from_saved_model(model_path)
    else:
        converter = tf.lite.TFLiteConverter.from_keras_model(tf.keras.models.load_model(model_path, compile=False))
    convert_and_dump(converter, x, out_dir)


if __name__ == "__main__":
    main(*sys.argv[1:4])
