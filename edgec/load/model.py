"""Load Keras 2/3 files and SavedModels into one in-memory form (:class:`LoadedModel`).

A Keras 3 model stays a Keras 3 model: it is converted and verified as it is.
Only the compression stages need tf_keras (TFMOT accepts nothing else, and the
structural stages rebuild tf_keras graphs), so :meth:`LoadedModel.for_stages`
rebuilds it through :mod:`edgec.load.bridge` when a stage asks, and checks the
rebuild against the original model's outputs.
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
from typing import Any

import numpy as np

from edgec import frameworks
from edgec.convert.int8 import recurrent_layer
from edgec.errors import EdgecError, ModelLoadError
from edgec.load import bridge, hdf5, limits, savedmodel_ops, user_code
from edgec.runtime import sandbox

_log = logging.getLogger(__name__)


@dataclasses.dataclass
class LoadedModel:
    """A Keras model (Keras 3 or tf_keras, as saved) and where it came from."""

    keras: Any  # a keras.Model or tf_keras.Model
    name: str
    source: str
    format: str
    bridge_max_diff: float | None = None
    keras3: bool = False  # ``keras`` is a Keras 3 model; stages get its tf_keras rebuild

    def for_stages(self):
        """The model as tf_keras, for compression stages: a Keras 3 model is rebuilt once (cached) and the
        rebuild's outputs are checked against the original's.

        Raises:
            ModelLoadError: a layer the bridge cannot carry, or outputs that differ.
        """
        if isinstance(self.keras, SignatureModel):
            raise ModelLoadError(f"{self.source} is a SavedModel without Keras layers (a serving signature), "
                                 "which compression stages cannot take; build it without --stage and --fit, or pass "
                                 "the Keras model file (.keras) it was exported from")
        if not self.keras3:
            return self.keras
        if getattr(self, "_bridged", None) is None:
            bridged = bridge.to_tf_keras(self.keras)
            self.bridge_max_diff = bridge.check_same_outputs(
                self.keras, bridged, _probe_input(self.keras, np.random.default_rng(0)))
            self._bridged = bridged
        return self._bridged

    def for_conversion(self):
        """The model the int8 converter takes when no stage changes it: the model as saved, except a
        Keras 3 model with a recurrent layer, which converts through its checked tf_keras rebuild
        (Keras 3's LSTM fails TFLite's int8 calibration; tf_keras's converts to the fused
        UNIDIRECTIONAL_SEQUENCE_LSTM op; :func:`edgec.convert.int8._recurrent_converter`)."""
        if self.keras3 and recurrent_layer(self.keras) is not None:
            return self.for_stages()
        return self.keras

    @property
    def input_shape(self) -> tuple:
        """Input shape without the batch dimension (of the first input)."""
        return tuple(self.keras.inputs[0].shape[1:])

    @property
    def output_shape(self) -> tuple:
        """Output shape without the batch dimension (of the first output)."""
        return tuple(self.keras.outputs[0].shape[1:])

    @property
    def several(self) -> bool:
        """The model has more than one input or output."""
        return len(self.keras.inputs) > 1 or len(self.keras.outputs) > 1

    @property
    def input_names(self) -> list[str]:
        return frameworks.keras_input_names(self.keras)

    @property
    def output_names(self) -> list[str]:
        return frameworks.keras_output_names(self.keras)

    @property
    def input_shapes(self) -> dict[str, tuple]:
        """Each input's shape without the batch dimension, by name, in the model's order."""
        return {n: tuple(t.shape[1:]) for n, t in zip(self.input_names, self.keras.inputs)}

    @property
    def output_shapes(self) -> dict[str, tuple]:
        return {n: tuple(t.shape[1:]) for n, t in zip(self.output_names, self.keras.outputs)}

    @property
    def params(self) -> int:
        return int(self.keras.count_params())

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"name": self.name, "source": self.source, "format": self.format,
             "keras": "Keras 3" if self.keras3 else "tf_keras",
             "parameters": self.params, "input_shape": list(self.input_shape),
             "output_shape": list(self.output_shape)}
        if self.several:
            d["inputs"] = {n: list(shape) for n, shape in self.input_shapes.items()}
            d["outputs"] = {n: list(shape) for n, shape in self.output_shapes.items()}
        if self.bridge_max_diff is not None:
            d["keras3_bridge_max_abs_diff"] = self.bridge_max_diff
        return d


@dataclasses.dataclass
class _Spec:
    shape: tuple
    dtype: str = "float32"


class SignatureModel:
    """A SavedModel without Keras metadata (Keras 3's ``model.export()``, ``tf.saved_model.save()`` of a
    ``tf.Module``), called through its one serving signature as if it were a Keras model: ``inputs``,
    ``outputs``, ``model(x, training=False)``. It converts and verifies like any model; it has no Keras
    layers, so compression stages cannot take it.
    """

    layers: list = []

    def __init__(self, loaded, signature, name: str):
        self._loaded, self._signature, self.name = loaded, signature, name
        _, kwargs = signature.structured_input_signature
        outputs = signature.structured_outputs
        self._input_name = next(iter(kwargs))
        self._output_name = next(iter(outputs)) if isinstance(outputs, dict) else None
        self.inputs = [_Spec(tuple(kwargs[k].shape)) for k in kwargs]
        out = outputs if not isinstance(outputs, dict) else outputs
        self.outputs = [_Spec(tuple(v.shape)) for v in (out.values() if isinstance(out, dict) else [out])]

    @classmethod
    def load(cls, path: Path) -> "SignatureModel":
        """Raises: ModelLoadError: no serving signature, or one with several inputs or outputs."""
        tf = frameworks.tf()
        loaded = tf.saved_model.load(str(path))
        signatures = dict(getattr(loaded, "signatures", {}) or {})
        if not signatures:
            raise ModelLoadError(f"{path} is a SavedModel without Keras metadata and without a serving signature; "
                                 "export it with model.export() or tf.saved_model.save(module, path, signatures=...)")
        signature = signatures.get("serving_default") or next(iter(signatures.values()))
        _, kwargs = signature.structured_input_signature
        outputs = signature.structured_outputs
        n_out = len(outputs) if isinstance(outputs, dict) else 1
        if len(kwargs) != 1 or n_out != 1:
            raise ModelLoadError(f"{path}'s serving signature has {len(kwargs)} inputs and {n_out} outputs; edgec "
                                 "supports single-input, single-output models")
        return cls(loaded, signature, default_name(path))

    def __call__(self, x, training: bool = False):
        out = self._signature(**{self._input_name: frameworks.tf().convert_to_tensor(x, frameworks.tf().float32)})
        return out[self._output_name] if self._output_name is not None else out

    def count_params(self) -> int:
        return int(sum(np.prod(v.shape) for v in getattr(self._loaded, "variables", [])))


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
    k = frameworks.tf_keras()
    kwargs = {"compile": False, "custom_objects": custom or None}
    if path.suffix == ".keras":
        kwargs["safe_mode"] = safe_mode
    return k.models.load_model(str(path), **kwargs)


def _load_keras3(path: Path, safe_mode: bool, custom: dict):
    k3 = frameworks.keras3()
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


# Markers whose "module" tf_keras imports while it deserializes them.
_IMPORTING_MARKERS = {"__typespec__", "function"}
_TRUSTED_ROOTS = ("keras", "tf_keras", "tensorflow", "builtins")
# tf_keras's layers that call a TensorFlow API function named in the config (tf.math.add, ...),
# with arguments stored beside it: only pure tensor functions may be called that way.
_OP_LAMBDAS = {"TFOpLambda", "SlicingOpLambda"}
_PURE_TF_NAMESPACES = ("math.", "nn.", "linalg.", "image.", "signal.", "bitwise.", "__operators__.",
                       "compat.v1.math.", "compat.v1.nn.", "experimental.numpy.")
_PURE_TF_FUNCTIONS = frozenset({
    "abs", "add", "add_n", "argmax", "argmin", "argsort", "broadcast_to", "cast", "clip_by_norm", "clip_by_value",
    "concat", "cumsum", "divide", "einsum", "equal", "exp", "expand_dims", "fill", "gather", "gather_nd",
    "greater", "greater_equal", "identity", "less", "less_equal", "linspace", "logical_and", "logical_not",
    "logical_or", "matmul", "maximum", "minimum", "multiply", "negative", "not_equal", "one_hot", "ones",
    "ones_like", "pad", "pow", "range", "rank", "reduce_all", "reduce_any", "reduce_max", "reduce_mean",
    "reduce_min", "reduce_prod", "reduce_sum", "repeat", "reshape", "reverse", "roll", "round", "rsqrt",
    "scatter_nd", "shape", "sigmoid", "sign", "size", "slice", "sort", "split", "sqrt", "square", "squeeze",
    "stack", "strided_slice", "subtract", "tanh", "tensordot", "tile", "transpose", "truediv", "unstack",
    "where", "zeros", "zeros_like", "boolean_mask", "meshgrid", "norm", "floor", "ceil", "floordiv",
})
_IMPURE_TF_WORDS = ("print", "io.", "py_function", "numpy_function", "debugging", "summary", "data.", "saved_model",
                    "file", "write", "read", "load", "save", "system", "profiler", "experimental.dtensor")


def tf_function_allowed(name) -> bool:
    """Whether a TFOpLambda may call ``tf.<name>``: a pure tensor function, nothing that prints, touches
    files or runs Python."""
    if not isinstance(name, str) or any(w in name.lower() for w in _IMPURE_TF_WORDS):
        return False
    return name in _PURE_TF_FUNCTIONS or name.startswith(_PURE_TF_NAMESPACES)


def _magic(p: Path) -> bytes:
    """The first 8 bytes of a file, which tell a .keras zip from an HDF5 file."""
    with open(p, "rb") as fh:
        return fh.read(8)


def file_format(p: Path) -> str:
    """``"zip"`` (a ``.keras`` file), ``"hdf5"`` or ``"other"``, decided by the bytes, never by the name.

    A file that is both (a zip's directory at its end, an HDF5 superblock at offset 0 or, as
    HDF5 allows, behind a user block at 512, 1024, 2048, ... bytes) is refused: edgec would
    scan one reading while a Keras loader, choosing by the file's name, ran the other.

    Raises:
        ModelLoadError: an ambiguous file, a zip with bytes before it, or HDF5 behind a user block.
    """
    size = p.stat().st_size
    hdf5_at = []
    with open(p, "rb") as fh:
        offset = 0
        while offset + len(hdf5.MAGIC) <= size:
            fh.seek(offset)
            if fh.read(len(hdf5.MAGIC)) == hdf5.MAGIC:
                hdf5_at.append(offset)
                break
            offset = 512 if offset == 0 else offset * 2
    is_zip = zipfile.is_zipfile(p)
    head = _magic(p)
    if is_zip and hdf5_at:
        raise ModelLoadError(f"{p} is both a zip (.keras) and an HDF5 (.h5) file; a Keras file is one or the "
                             "other, so it was made to be read two ways; re-save the model with Keras")
    if hdf5_at and hdf5_at[0] != 0:
        raise ModelLoadError(f"{p} has an HDF5 file behind {hdf5_at[0]} bytes of something else (a user "
                             "block), which Keras never writes; re-save the model with Keras")
    if is_zip and not head.startswith(b"PK"):
        raise ModelLoadError(f"{p} is a zip with other bytes before it, which Keras never writes; re-save the "
                             "model with Keras")
    return "hdf5" if hdf5_at else "zip" if is_zip else "other"


def _metadata_nodes(p: Path) -> list[str]:
    """Every Keras metadata string of a SavedModel, from both places tf_keras reads it:
    ``keras_metadata.pb`` and the older layout inside ``saved_model.pb``
    (``object_graph_def.nodes[].user_object.metadata``)."""
    texts = []
    meta = p / "keras_metadata.pb"
    if meta.exists():
        frameworks.tf_keras()  # imports TensorFlow with its C++ start-up noise kept off stderr
        from tf_keras.protobuf import saved_metadata_pb2

        proto = saved_metadata_pb2.SavedMetadata()
        try:
            proto.ParseFromString(meta.read_bytes())
        except Exception:
            raise ModelLoadError(f"{p}/keras_metadata.pb does not parse; re-save the model with Keras") from None
        texts += [node.metadata for node in proto.nodes if node.metadata]
    saved = savedmodel_ops.parse(p)
    for meta_graph in saved.meta_graphs:
        texts += [n.user_object.metadata for n in meta_graph.object_graph_def.nodes
                  if n.HasField("user_object") and n.user_object.metadata]
    return texts


def _stored_config(p: Path, h5_config: str | None, kind: str):
    """The model's architecture as JSON data, read without running any of it (None if absent).

    ``h5_config`` is the ``model_config`` text :func:`edgec.load.hdf5.preflight`
    read from an .h5 file in the sandbox: edgec's process never opens the HDF5 itself;
    ``kind`` is what :func:`file_format` decided. A stored architecture that does not parse is
    refused: the scan must not be skipped for a part a Keras loader may still read.

    Raises:
        ModelLoadError: a part of the stored architecture is not valid JSON.
    """
    def parsed(text, where: str):
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            raise ModelLoadError(f"{p}: {where} is not valid JSON, so edgec cannot check it for code; "
                                 "re-save the model with Keras") from None

    if p.is_dir():
        return [parsed(t, "a node of the SavedModel's Keras metadata") for t in _metadata_nodes(p)] or None
    if kind == "zip":
        with zipfile.ZipFile(p) as z:
            try:
                info = z.getinfo("config.json")
            except KeyError:
                return None
            if info.file_size > limits.MAX_TEXT_BYTES * 64:
                raise ModelLoadError(f"{p}'s config.json is {info.file_size:,} bytes; that is not a model "
                                     "architecture; check the file")
            return parsed(z.read(info), "config.json")
    if kind == "hdf5" and h5_config is not None:
        return parsed(h5_config, "its model_config")
    return None


def _code_in(config, trusted_modules: tuple[str, ...], custom: dict) -> list[tuple[str, str, str]]:
    """(layer, kind, what) of every object in ``config`` that would run code not in Keras:
    ``kind`` is "code" (a Lambda's stored bytecode) or "custom" (a class from another module)."""
    found = []
    known = None

    def builtin_tf_keras(name: str) -> bool:
        nonlocal known
        if known is None:
            k = frameworks.tf_keras()
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
            elif cls in _OP_LAMBDAS and not tf_function_allowed((inner or {}).get("function")):
                found.append((layer, "code", f"a {cls} calling tf.{(inner or {}).get('function')}, which is not "
                                             "a pure tensor operation"))
            elif cls in _IMPORTING_MARKERS and not (isinstance(module, str) and module.split(".")[0] in _TRUSTED_ROOTS):
                # tf_keras imports the module these markers name to find the spec or function
                found.append((layer, "custom", f"a {cls} object from module {module!r}"))
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


MAX_LAYERS = 4096  # keras.applications' largest networks have under 1,000; a damaged config takes minutes


def _refuse_huge(p: Path, config) -> None:
    """Refuse a stored architecture with more layers than any real network, before Keras spends minutes on it."""
    layers = 0

    def count(obj, depth=0):
        nonlocal layers
        if depth > 200:
            raise ModelLoadError(f"{p}: its stored architecture nests deeper than 200 levels; re-save the model")
        if isinstance(obj, dict):
            if isinstance(obj.get("layers"), list):
                layers += len(obj["layers"])
            for v in obj.values():
                count(v, depth + 1)
        elif isinstance(obj, list):
            for v in obj:
                count(v, depth + 1)

    count(config)
    if layers > MAX_LAYERS:
        raise ModelLoadError(f"{p}: its stored architecture lists {layers:,} layers, more than the {MAX_LAYERS:,} "
                             "edgec accepts; check the file")


def _check_fingerprint(p: Path) -> None:
    """A SavedModel's ``fingerprint.pb`` must parse: TensorFlow reads it at load and prints a traceback if not."""
    fingerprint = p / "fingerprint.pb"
    if not fingerprint.exists():
        return
    frameworks.tf()
    from tensorflow.core.protobuf import fingerprint_pb2

    try:
        fingerprint_pb2.FingerprintDef().ParseFromString(fingerprint.read_bytes())
    except Exception:
        raise ModelLoadError(f"{p}/fingerprint.pb is damaged; delete that file (TensorFlow writes it only for "
                             "bookkeeping) or save the model again") from None


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


def import_custom_objects(modules: tuple[str, ...], folders: tuple[Path, ...] = ()) -> dict:
    """Classes and functions of the modules a user named with ``--custom-objects``, by name; each a
    module or .py file of the user's own under ``folders`` (default: the current folder)."""
    import inspect

    objects = {}
    for name in modules:
        module = user_code.import_user_module(name, folders or (Path.cwd(),), "--custom-objects", ModelLoadError)
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
                              "by default; rebuild the model without it, or pass --allow-custom-code if you trust "
                              "the file")
    if "Unknown layer" in text or ("Unknown" in text and "custom" in text.lower()):
        return ModelLoadError(f"{path} uses a custom layer edgec does not know: {text[:200]}; "
                              "rebuild the model from built-in layers")
    return ModelLoadError(f"could not load {path} as a Keras model ({type(exc).__name__}: {text[:300]}); "
                          "check that it is a Keras .keras/.h5 file or a SavedModel directory")


