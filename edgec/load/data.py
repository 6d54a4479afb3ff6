"""Datasets: ``.npz`` files, ``package.module:function`` loaders, or ``random``.

Whatever the source, the build sees one :class:`Dataset`: training arrays (for
compression stages), validation arrays (for verification and accuracy), and
calibration samples for the int8 converter. Shapes, dtypes and finiteness are
checked against the model's input here, so later stages can trust the data.
"""

from __future__ import annotations

import dataclasses
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from edgec.errors import DataError, EdgecError
from edgec.load import limits, user_code

RANDOM = "random"
# Fraction of a plain x/y file held out for validation (stated in the report).
VALIDATION_SPLIT = 0.2


def count(x) -> int:
    """Samples in ``x``: an array, or a dict of arrays by input name (a model of several inputs)."""
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def take(x, rows: slice):
    """The rows ``rows`` of ``x`` (an array, or each array of a dict by name)."""
    if isinstance(x, dict):
        return {name: a[rows] for name, a in x.items()}
    return x[rows]


Arrays = Any  # an array (one input or output), or a dict of arrays by tensor name (several)


@dataclasses.dataclass
class Dataset:
    """Arrays for training, validation and calibration, already checked.

    For a model of one input, ``x_*`` are arrays (batch first); for several, dicts of arrays by the
    model's input names, in its input order. Likewise ``y_*`` for several outputs (a dict holding
    the outputs that have labels), else an array or None.
    """

    source: str
    x_train: Arrays
    y_train: Arrays | None
    x_val: Arrays
    y_val: Arrays | None
    split: str
    random: bool = False

    def calibration(self, n: int):
        """The first ``n`` training samples (the converter's representative set)."""
        return take(self.x_train, slice(0, n))

    def check_labels(self, output_shape) -> None:
        """Labels must fit the model's output: class ids in ``0 .. width - 1`` (whole numbers), one-hot
        rows of the output's width, or values of the output's shape. ``output_shape``: a tuple, or a
        dict of shapes by output name for a model of several outputs.

        Raises:
            DataError: naming the labels, what is wrong and the fix.
        """
        if isinstance(output_shape, dict):
            for out, shape in output_shape.items():
                labels = [(f"{key}_{out}", y.get(out)) for key, y in (("y_train", self.y_train),
                                                                     ("y_val", self.y_val)) if y is not None]
                _check_label_fit(labels, shape, self.source)
            return
        _check_label_fit((("y_train", self.y_train), ("y_val", self.y_val)), output_shape, self.source)

    def to_dict(self) -> dict:
        return {"source": self.source, "random": self.random, "split": self.split,
                "train_samples": int(count(self.x_train)), "val_samples": int(count(self.x_val)),
                "labels": self.y_val is not None}


def _check_label_fit(labels, output_shape: tuple, source: str) -> None:
    """Each ``(name, labels)`` of ``labels`` fits an output of ``output_shape`` (see Dataset.check_labels)."""
    width = int(np.prod(output_shape)) if output_shape else 1
    for name, y in labels:
        if y is None:
            continue
        per_sample = int(np.prod(y.shape[1:])) if y.ndim > 1 else 1
        if per_sample == width and width > 1:
            continue  # one-hot rows, or targets of the output's shape (regression, reconstruction)
        if per_sample != 1:
            raise DataError(f"{source}: '{name}' has {per_sample} values per sample, but the model has "
                            f"{width} output value(s); give class ids, one-hot rows of width {width}, or targets "
                            "of the output's shape")
        if width == 1:
            continue  # one sigmoid unit or one regression value: any finite number
        flat = y.reshape(len(y))
        if np.any(flat != np.round(flat)):
            raise DataError(f"{source}: '{name}' holds fractional values for a {width}-way output; class "
                            "labels are whole numbers (or give one-hot rows)")
        lo, hi = int(flat.min()), int(flat.max())
        if lo < 0 or hi >= width:
            raise DataError(f"{source}: '{name}' holds class ids from {lo} to {hi}, but the model has "
                            f"{width} outputs (ids 0 to {width - 1}); fix the labels or the model")


