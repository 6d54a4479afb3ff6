"""Data loading: the accepted forms, the split, and every kind of bad data."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from edgec.errors import DataError
from edgec.load.data import load_data

SHAPE = (4, 4, 1)


def _save(tmp_path, **arrays):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return str(path)


def test_x_y_is_split_and_stated(tmp_path):
    x = np.random.default_rng(0).random((50,) + SHAPE)
    ds = load_data(_save(tmp_path, x=x, y=np.arange(50) % 3), SHAPE)
    assert len(ds.x_train) == 40 and len(ds.x_val) == 10
    assert "held out" in ds.split and ds.y_val is not None
    assert ds.x_train.dtype == np.float32


def test_train_val_arrays(tmp_path):
    x = np.zeros((6,) + SHAPE)
    ds = load_data(_save(tmp_path, x_train=x, y_train=np.zeros(6), x_val=x[:2], y_val=np.zeros(2)), SHAPE)
    assert len(ds.x_train) == 6 and len(ds.x_val) == 2


def test_random_is_flagged():
    ds = load_data("random", SHAPE, samples=20)
    assert ds.random and ds.x_train.shape == (20,) + SHAPE and "RANDOM" in ds.split


def test_module_function_loader(tmp_path, monkeypatch):
    (tmp_path / "myloader.py").write_text(
        "import numpy as np\n"
        "def arrays():\n    return np.ones((12, 4, 4, 1)), np.zeros(12)\n"
        "def dataset():\n"
        "    import tensorflow as tf\n"
        "    return tf.data.Dataset.from_tensor_slices((np.ones((12, 4, 4, 1), 'float32'), np.zeros(12))).batch(5)\n")
    monkeypatch.chdir(tmp_path)  # a loader is a module of the user's own, in the current folder
    assert len(load_data("myloader.py:arrays", SHAPE).x_train) == len(load_data("myloader:arrays", SHAPE).x_train)
    assert len(load_data("myloader:arrays", SHAPE).x_train) + len(load_data("myloader:arrays", SHAPE).x_val) == 12
    ds = load_data("myloader:dataset", SHAPE)
    assert len(ds.x_train) + len(ds.x_val) == 12 and ds.y_val is not None
    sys.modules.pop("myloader", None)


@pytest.mark.parametrize("arrays, words", [
    ({"x": np.zeros((5, 3, 3, 1))}, "shape"),
    ({"x": np.full((5,) + SHAPE, np.nan)}, "NaN"),
    ({"x": np.full((5,) + SHAPE, np.inf)}, "infinite"),
    ({"x": np.zeros((0,) + SHAPE)}, "no samples"),
    ({"x": np.zeros((5,) + SHAPE), "y": np.zeros(4)}, "labels"),
    ({"images": np.zeros((5,) + SHAPE)}, "needs 'x'"),
    ({"x": np.array(["a"] * 5)}, "dtype"),
])
def test_bad_arrays(tmp_path, arrays, words):
    with pytest.raises(DataError, match=words):
        load_data(_save(tmp_path, **arrays), SHAPE)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_data(str(tmp_path / "nope.npz"), SHAPE)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable"):
        load_data(str(bad), SHAPE)
    with pytest.raises(DataError, match="no module 'no_such_module_xyz'"):
        load_data("no_such_module_xyz:f", SHAPE)
