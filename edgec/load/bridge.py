"""Rebuild a Keras 3 model as a tf_keras model with the same weights.

TFMOT and edgec's compression stages only work on tf_keras (Keras 2) models,
while users save Keras 3 ``.keras`` files. This module translates the Keras 3
model config into a tf_keras config (InputLayer ``batch_shape``, dtype policy
objects, the ``module``/``registered_name``/``build_config`` keys, Keras 3
``inbound_nodes``, keys the tf_keras class does not accept), builds the
tf_keras model, copies the weights layer by layer, and checks that both models
compute the same outputs; a mismatch names the first layer that differs.
"""

from __future__ import annotations

import inspect
import logging

import numpy as np

from edgec import frameworks
from edgec.errors import ModelLoadError

_log = logging.getLogger(__name__)

# Keyword arguments tf_keras' base Layer accepts on top of a class's own.
_BASE_LAYER_KWARGS = {"name", "trainable", "dtype", "dynamic", "input_dim", "input_shape",
                      "batch_input_shape", "batch_size", "weights", "activity_regularizer",
                      "autocast", "implementation"}
_MODEL_CLASSES = {"Functional", "Model", "Sequential"}
# Relative/absolute tolerance of the output check; measured differences are ~1e-8.
RTOL, ATOL = 1e-4, 1e-5


def _accepted_keys(cls) -> set[str] | None:
    """Constructor keywords of ``cls``; None when it takes anything."""
    keys: set[str] = set()
    takes_kwargs = False
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        keys |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            takes_kwargs = False
            break
        takes_kwargs = True
        if klass.__name__ == "Layer":
            return keys | _BASE_LAYER_KWARGS
    return None if takes_kwargs else keys


def _find_class(class_name: str):
    k = frameworks.tf_keras()
    for module in (k.layers, k.initializers, k.regularizers, k.constraints):
        cls = getattr(module, class_name, None)
        if inspect.isclass(cls):
            return cls
    return None


