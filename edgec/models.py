"""Load Keras 2/3 files and SavedModels into one in-memory form.

Whatever the user saved, edgec works on a tf_keras model (:class:`LoadedModel`),
because TFMOT only accepts tf_keras. Keras 3 ``.keras`` files are rebuilt
through :mod:`edgec.keras_bridge`, and the rebuild is checked against the
original model's outputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import signal
import threading
import warnings
import zipfile
from pathlib import Path

import numpy as np

from edgec import _tf, keras_bridge, limits, savedmodel_ops
from edgec.errors import EdgecError, ModelLoadError
from edgec.runtime import hdf5, sandbox

_log = logging.getLogger(__name__)


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


def _load_tf_keras(path: Path, safe_mode: bool, custom: dict):
    k = _tf.tf_keras()
    kwargs = {"compile": False, "custom_objects": custom or None}
    if path.suffix == ".keras":
        kwargs["safe_mode"] = safe_mode
    return k.models.load_model(str(path), **kwargs)


def _load_keras3(path: Path, safe_mode: bool, custom: dict):
    k3 = _tf.keras3()
    return k3.saving.load_model(str(path), compile=False, safe_mode=safe_mode, custom_objects=custom or None)


# Layers that store Python code (marshalled bytecode) in the model file.
_CODE_CLASSES = {"Lambda", "__lambda__"}
# Serialization markers that carry values, not classes: Keras 3 configs, and tf_keras's
# SavedModel metadata (json_utils: shapes, registered TypeSpecs, constant composite tensors).
_MARKERS = {"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__typespec__", "__slice__",
            "__ellipsis__", "__tuple__", "function", "TensorShape", "TypeSpec", "CompositeTensor"}
_KERAS_PACKAGES = ("keras", "tf_keras")  # what a config's "module" may name without --custom-objects
_TF_KERAS_NAMESPACES = ("layers", "initializers", "regularizers", "constraints", "activations", "optimizers",
                        "losses", "metrics", "models", "mixed_precision")


def _magic(p: Path) -> bytes:
    """The first 8 bytes of a file, which tell a .keras zip from an HDF5 file."""
    with open(p, "rb") as fh:
        return fh.read(8)


def _stored_config(p: Path, h5_config: str | None):
    """The model's architecture as JSON data, read without running any of it (None if absent).

    ``h5_config`` is the ``model_config`` text :func:`edgec.runtime.hdf5.preflight`
    read from an .h5 file in the sandbox: edgec's process never opens the HDF5 itself.
    """
    if p.is_dir():
        meta = p / "keras_metadata.pb"
        if not meta.exists():
            return None
        _tf.tf_keras()  # imports TensorFlow with its C++ start-up noise kept off stderr
        from tf_keras.protobuf import saved_metadata_pb2

        proto = saved_metadata_pb2.SavedMetadata()
        proto.ParseFromString(meta.read_bytes())
        return [json.loads(node.metadata) for node in proto.nodes if node.metadata]
    head = _magic(p)
    if head.startswith(b"PK"):
        with zipfile.ZipFile(p) as z:
            info = z.getinfo("config.json")
            if info.file_size > limits.MAX_TEXT_BYTES * 64:
                raise ModelLoadError(f"{p}'s config.json is {info.file_size:,} bytes; that is not a model "
                                     "architecture; check the file")
            return json.loads(z.read(info))
    if head.startswith(hdf5.MAGIC) and h5_config is not None:
        return json.loads(h5_config)
    return None


def _code_in(config, trusted_modules: tuple[str, ...], custom: dict) -> list[tuple[str, str, str]]:
    """(layer, kind, what) of every object in ``config`` that would run code not in Keras:
    ``kind`` is "code" (a Lambda's stored bytecode) or "custom" (a class from another module)."""
    found = []
    known = None

    def builtin_tf_keras(name: str) -> bool:
        nonlocal known
        if known is None:
            k = _tf.tf_keras()
            known = {n for ns in _TF_KERAS_NAMESPACES for n in dir(getattr(k, ns, None))}
            known |= {"Functional", "Sequential", "Model", "TFOpLambda", "SlicingOpLambda"}
        return name in known

    def walk(obj, layer: str):
        if isinstance(obj, list):
            for v in obj:
                walk(v, layer)
            return
        if not isinstance(obj, dict):
            return
        cls = obj.get("class_name")
        inner = obj.get("config")
        if isinstance(cls, str):
            if isinstance(inner, dict) and isinstance(inner.get("name"), str) and cls not in _MARKERS:
                layer = inner["name"]
            module = obj.get("module")
            registered = obj.get("registered_name")
            if cls in _CODE_CLASSES:
                found.append((layer, "code", "a Lambda layer"))
            elif cls in custom or cls in _MARKERS:
                pass
            elif isinstance(module, str):
                if module.split(".")[0] not in _KERAS_PACKAGES and module not in trusted_modules:
                    found.append((layer, "custom", f"class {module}.{cls}"))
                elif isinstance(registered, str) and ">" in registered and cls not in custom:
                    found.append((layer, "custom", f"the registered class {registered}"))
            elif module is None and "module" not in obj and not builtin_tf_keras(cls):
                found.append((layer, "custom", f"class {cls}"))
        for key, v in obj.items():
            if key != "class_name":
                walk(v, layer)

    walk(config, "model")
    return found


def _refuse_code(p: Path, config, safe_mode: bool, trusted_modules: tuple[str, ...], custom: dict) -> None:
    for layer, kind, what in _code_in(config, trusted_modules, custom):
        if kind == "code" and safe_mode:
            raise ModelLoadError(f"{p}: layer '{layer}' is {what}, Python code stored in the model file, "
                                 "which edgec does not run by default; rebuild the model without it, or pass "
                                 "--allow-custom-code if you trust the file")
        if kind == "custom":
            raise ModelLoadError(f"{p}: layer '{layer}' uses {what}, which is not part of Keras; pass "
                                 "--custom-objects with the module that defines it (your own code, "
                                 "e.g. --custom-objects mypkg.layers), or rebuild the model from Keras layers")


def import_custom_objects(modules: tuple[str, ...]) -> dict:
    """Classes and functions of the modules a user named with ``--custom-objects``, by name."""
    import importlib
    import inspect

    objects = {}
    for name in modules:
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            raise ModelLoadError(f"--custom-objects {name}: cannot import it ({type(exc).__name__}: {exc}); "
                                 "pass a module importable from the current directory") from None
        for attr, obj in vars(module).items():
            if not attr.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj)):
                objects[attr] = obj
    return objects


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


