"""Write the fuzzer's seed inputs into tests/data/fuzz/KIND/ (small valid files of each kind).

    python fuzz/make_seeds.py
"""

from pathlib import Path

import numpy as np

SEEDS = Path(__file__).resolve().parents[1] / "tests" / "data" / "fuzz"


def main():
    from edgec import frameworks
    from edgec.convert.int8 import convert_int8

    k = frameworks.tf_keras()
    k.utils.set_random_seed(0)
    inp = k.Input((8, 8, 1))
    x = k.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
    y = k.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = k.layers.Add(name="add")([x, y])
    x = k.layers.AveragePooling2D(2, name="pool")(x)
    x = k.layers.Flatten(name="flat")(x)
    model = k.Model(inp, k.layers.Dense(3, activation="softmax", name="fc")(x))
    rng = np.random.default_rng(0)
    x_data = rng.uniform(0, 1, (16, 8, 8, 1)).astype(np.float32)
    for kind in ("tflite", "npz", "h5", "recipe", "target", "savedmodel_meta"):
        (SEEDS / kind).mkdir(parents=True, exist_ok=True)
    base = SEEDS.parent / "fuzz_base" / "savedmodel"
    model.save(base, save_format="tf")
    (SEEDS / "savedmodel_meta" / "seed.pb").write_bytes((base / "keras_metadata.pb").read_bytes())
    (SEEDS / "tflite" / "seed.tflite").write_bytes(convert_int8(model, x_data))
    (SEEDS / "tflite" / "seed-lut.tflite").write_bytes(lut_seed())
    np.savez(SEEDS / "npz" / "seed_xy.npz", x=x_data, y=rng.integers(0, 3, 16))
    np.savez(SEEDS / "npz" / "seed_split.npz", x_train=x_data[:12], y_train=np.eye(3)[rng.integers(0, 3, 12)],
             x_val=x_data[12:], y_val=rng.integers(0, 3, 4))
    model.save(SEEDS / "h5" / "seed.h5")
    (SEEDS / "recipe" / "seed.toml").write_text('''model = "model.keras"
data = "data.npz"
target = "cortex-m4"
seed = 3
emit = ["c"]
[budgets]
ram = "96KiB"
latency = "50ms"
accuracy_drop = "2%"
[training]
learning_rate = 0.001
batch_size = 32
epochs = 2
[[stages]]
name = "prune"
sparsity = 0.75
schedule = "polynomial"
[[stages]]
name = "qat"
''')
    (SEEDS / "recipe" / "code-keys.toml").write_text('''model = "model.keras"
data = "loader.py:load"
target = "cortex-m4"
custom_objects = ["mylayers"]
''')
    (SEEDS / "target" / "seed.toml").write_text('''name = "my-board"
extends = "cortex-m4"
clock_hz = 120000000
[budgets]
flash = "512KiB"
ram = "128KiB"
latency = "20ms"
''')


def lut_seed() -> bytes:
    """A model whose 64x32 kernel holds 4 values per output channel, LUT-compressed (a DECODE op and its
    ancillary tensor) as `edgec build --lut on` ships it."""
    from edgec import frameworks
    from edgec.convert import lut
    from edgec.convert.int8 import convert_int8
    from edgec.load.tflite_file import read_tflite

    k = frameworks.tf_keras()
    k.utils.set_random_seed(0)
    inp = k.Input((64,))
    model = k.Model(inp, k.layers.Dense(3, name="out")(k.layers.Dense(32, activation="relu", name="fc")(inp)))
    rng = np.random.default_rng(0)
    kernel, bias = model.get_layer("fc").get_weights()
    model.get_layer("fc").set_weights([rng.choice(np.array([-0.3, -0.1, 0.1, 0.3], np.float32), kernel.shape), bias])
    data = convert_int8(model, rng.normal(0, 1, (16, 64)).astype(np.float32))
    packed, section = lut.compress_weights(data, read_tflite(data))
    assert section["applied"], section
    return packed


if __name__ == "__main__":
    main()