def _object(value):
    """Translate nested Keras 3 serialized objects (initializers, policies, ...)."""
    if isinstance(value, list):
        return [_object(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "class_name" in value and "config" in value and ("module" in value or "registered_name" in value):
        name = value["class_name"]
        if "DTypePolicy" in name:
            return value["config"].get("name", "float32")
        cfg = {k: _object(v) for k, v in (value["config"] or {}).items()}
        cls = _find_class(name)
        accepted = _accepted_keys(cls) if cls is not None else None
        if accepted is not None:
            cfg = {k: v for k, v in cfg.items() if k in accepted}
        return {"class_name": name, "config": cfg}
    return {k: _object(v) for k, v in value.items()}


def _history(tensor: dict, layer: str) -> list:
    hist = tensor.get("config", {}).get("keras_history")
    if not hist:
        raise ModelLoadError(f"layer '{layer}' has an input that is not a Keras tensor; "
                             "rebuild the model from keras.layers only")
    return [hist[0], hist[1], hist[2]]


def _node(node: dict, layer: str) -> list:
    """A Keras 3 ``{args, kwargs}`` node as a tf_keras list of inbound tensors."""
    tensors = []

    def walk(v):
        if isinstance(v, dict) and v.get("class_name") == "__keras_tensor__":
            tensors.append(_history(v, layer))
        elif isinstance(v, (list, tuple)):
            for item in v:
                walk(item)

    walk(node.get("args", []))
    kwargs = {k: v for k, v in (node.get("kwargs") or {}).items()
              if v is not None and k not in ("mask",)}
    if any(isinstance(v, dict) and v.get("class_name") == "__keras_tensor__" for v in kwargs.values()):
        raise ModelLoadError(f"layer '{layer}' takes a tensor as a keyword argument, which the "
                             "tf_keras bridge does not support; pass it positionally")
    return [t + [kwargs] for t in tensors]


# Keras 3 activations by their Keras 3 meaning, where tf_keras has none of that name or means another
# function (tf_keras' hard_sigmoid is max(0, min(1, 0.2x + 0.5)); Keras 3's is relu6(x + 3) / 6).
def _hard_sigmoid(x):
    return frameworks.tf().nn.relu6(x + 3.0) / 6.0


def _hard_silu(x):
    return x * _hard_sigmoid(x)


def _leaky_relu(x):
    return frameworks.tf().nn.leaky_relu(x, alpha=0.2)  # Keras 3's default negative_slope


def _relu6(x):
    return frameworks.tf().nn.relu6(x)


def _log_softmax(x):
    return frameworks.tf().nn.log_softmax(x)


ACTIVATIONS = {"hard_sigmoid": _hard_sigmoid, "hard_silu": _hard_silu, "hard_swish": _hard_silu,
               "leaky_relu": _leaky_relu, "relu6": _relu6, "log_softmax": _log_softmax}
_RENAMED = {"silu": "swish"}
CUSTOM_OBJECTS = {f"edgec_{name}": fn for name, fn in ACTIVATIONS.items()}
for _key, _fn in CUSTOM_OBJECTS.items():  # tf_keras serializes a function activation by its __name__
    _fn.__name__ = _key
# Keras 3 operation layers (keras.ops in a functional model) and the tf_keras layer that computes the same.
_BINARY_OPS = {"Add": "Add", "Subtract": "Subtract", "Multiply": "Multiply", "Maximum": "Maximum",
               "Minimum": "Minimum"}
_UNARY_OPS = {"Tanh": "tanh", "Sigmoid": "sigmoid", "Relu": "relu", "Exp": "exponential", "Softmax": "softmax",
              "Silu": "swish", "Swish": "swish", "Gelu": "gelu", "Softplus": "softplus", "Relu6": "edgec_relu6",
              "HardSilu": "edgec_hard_silu", "HardSwish": "edgec_hard_silu", "HardSigmoid": "edgec_hard_sigmoid",
              "LeakyRelu": "edgec_leaky_relu", "LogSoftmax": "edgec_log_softmax"}


def _activation(value):
    """A Keras 3 activation name as tf_keras takes it (the Keras 3 meaning kept)."""
    if isinstance(value, str):
        if value in ACTIVATIONS:
            return f"edgec_{value}"
        return _RENAMED.get(value, value)
    return value


def _op_layer(entry: dict, name: str) -> dict | None:
    """The tf_keras layer for a Keras 3 operation layer (``keras.ops.add(x, y)``, ``keras.ops.tanh(x)``,
    ``keras.ops.multiply(x, 2.0)``), or None if there is none."""
    class_name = entry["class_name"]
    nodes = entry.get("inbound_nodes") or []
    if len(nodes) != 1 or nodes[0].get("kwargs"):
        return None
    args = nodes[0].get("args", [])
    tensors = [a for a in args if isinstance(a, dict) and a.get("class_name") == "__keras_tensor__"]
    constants = [a for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]
    node = [[_history(t, name) + [{}] for t in tensors]]
    if class_name in _UNARY_OPS and len(tensors) == 1 and not constants:
        return {"class_name": "Activation", "config": {"name": name, "activation": _UNARY_OPS[class_name]},
                "inbound_nodes": node}
    if class_name in _BINARY_OPS and len(tensors) == 2 and not constants:
        return {"class_name": _BINARY_OPS[class_name], "config": {"name": name}, "inbound_nodes": node}
    if len(tensors) == 1 and len(constants) == 1 and len(args) == 2:  # a tensor and a number: y = x * s + o
        c = float(constants[0])
        scale_offset = {"Add": (1.0, c), "Subtract": (1.0, -c) if args[0] is tensors[0] else None,
                        "Multiply": (c, 0.0), "Divide": (1.0 / c, 0.0) if c and args[0] is tensors[0] else None}
        pair = scale_offset.get(class_name)
        if pair is None:
            return None
        scale, offset = pair
        return {"class_name": "Rescaling", "config": {"name": name, "scale": scale, "offset": offset},
                "inbound_nodes": node}
    return None


def _layer(entry: dict) -> dict:
    class_name = entry["class_name"]
    name = entry.get("name") or entry.get("config", {}).get("name", "?")
    config = entry.get("config") or {}
    module = entry.get("module") or ""
    if module.startswith("keras.src.ops") and (op := _op_layer(entry, name)) is not None:
        op["name"] = name
        return op
    if class_name in _MODEL_CLASSES:
        out = _model_config(entry)
    else:
        module = entry.get("module") or ""
        cls = _find_class(class_name)
        if cls is None or (module and not module.startswith(("keras.layers", "keras.src.layers"))):
            raise ModelLoadError(f"layer '{name}' ({class_name} from {module or 'a custom module'}) has no "
                                 "tf_keras equivalent; build the model from keras.layers (for example "
                                 "keras.layers.Add instead of `x + y`) or save it with tf_keras")
        cfg = {k: _object(v) for k, v in config.items()}
        if "activation" in cfg:
            cfg["activation"] = _activation(cfg["activation"])
        if class_name == "LeakyReLU" and "negative_slope" in cfg:  # tf_keras calls it alpha
            cfg["alpha"] = cfg.pop("negative_slope")
        if class_name == "InputLayer":
            if "batch_shape" in cfg:
                cfg["batch_input_shape"] = cfg.pop("batch_shape")
            cfg.pop("optional", None)
        accepted = _accepted_keys(cls)
        if accepted is not None:
            dropped = sorted(set(cfg) - accepted)
            if dropped:
                _log.debug("layer %s: dropping Keras 3 keys %s", name, dropped)
            cfg = {k: v for k, v in cfg.items() if k in accepted}
        out = {"class_name": class_name, "config": cfg}
    out["name"] = name
    if "inbound_nodes" in entry:
        out["inbound_nodes"] = [_node(n, name) for n in entry["inbound_nodes"]]
    return out


def _model_config(entry: dict) -> dict:
    class_name = entry["class_name"]
    config = entry["config"]
    layers = [_layer(layer) for layer in config["layers"]]
    if class_name == "Sequential":
        return {"class_name": "Sequential",
                "config": {"name": config.get("name"), "layers": [
                    {"class_name": layer["class_name"], "config": layer["config"]} for layer in layers]}}
    return {"class_name": "Functional", "config": {
        "name": config.get("name"), "layers": layers,
        "input_layers": config["input_layers"], "output_layers": config["output_layers"]}}


def _fix_io(value):
    """Keras 3 writes one input/output as [name, 0, 0]; tf_keras wants a list of those."""
    if value and isinstance(value[0], str):
        return [value]
    return value


def translate_config(k3_config: dict) -> dict:
    """Translate a Keras 3 serialized model (``model.get_config()`` wrapped with
    ``class_name``/``config``, as in ``config.json``) into a tf_keras one."""
    out = _model_config(k3_config)
    cfg = out["config"]
    if "input_layers" in cfg:
        cfg["input_layers"] = _fix_io(cfg["input_layers"])
        cfg["output_layers"] = _fix_io(cfg["output_layers"])
    return out


def _copy_weights(src, dst) -> None:
    by_name = {layer.name: layer for layer in src.layers}
    for layer in dst.layers:
        other = by_name.get(layer.name)
        if other is None and not layer.weights:  # a keras.ops operation (not a Keras 3 layer): nothing to copy
            continue
        if other is None:
            raise ModelLoadError(f"layer '{layer.name}' is missing from the Keras 3 model after translation; "
                                 "save the model with tf_keras instead")
        if hasattr(layer, "layers") and hasattr(other, "layers"):
            _copy_weights(other, layer)
            continue
        weights = [np.asarray(w) for w in other.get_weights()]
        expected = [tuple(w.shape) for w in layer.weights]
        if [w.shape for w in weights] != expected:
            raise ModelLoadError(f"layer '{layer.name}' ({type(layer).__name__}): Keras 3 weights "
                                 f"{[w.shape for w in weights]} do not fit the tf_keras layer {expected}")
        layer.set_weights(weights)


def to_tf_keras(k3_model):
    """Rebuild the Keras 3 model ``k3_model`` as a tf_keras model with its weights.

    Raises:
        ModelLoadError: a layer has no tf_keras equivalent or its weights do not fit.
    """
    k = frameworks.tf_keras()
    wrapped = {"class_name": type(k3_model).__name__, "config": k3_model.get_config()}
    if wrapped["class_name"] not in _MODEL_CLASSES:
        raise ModelLoadError(f"the Keras 3 model is a subclassed model ({wrapped['class_name']}); "
                             "edgec needs a Functional or Sequential model; rebuild it with the functional API")
    cfg = translate_config(wrapped)
    # TFMOT clones the model again: the Keras 3 activations must resolve there too, by name
    k.utils.get_custom_objects().update(CUSTOM_OBJECTS)
    try:
        if cfg["class_name"] == "Sequential":
            model = k.Sequential.from_config(cfg["config"], custom_objects=CUSTOM_OBJECTS)
        else:
            model = k.Model.from_config(cfg["config"], custom_objects=CUSTOM_OBJECTS)
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"could not rebuild the Keras 3 model as tf_keras: {' '.join(str(exc).split())}; "
                             "save it with tf_keras (`import tf_keras`) instead") from None
    _copy_weights(k3_model, model)
    return model


def first_differing_layer(k3_model, tk_model, x: np.ndarray) -> str | None:
    """The first layer (in graph order) whose outputs differ between the two models."""
    k3 = frameworks.keras3()
    k = frameworks.tf_keras()
    names = [layer.name for layer in tk_model.layers if not isinstance(layer, k.layers.InputLayer)]
    k3_layers = {layer.name: layer for layer in k3_model.layers}
    for name in names:
        try:
            a = k3.Model(k3_model.inputs, k3_layers[name].output)(x)
            b = k.Model(tk_model.inputs, tk_model.get_layer(name).output)(x)
        except Exception:  # nested or multi-output layers: keep looking further on
            continue
        a_list = a if isinstance(a, (list, tuple)) else [a]
        b_list = b if isinstance(b, (list, tuple)) else [b]
        for u, v in zip(a_list, b_list):
            if not np.allclose(np.asarray(u), np.asarray(v), rtol=RTOL, atol=ATOL):
                return name
    return None


def check_same_outputs(k3_model, tk_model, x: np.ndarray) -> float:
    """Largest absolute output difference of the two models on ``x``.

    Raises:
        ModelLoadError: the outputs differ beyond the tolerance; names the layer.
    """
    a = np.asarray(k3_model(x, training=False))
    b = np.asarray(tk_model(x, training=False))
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    if a.shape != b.shape or not np.allclose(a, b, rtol=RTOL, atol=ATOL):
        layer = first_differing_layer(k3_model, tk_model, x) or "(output)"
        raise ModelLoadError(f"the tf_keras rebuild of the Keras 3 model differs at layer '{layer}' "
                             f"(max output difference {diff:.3g}); save the model with tf_keras, or "
                             "report the layer to edgec")
    return diff
