"""Regenerate the bundled digits sample: data (digits.npz) and a Keras 3 model (digits.keras).

The data is scikit-learn's bundled 8x8 handwritten digits (1,797 images, no
download), scaled to [0, 1] and split 80/20 with a fixed seed. The model is a
small CNN trained with Keras 3, the way a user would save it, so that building
it exercises edgec's Keras 3 → tf_keras bridge.

Run from the repository root: ``.venv/bin/python samples/digits/make_sample.py``.
"""

import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 7


def make_data() -> dict:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y)
    arrays = {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val}
    np.savez_compressed(HERE / "digits.npz", **arrays)
    return arrays


def make_model(arrays: dict) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(SEED)
    inp = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv1")(inp)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw2")(x)
    y = keras.layers.BatchNormalization(name="bn2")(y)
    y = keras.layers.ReLU(name="relu2")(y)
    x = keras.layers.Add(name="residual")([x, y])
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv3")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(32, activation="relu", name="fc1")(x)
    out = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    model = keras.Model(inp, out, name="digits")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(arrays["x_train"], arrays["y_train"], epochs=25, batch_size=32, verbose=2,
              validation_data=(arrays["x_val"], arrays["y_val"]))
    model.save(HERE / "digits.keras")


if __name__ == "__main__":
    make_model(make_data())