def load_model(path: str | Path, name: str | None = None, safe_mode: bool = True,
               custom_objects: tuple[str, ...] = (), code_folders: tuple[Path, ...] = ()) -> LoadedModel:
    """Load a Keras 3 ``.keras``, a tf_keras ``.keras``/``.h5``, or a SavedModel directory.

    Before any Keras loader sees the file, its stored architecture is read as
    data and refused if it holds code: a Lambda layer (unless ``safe_mode`` is
    off) or a class from a module other than Keras and ``custom_objects``.

    Args:
        path: the model file or directory.
        name: the model name; defaults to the file stem.
        safe_mode: refuse models that carry code (Lambda layers).
        custom_objects: modules (your code) whose classes the model may use.
        code_folders: where those modules may be (default: the current folder).

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
    if not p.is_dir():
        limits.check_file_size(p, "model")  # also refuses FIFOs and devices, which would block the reads below
    else:
        _check_fingerprint(p)
    custom = import_custom_objects(tuple(custom_objects), tuple(Path(f) for f in code_folders))
    h5_config = None
    kind = file_format(p) if p.is_file() else "savedmodel"
    if kind in ("hdf5", "zip"):
        with sandbox.model_label(p.name):  # libhdf5 reads the file in the sandbox first (see runtime.hdf5)
            h5_config = hdf5.preflight(p, limits.current().max_input_bytes)
    try:
        config = _stored_config(p, h5_config, kind)
    except EdgecError:
        raise
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{p} cannot be read as a Keras file ({type(exc).__name__}: {exc}); re-save the model "
                             "with Keras") from None
    _refuse_code(p, config, safe_mode, tuple(custom_objects), custom)
    _refuse_huge(p, config)
    if p.is_dir() and safe_mode:  # a SavedModel's graph runs at load: refuse ops that reach outside it
        savedmodel_ops.check(p)
    with warnings.catch_warnings(record=True) as caught, _time_limit(p, LOAD_TIMEOUT_S):
        warnings.simplefilter("always")
        loaded = _load_any(p, kind, safe_mode, custom)
    for w in caught:  # Keras' loader warnings are for developers, not for a build's stderr
        _log.debug("while loading %s: %s", p, w.message)
    model, fmt, k3_model = loaded
    return _finish(p, name, model, fmt, k3_model)


LOAD_TIMEOUT_S = 120.0  # Keras rebuilds a sound model in seconds; a damaged layer graph can keep it busy for ever


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


def _load_any(p: Path, kind: str, safe_mode: bool, custom: dict):
    """(tf_keras model or None, format, Keras 3 model or None)."""
    k3_model = None
    try:
        if p.is_dir():
            if not (p / "saved_model.pb").exists() and not (p / "saved_model.pbtxt").exists():
                raise ModelLoadError(f"{p} is a directory but not a SavedModel (no saved_model.pb); "
                                     "pass a .keras/.h5 file or a SavedModel directory")
            if not (p / "keras_metadata.pb").exists() and not _metadata_nodes(p):
                # Keras 3's model.export(), tf.saved_model.save() of a tf.Module: a serving signature
                model, fmt = SignatureModel.load(p), "savedmodel-signature"
            else:
                model, fmt = _load_tf_keras(p, safe_mode, custom), "savedmodel"
        else:
            if kind == "hdf5":
                try:
                    model, fmt = _load_tf_keras(p, safe_mode, custom), "h5"
                except ModelLoadError:
                    raise
                except Exception:
                    k3_model = _load_keras3(p, safe_mode, custom)
                    model, fmt = None, "h5-keras3"
            elif kind == "zip":
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
    if k3_model is not None:
        model = k3_model
    if not hasattr(model, "inputs") or not model.inputs:
        raise ModelLoadError(f"{p} loaded, but it is not a Keras model with known inputs; "
                             "save it as a Functional or Sequential Keras model")
    if len(model.inputs) > MAX_TENSORS or len(model.outputs) > MAX_TENSORS:
        raise ModelLoadError(f"{p} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; edgec takes "
                             f"at most {MAX_TENSORS} of each")
    stateful = next((layer for layer in _all_layers(model) if getattr(layer, "stateful", False)), None)
    if stateful is not None:
        raise ModelLoadError(f"{p}: layer '{stateful.name}' ({type(stateful).__name__}) is stateful: it carries its "
                             "state from one call to the next inside itself, which a TFLite flatbuffer cannot hold; "
                             "save the model with stateful=False and make the state an input and an output of the "
                             "model (a streaming model: the firmware passes the state back in)")
    loaded = LoadedModel(model, name, str(p), fmt, keras3=k3_model is not None)
    names = loaded.input_names + loaded.output_names
    if loaded.several and (len(set(names)) != len(names) or any(not _TENSOR_NAME.fullmatch(n) for n in names)):
        raise ModelLoadError(f"{p}'s inputs are named {loaded.input_names} and its outputs {loaded.output_names}; "
                             "edgec feeds and judges several tensors by name, so each needs a distinct name of "
                             "letters, digits and _ (keras.Input(..., name='audio'), a layer's name=)")
    return loaded


MAX_TENSORS = 16  # inputs, and outputs, of one model


def _all_layers(model):
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _all_layers(layer)
        if hasattr(layer, "forward_layer"):  # Bidirectional
            yield from (layer.forward_layer, layer.backward_layer)
_TENSOR_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")