def _check_x(x, name: str, shape: tuple, source: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception:
            raise DataError(f"{source}: '{name}' is not an array; provide numpy arrays") from None
    if x.dtype.kind not in "biuf":
        raise DataError(f"{source}: '{name}' has dtype {x.dtype}, not numbers; store numeric arrays")
    expected = tuple(None if d is None else int(d) for d in shape)  # None: any size (a free time axis)
    if x.ndim == len(expected):  # a single sample
        x = x[None]
    if x.ndim != len(expected) + 1 or any(e is not None and e != d for e, d in zip(expected, x.shape[1:])):
        raise DataError(f"{source}: '{name}' has shape {tuple(x.shape)} but the model expects "
                        f"(N, {', '.join(map(str, expected))}); reshape the data to the model's input")
    if len(x) == 0:
        raise DataError(f"{source}: '{name}' holds no samples; provide at least one")
    # the float32 copy is what training and calibration hold: bound it, not only the file's own bytes
    limits.check_array_size(x.size * 4, f"{source}: '{name}' as float32")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise DataError(f"{source}: '{name}' contains {bad} NaN or infinite values; clean the data first")
    return x


def _check_y(y, x: np.ndarray, name: str, source: str) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y)
    if y.ndim == 0 or len(y) != count(x):
        raise DataError(f"{source}: '{name}' has {len(y) if y.ndim else 0} labels for {count(x)} samples; give one "
                        "label per sample")
    if y.dtype.kind not in "biuf" or (y.dtype.kind == "f" and not np.all(np.isfinite(y))):
        raise DataError(f"{source}: '{name}' must hold finite numbers; clean the labels")
    return y


def _gather(arrays: dict, key: str, names: list[str] | None, what: str, source: str, complete: bool):
    """The array ``key`` (one tensor: ``names`` None), or the arrays ``<key>_<name>`` by name (several;
    with one name, the plain ``key`` too). ``complete``: every name needs its array (inputs)."""
    if names is None:
        return arrays.get(key)
    if len(names) == 1 and key in arrays:
        return {names[0]: arrays[key]}
    found = {n: arrays[f"{key}_{n}"] for n in names if f"{key}_{n}" in arrays}
    if found and complete and len(found) != len(names):
        missing = [f"{key}_{n}" for n in names if n not in found]
        raise DataError(f"{source} has {', '.join(f'{key}_{n}' for n in found)} but not {', '.join(missing)}; the "
                        f"model's {what} are {', '.join(names)}: give one array per {what[:-1]}, named {key}_<name>")
    return found or None


def _check_xs(x, key: str, shape, source: str):
    if not isinstance(shape, dict):
        return _check_x(x, key, shape, source)
    checked = {n: _check_x(x[n], f"{key}_{n}", shape[n], source) for n in shape}
    if len({len(a) for a in checked.values()}) > 1:
        sizes = ", ".join(f"{key}_{n}: {len(a)}" for n, a in checked.items())
        raise DataError(f"{source}: the inputs hold different numbers of samples ({sizes}); give each input "
                        "the same samples, in the same order")
    return checked


def _check_ys(y, x, key: str, outputs: list[str] | None, source: str):
    if outputs is None or y is None:
        return _check_y(y, x, key, source)
    return {n: _check_y(labels, x, f"{key}_{n}", source) for n, labels in y.items()}


