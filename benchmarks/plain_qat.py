"""The peer of `edgec build --stage qat:epochs=E`: what a user writes with TFMOT directly.

tf_keras's loader, ``tfmot.quantization.keras.quantize_model``, the same fine-tuning as edgec's QAT stage
(Adam at edgec's QAT learning rate, batch 32, shuffled, validated on x_val), then TFLiteConverter with a
representative dataset (full int8, int8 input and output, edgec's calibration sample count) and ``xxd -i``.
Usage: ``plain_qat.py MODEL.h5 DATA.npz OUT_DIR EPOCHS``.
"""

import os
import sys

LEARNING_RATE = 1e-4       # edgec's QAT default: [training] learning_rate / 10
BATCH_SIZE = 32            # edgec's [training] batch_size


def main(model_path: str, data_path: str, out_dir: str, epochs: str) -> None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"  # TFMOT works on tf_keras only (set before TensorFlow loads)
    import numpy as np
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    arrays = np.load(data_path)
    x, y = arrays["x_train"].astype(np.float32), arrays["y_train"]
    model = tfmot.quantization.keras.quantize_model(keras.models.load_model(model_path, compile=False))
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["sparse_categorical_accuracy"])
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=int(epochs), shuffle=True, verbose=0,
              validation_data=(arrays["x_val"].astype(np.float32), arrays["y_val"]))

    from plain_tf import convert_and_dump  # the same conversion as the plain post-training script

    convert_and_dump(tf.lite.TFLiteConverter.from_keras_model(model), x, out_dir)


if __name__ == "__main__":
    main(*sys.argv[1:5])