def load_model(path: str | Path, name: str | None = None, safe_mode: bool = True,
               custom_objects: tuple[str, ...] = ()) -> LoadedModel:
    """Load a Keras 3 ``.keras``, a tf_keras ``.keras``/``.h5``, or a SavedModel directory.

    Before any Keras loader sees the file, its stored architecture is read as
    data and refused if it holds code: a Lambda layer (unless ``safe_mode`` is
    off) or a class from a module other than Keras and ``custom_objects``.

    Args:
        path: the model file or directory.
        name: the model name; defaults to the file stem.
        safe_mode: refuse models that carry code (Lambda layers).
        custom_objects: modules (your code) whose classes the model may use.

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
    if p.is_file():
        limits.check_file_size(p, "model")
    custom = import_custom_objects(tuple(custom_objects))
    h5_config = None
    head = _magic(p) if p.is_file() else b""
    if head == hdf5.MAGIC or head.startswith(b"PK"):
        with sandbox.model_label(p.name):  # libhdf5 reads the file in the sandbox first (see runtime.hdf5)
            h5_config = hdf5.preflight(p, limits.current().max_input_bytes)
    try:
        config = _stored_config(p, h5_config)
    except EdgecError:
        raise
    except Exception:
        config = None  # unreadable: the loader below reports what is wrong with the file
    _refuse_code(p, config, safe_mode, tuple(custom_objects), custom)
    if p.is_dir() and safe_mode:  # a SavedModel's graph runs at load: refuse ops that reach outside it
        savedmodel_ops.check(p)
    with warnings.catch_warnings(record=True) as caught, _time_limit(p, LOAD_TIMEOUT_S):
        warnings.simplefilter("always")
        loaded = _load_any(p, safe_mode, custom)
    for w in caught:  # Keras' loader warnings are for developers, not for a build's stderr
        _log.debug("while loading %s: %s", p, w.message)
    model, fmt, k3_model = loaded
    return _finish(p, name, model, fmt, k3_model)


LOAD_TIMEOUT_S = 300.0  # Keras rebuilds a sound model in seconds; a damaged layer graph can keep it busy for ever


@contextlib.contextmanager
def _time_limit(p: Path, seconds: float):
    """Stop the Keras loader after ``seconds`` (its loops are Python code, which a signal interrupts).

    Fuzzing found a damaged ``model_config`` that kept tf_keras's model reconstruction busy for more
    than 300 s. Only in the main thread (where signals are delivered); elsewhere no limit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum, frame):
        raise ModelLoadError(f"loading {p} took more than {seconds:.0f} s and was stopped; its stored architecture "
                             "is damaged or far too large; re-save the model with Keras")

    previous = signal.signal(signal.SIGALRM, expired)
    timer = signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)  # again every second, should Keras swallow it
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, *timer)  # a caller's own timer (a fuzzer's watchdog) carries on
        signal.signal(signal.SIGALRM, previous)


def _load_any(p: Path, safe_mode: bool, custom: dict):
    """(tf_keras model or None, format, Keras 3 model or None)."""
    k3_model = None
    try:
        if p.is_dir():
            if not (p / "saved_model.pb").exists() and not (p / "saved_model.pbtxt").exists():
                raise ModelLoadError(f"{p} is a directory but not a SavedModel (no saved_model.pb); "
                                     "pass a .keras/.h5 file or a SavedModel directory")
            model, fmt = _load_tf_keras(p, safe_mode, custom), "savedmodel"
        else:
            head = _magic(p)
            if head.startswith(hdf5.MAGIC):
                try:
                    model, fmt = _load_tf_keras(p, safe_mode, custom), "h5"
                except ModelLoadError:
                    raise
                except Exception:
                    k3_model = _load_keras3(p, safe_mode, custom)
                    model, fmt = None, "h5-keras3"
            elif head.startswith(b"PK"):
                version = _keras_file_version(p)
                if version.startswith("2."):
                    model, fmt = _load_tf_keras(p, safe_mode, custom), "keras-tf_keras"
                else:
                    k3_model = _load_keras3(p, safe_mode, custom)
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