def _from_arrays(arrays: dict, shape, source: str, outputs: list[str] | None = None) -> Dataset:
    """A Dataset from named arrays. ``shape``: the input shape, or a dict of shapes by input name (a
    model of several inputs: arrays ``x_<name>``); ``outputs``: the output names of a model of several
    outputs (labels ``y_<name>``), else None."""
    inputs = list(shape) if isinstance(shape, dict) else None

    def x_of(key):
        return _gather(arrays, key, inputs, "inputs", source, complete=True)

    def y_of(key):
        return _gather(arrays, key, outputs, "outputs", source, complete=False)

    if x_of("x_train") is not None and x_of("x_val") is not None:
        x_train = _check_xs(x_of("x_train"), "x_train", shape, source)
        x_val = _check_xs(x_of("x_val"), "x_val", shape, source)
        y_train = _check_ys(y_of("y_train"), x_train, "y_train", outputs, source)
        y_val = _check_ys(y_of("y_val"), x_val, "y_val", outputs, source)
        return Dataset(source, x_train, y_train, x_val, y_val, "x_val/y_val as given")
    if x_of("x") is not None:
        x = _check_xs(x_of("x"), "x", shape, source)
        y = _check_ys(y_of("y"), x, "y", outputs, source)
        n = count(x)
        if n < 10:
            return Dataset(source, x, y, x, y, "too few samples to hold out: validation uses the calibration samples")
        n_val = max(1, int(round(n * VALIDATION_SPLIT)))
        train, val = slice(0, n - n_val), slice(n - n_val, n)
        return Dataset(source, take(x, train), None if y is None else take(y, train), take(x, val),
                       None if y is None else take(y, val), f"last {n_val} of {n} samples held out for validation")
    if x_of("x_train") is not None:
        x = _check_xs(x_of("x_train"), "x_train", shape, source)
        y = _check_ys(y_of("y_train"), x, "y_train", outputs, source)
        return Dataset(source, x, y, x, y, "no validation data given: validation uses the training samples")
    if inputs is not None:
        raise DataError(f"{source} has arrays {sorted(arrays) or 'none'}; the model's inputs are "
                        f"{', '.join(inputs)}: it needs one array per input, x_<name> (and optionally y_<output name> "
                        "per output), or x_train_<name>/x_val_<name>")
    raise DataError(f"{source} has arrays {sorted(arrays) or 'none'}; it needs 'x' (and optionally 'y') or "
                    "'x_train'/'y_train'/'x_val'/'y_val'")


