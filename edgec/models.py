"""Load Keras 2/3 files and SavedModels into one in-memory form.

Whatever the user saved, edgec works on a tf_keras model (:class:`LoadedModel`),
because TFMOT only accepts tf_keras. Keras 3 ``.keras`` files are rebuilt
through :mod:`edgec.keras_bridge`, and the rebuild is checked against the
original model's outputs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np

from edgec import _tf, keras_bridge
from edgec.errors import ModelLoadError

_log = logging.getLogger(__name__)
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@dataclasses.dataclass
class LoadedModel:
    """A tf_keras model and where it came from."""

    keras: object
    name: str
    source: str
    format: str
    bridge_max_diff: float | None = None

    @property
    def input_shape(self) -> tuple:
        """Input shape without the batch dimension."""
        return tuple(self.keras.inputs[0].shape[1:])

    @property
    def output_shape(self) -> tuple:
        return tuple(self.keras.outputs[0].shape[1:])

    @property
    def params(self) -> int:
        return int(self.keras.count_params())

    def to_dict(self) -> dict:
        d = {"name": self.name, "source": self.source, "format": self.format,
             "parameters": self.params, "input_shape": list(self.input_shape),
             "output_shape": list(self.output_shape)}
        if self.bridge_max_diff is not None:
            d["keras3_bridge_max_abs_diff"] = self.bridge_max_diff
        return d


def default_name(path: Path) -> str:
    """A model name from its path: the file stem, or the directory name."""
    stem = path.name if path.is_dir() else path.stem
    return re.sub(r"\W+", "_", stem).strip("_") or "model"


def _keras_file_version(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read("metadata.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError):
        raise ModelLoadError(f"{path} is not a Keras model file (not a .keras zip with metadata.json); "
                             "save the model with model.save('model.keras')") from None
    return str(meta.get("keras_version", ""))


def _load_tf_keras(path: Path, safe_mode: bool):
    k = _tf.tf_keras()
    kwargs = {"compile": False}
    if path.suffix == ".keras":
        kwargs["safe_mode"] = safe_mode
    return k.models.load_model(str(path), **kwargs)


def _load_keras3(path: Path, safe_mode: bool):
    k3 = _tf.keras3()
    return k3.saving.load_model(str(path), compile=False, safe_mode=safe_mode)


def _probe_input(model, rng: np.random.Generator) -> np.ndarray:
    shape = (4,) + tuple(int(d) for d in model.inputs[0].shape[1:])
    return rng.standard_normal(shape).astype(np.float32)


def _refused(exc: Exception, path: Path, safe_mode: bool) -> ModelLoadError:
    text = " ".join(str(exc).split())
    if safe_mode and ("safe_mode" in text or "Lambda" in text or "lambda" in text):
        return ModelLoadError(f"{path} contains code (a Lambda layer or custom object) that edgec does not run "
                              "by default; rebuild the model without it, or pass --allow-custom-code if you trust the file")
    if "Unknown layer" in text or ("Unknown" in text and "custom" in text.lower()):
        return ModelLoadError(f"{path} uses a custom layer edgec does not know: {text[:200]}; "
                              "rebuild the model from built-in layers")
    return ModelLoadError(f"could not load {path} as a Keras model ({type(exc).__name__}: {text[:300]}); "
                          "check that it is a Keras .keras/.h5 file or a SavedModel directory")


def load_model(path: str | Path, name: str | None = None, safe_mode: bool = True) -> LoadedModel:
    """Load a Keras 3 ``.keras``, a tf_keras ``.keras``/``.h5``, or a SavedModel directory.

    Args:
        path: the model file or directory.
        name: the model name; defaults to the file stem.
        safe_mode: refuse models that carry code (Lambda layers).

    Returns:
        A :class:`LoadedModel` holding a tf_keras model.

    Raises:
        ModelLoadError: missing, unreadable, or not a supported model.
    """
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"model {p} does not exist; check the path")
    if p.is_file() and p.suffix == ".tflite":
        raise ModelLoadError(f"{p} is already a TFLite model; use `edgec check {p}` to measure it")
    name = name or default_name(p)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = _load_any(p, safe_mode)
    for w in caught:  # Keras' loader warnings are for developers, not for a build's stderr
        _log.debug("while loading %s: %s", p, w.message)
    model, fmt, k3_model = loaded
    return _finish(p, name, model, fmt, k3_model)


def _load_any(p: Path, safe_mode: bool):
    """(tf_keras model or None, format, Keras 3 model or None)."""
    k3_model = None
    try:
        if p.is_dir():
            if not (p / "saved_model.pb").exists() and not (p / "saved_model.pbtxt").exists():
                raise ModelLoadError(f"{p} is a directory but not a SavedModel (no saved_model.pb); "
                                     "pass a .keras/.h5 file or a SavedModel directory")
            model, fmt = _load_tf_keras(p, safe_mode), "savedmodel"
        else:
            head = p.read_bytes()[:8]
            if head.startswith(_HDF5_MAGIC):
                try:
                    model, fmt = _load_tf_keras(p, safe_mode), "h5"
                except ModelLoadError:
                    raise
                except Exception:
                    k3_model = _load_keras3(p, safe_mode)
                    model, fmt = None, "h5-keras3"
            elif head.startswith(b"PK"):
                version = _keras_file_version(p)
                if version.startswith("2."):
                    model, fmt = _load_tf_keras(p, safe_mode), "keras-tf_keras"
                else:
                    k3_model = _load_keras3(p, safe_mode)
                    model, fmt = None, "keras3"
            else:
                raise ModelLoadError(f"{p} is not a Keras model (neither a .keras zip nor an HDF5 file); "
                                     "pass a .keras/.h5 file or a SavedModel directory")
    except ModelLoadError:
        raise
    except Exception as exc:
        raise _refused(exc, p, safe_mode) from None
    return model, fmt, k3_model


def _finish(p: Path, name: str, model, fmt: str, k3_model) -> LoadedModel:
    diff = None
    if k3_model is not None:
        model = keras_bridge.to_tf_keras(k3_model)
        diff = keras_bridge.check_same_outputs(k3_model, model, _probe_input(k3_model, np.random.default_rng(0)))
    if not hasattr(model, "inputs") or not model.inputs:
        raise ModelLoadError(f"{p} loaded, but it is not a Keras model with known inputs; "
                             "save it as a Functional or Sequential Keras model")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelLoadError(f"{p} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                             "edgec supports single-input, single-output models")
    return LoadedModel(model, name, str(p), fmt, diff)