def _npz_nbytes(path: Path) -> int:
    """Bytes the arrays of an .npz expand to (as float32, the copy training and calibration hold),
    read from their headers before any data (a small compressed file can hold a huge array)."""
    total = 0
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            with z.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                read = {(1, 0): np.lib.format.read_array_header_1_0,
                        (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read is None:
                    raise ValueError(f"unsupported .npy version {version}")
                shape, _, dtype = read(fh)
                if dtype.hasobject:
                    raise DataError(f"{path}: '{info.filename}' holds Python objects, which edgec does not "
                                    "unpickle; store numeric arrays")
                total += math.prod(shape) * max(dtype.itemsize, 4)  # as the float32 copy edgec holds
    return total


def _load_npz(path: Path, shape, outputs: list[str] | None = None) -> Dataset:
    if not path.exists():
        raise DataError(f"data file {path} does not exist; check the path, or pass --data random")
    if path.is_dir():
        raise DataError(f"data {path} is a directory; pass an .npz file")
    limits.check_file_size(path, "data file")
    try:
        limits.check_array_size(_npz_nbytes(path), f"data file {path}")
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except EdgecError:
        raise
    except Exception as exc:  # zipfile, zlib and the .npy parser raise many kinds on a damaged file
        raise DataError(f"{path} is not a readable .npz file ({type(exc).__name__}); "
                        "save the data with numpy.savez") from None
    return _from_arrays(arrays, shape, str(path), outputs)


def _load_function(spec: str, shape, folders: tuple[Path, ...], outputs: list[str] | None = None) -> Dataset:
    module_name, _, func_name = spec.rpartition(":")
    module = user_code.import_user_module(module_name, folders, "data loader", DataError)
    func = getattr(module, func_name, None)
    if not callable(func):
        raise DataError(f"data loader '{spec}': {module_name} has no function '{func_name}'; name a function of it")
    result = user_code.call_user_function(func, f"the data loader '{spec}'", DataError)
    if result is None:
        raise DataError(f"the data loader '{spec}' returned nothing; return x, (x, y), a dict of arrays or a "
                        "tf.data.Dataset")
    return _from_arrays(_as_arrays(result, spec), shape, spec, outputs)


def _as_arrays(result, spec: str) -> dict:
    """Accept a dict of arrays, an (x, y) / (x,) tuple, an array, or a tf.data.Dataset; an x or y that
    is itself a dict by input or output name stands for ``x_<name>`` / ``y_<name>``."""
    if isinstance(result, (tuple, list)) and 1 <= len(result) <= 2:
        result = dict(zip(("x", "y"), result))
    if isinstance(result, dict):
        flat = {}
        for key, value in result.items():
            if isinstance(value, dict):
                flat.update({f"{key}_{name}": a for name, a in value.items()})
            else:
                flat[key] = value
        return flat
    if isinstance(result, np.ndarray):
        return {"x": result}
    if hasattr(result, "as_numpy_iterator"):
        xs, ys = [], []
        for item in result.as_numpy_iterator():
            if isinstance(item, tuple):
                xs.append(item[0])
                ys.append(item[1] if len(item) > 1 else None)
            else:
                xs.append(item)
        x = np.concatenate(xs) if xs and np.ndim(xs[0]) > 0 else np.asarray(xs)
        arrays: dict[str, np.ndarray] = {"x": x}
        if ys and all(y is not None for y in ys):
            arrays["y"] = np.concatenate([y for y in ys if y is not None])
        return arrays
    raise DataError(f"the data loader '{spec}' returned {type(result).__name__}; return numpy arrays "
                    "(x or (x, y) or a dict) or a tf.data.Dataset")


def from_python(value, input_shape, outputs: list[str] | None = None, samples: int = 300,
                seed: int = 0) -> Dataset:
    """A Dataset from a Python caller's objects: an array of inputs, an ``(x, y)`` pair, a dict of
    arrays (the ``.npz`` names), a ``tf.data.Dataset``, or ``"random"``; checked like a file's."""
    if isinstance(value, str) and value == RANDOM:
        return _random(input_shape, samples, seed)
    return _from_arrays(_as_arrays(value, "the data given"), input_shape, "the data given", outputs)


def _random(shape, n: int, seed: int) -> Dataset:
    shapes = shape if isinstance(shape, dict) else {"x": shape}
    for dims in shapes.values():
        if None in tuple(dims):
            raise DataError(f"--data random needs the model's input shape, and {tuple(dims)} leaves a dimension "
                            "free (a sequence model's time steps); pass an .npz whose 'x' has the shape to convert for")
    rng = np.random.default_rng(seed)
    xs = {name: rng.standard_normal((n,) + tuple(dims)).astype(np.float32) for name, dims in shapes.items()}
    x = xs if isinstance(shape, dict) else xs["x"]
    return Dataset("random", x, None, take(x, slice(0, min(n, 64))), None,
                   "RANDOM INPUTS: calibration and verification use standard-normal noise, "
                   "not real data; accuracy cannot be measured", random=True)


def load_data(spec: str, input_shape, samples: int = 300, seed: int = 0,
              code_folders: tuple[Path, ...] = (), outputs: list[str] | None = None) -> Dataset:
    """Load the data the build needs.

    Args:
        spec: an ``.npz`` path, ``package.module:function`` or ``loader.py:function``, or ``random``.
        code_folders: where a loader's module may be (default: the current folder); see
            :mod:`edgec.load.user_code`.
        input_shape: the model's input shape without the batch dimension; for a model of several
            inputs, a dict of them by input name (the data then has ``x_<name>`` arrays).
        outputs: the output names of a model of several outputs (labels ``y_<name>``), else None.
        samples: how many random samples to draw for ``random``.
        seed: seed for ``random``.

    Raises:
        DataError: the data is missing, malformed, or does not fit the model.
    """
    if spec == RANDOM:
        return _random(input_shape, samples, seed)
    path = Path(spec)
    if path.suffix == ".npz" or path.exists():
        return _load_npz(path, input_shape, outputs)
    if ":" in spec:
        return _load_function(spec, input_shape, code_folders or (Path.cwd(),), outputs)
    raise DataError(f"data '{spec}' is neither an existing .npz file, 'package.module:function', nor 'random'; "
                    "pass one of those")
