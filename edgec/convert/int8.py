"""Full-integer int8 TFLite conversion, calibrated on a representative dataset.

The result has int8 weights and activations, int8 input and output tensors,
and only ``TFLITE_BUILTINS_INT8`` ops. The converter does not always enforce
that itself: some ops (CUMSUM, SIN, ...) are left in float behind
DEQUANTIZE/QUANTIZE pairs without an error, so the result is read back and
checked here; any float op is an error naming the layer it came from.
"""

from __future__ import annotations

import logging
import re
import warnings
from typing import Any, Callable

import numpy as np

from edgec import frameworks
from edgec.capture import captured_fds
from edgec.errors import ConversionError
from edgec.load.tflite_file import EDGEC_BUILT, TFLiteModel, read_tflite

_log = logging.getLogger(__name__)
_TF_OP = re.compile(r"'tf\.(\w+)' op")
_SELECT_OPS = re.compile(r"TF Select ops: ([\w, ]+)")


def _layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from _layers(layer)
        else:
            yield layer


def _layer_with_tf_op(model, op_type: str) -> str | None:
    """Name of the first layer whose traced graph contains a TF op of ``op_type``."""
    tf = frameworks.tf()
    k = frameworks.tf_keras()
    for layer in _layers(model):
        if isinstance(layer, k.layers.InputLayer):
            continue
        try:
            inputs = layer.input
            specs = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), inputs)
            graph = tf.function(lambda x, _l=layer: _l(x)).get_concrete_function(specs).graph
        except Exception:  # layers without a single traced input are skipped
            continue
        if any(op.type == op_type for op in graph.get_operations()):
            return layer.name
    return None


def _layer_from_tensor_name(model, tensor_name: str) -> str | None:
    """The layer a converted tensor's name comes from. Keras 3 name scopes carry a call count
    (layer ``conv2d_6`` traces as ``conv2d_6_1``), so a part that is a layer name plus ``_<n>`` counts."""
    names = {layer.name for layer in _layers(model)}
    parts = re.split(r"[/;:]", tensor_name)
    for part in parts:
        if part in names:
            return part
    for part in parts:
        if (base := re.sub(r"_\d+$", "", part)) in names:
            return base
    return None


# TFLite builtin → TensorFlow op type, where it is not the CamelCase of the builtin name.
_TF_OP_OF_BUILTIN = {"REDUCE_MAX": "Max", "REDUCE_MIN": "Min", "REDUCE_PROD": "Prod", "SUM": "Sum",
                     "MEAN": "Mean", "FULLY_CONNECTED": "MatMul", "CONV_2D": "Conv2D",
                     "DEPTHWISE_CONV_2D": "DepthwiseConv2dNative", "GATHER": "GatherV2",
                     "REVERSE_V2": "ReverseV2", "RESIZE_BILINEAR": "ResizeBilinear"}


def layer_of_op(model, tfl: TFLiteModel, op) -> str:
    """``layer 'name'`` for the Keras layer a TFLite op came from, else where the op sits.

    The converter names most tensors after the TF ops (``model/conv/Relu``);
    the graph's output tensor is named after the signature instead, so then
    each layer is traced for the TF op the builtin comes from.
    """
    if model is not None:
        for i in op.outputs:
            if layer := _layer_from_tensor_name(model, tfl.tensors[i].name):
                return f"layer '{layer}'"
        tf_op = _TF_OP_OF_BUILTIN.get(op.name) or "".join(w.capitalize() for w in op.name.split("_"))
        if layer := _layer_with_tf_op(model, tf_op):
            return f"layer '{layer}'"
    return tfl.describe_op(op)


def explain_failure(model, exc: Exception) -> ConversionError:
    text = str(exc)
    ops = _TF_OP.findall(text)
    select = _SELECT_OPS.search(text)
    if select:
        ops = [o.strip() for o in select.group(1).split(",") if o.strip()] or ops
    rnn = recurrent_layer(model)
    if ops and ops[0].startswith("TensorList") and rnn is not None:
        shape = tuple(None if d is None else int(d) for d in model.inputs[0].shape[1:]) if model.inputs else ()
        return ConversionError(f"layer '{rnn.name}' ({rnn.__class__.__name__}) needs a fixed number of time steps "
                               f"and one input to convert to int8 (the model's input shape is {shape}, "
                               f"{len(model.inputs)} input(s)): edgec converts recurrent layers at batch 1 over "
                               "fixed time steps; give the model's Input a fixed shape, e.g. keras.Input((49, 10))")
    if ops:
        op = ops[0]
        layer = _layer_with_tf_op(model, op) or "unknown layer"
        return ConversionError(f"layer '{layer}' uses TensorFlow op {op}, which has no int8 TFLite builtin; "
                               "replace the layer with built-in Keras layers that TFLite supports")
    first = next((ln.strip() for ln in text.splitlines() if "error" in ln.lower()), text.strip()[:200])
    return ConversionError(f"the TFLite converter failed: {first[:300]}; "
                           "check that every layer is a built-in Keras layer TFLite supports")


def by_layer(model, tfl: TFLiteModel, exc):
    """``exc`` (an :class:`~edgec.errors.UnsupportedOpError` from a runtime) naming the Keras layer its op
    came from (:func:`layer_of_op`): the one way edgec relabels an op for the user."""
    return tfl.locate(exc, lambda op: layer_of_op(model, tfl, op))


def layer_for_tensor(model, tensor: str) -> str:
    """The Keras layer an op's output tensor came from; of the layers fused into one op (conv, batch
    norm, relu) the one with weights. The model's output tensor maps to the last layer."""
    names = re.split(r"[/;:]", tensor)
    fused = [layer for layer in _layers(model) if layer.name in names]
    for has in (lambda lay: hasattr(lay, "kernel") or hasattr(lay, "depthwise_kernel"),
                lambda lay: bool(lay.weights)):
        weighted = [layer.name for layer in fused if has(layer)]
        if weighted:
            return weighted[-1]
    if tensor.startswith(("StatefulPartitionedCall", "Identity")) and model.layers:  # the output: the last layer
        return model.layers[-1].name
    return _layer_from_tensor_name(model, tensor) or tensor


def check_full_int8(model, tfl: TFLiteModel, activations: str = "int8") -> None:
    """Raise :class:`ConversionError` unless every op computes in integers and the input and output are
    ``activations`` (int8, or int16 for a 16x8 model)."""
    for op in tfl.ops:
        if op.name in ("QUANTIZE", "DEQUANTIZE") or op.name.startswith("CUSTOM"):
            continue
        if any(tfl.tensors[i].dtype in ("float32", "float16") for i in op.outputs):
            raise ConversionError(f"{layer_of_op(model, tfl, op)} became TFLite op {op.name}, which has "
                                  "no int8 kernel and would run in float; replace the layer with one that "
                                  "TFLite can quantize")
    custom = [op.name for op in tfl.ops if op.name.startswith("CUSTOM")]
    if custom:
        raise ConversionError(f"the model converted to custom op {custom[0]}, which MCU runtimes cannot run; "
                              "use built-in Keras layers only")
    tensors = [("input", tfl.tensors[i]) for i in tfl.inputs] + [("output", tfl.tensors[i]) for i in tfl.outputs]
    for label, t in tensors:
        if t.dtype != activations:
            raise ConversionError(f"the converted model's {label} is {t.dtype}, not {activations}; "
                                  "the model's last layer must produce a quantizable float tensor")


def check_activations(model, samples: np.ndarray) -> None:
    """Refuse a model whose float activations vanish or explode on ``samples`` before converting it.

    An untrained network (``keras.applications.MobileNet(weights=None)`` as it comes) gives logits
    near 1e-15: the int8 scales then underflow and the converted file is not one any runtime
    accepts. Named here by the first layer whose output collapses, with what to do.

    Raises:
        ConversionError: naming the layer, what its outputs look like and the fix.
    """
    x: Any
    if isinstance(samples, dict):  # several inputs: by name
        x = {name: np.asarray(a[:8], np.float32) for name, a in samples.items()}
    else:
        x = np.asarray(samples[: min(len(samples), 8)], np.float32)
    layers = [layer for layer in _layers(model) if layer.__class__.__name__ != "InputLayer"]
    outputs, names = None, []
    try:
        keras = type(model).__module__.split(".")[0]
        module = frameworks.keras3() if keras == "keras" else frameworks.tf_keras()
        probes = [(layer.name, layer.output) for layer in layers if not isinstance(layer.output, (list, tuple))]
        names = [n for n, _ in probes]
        outputs = frameworks.call(module.Model(model.inputs, [t for _, t in probes]), x)
        outputs = [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
    except Exception:  # a model whose layers' outputs cannot be tapped: judge its final output alone
        final = frameworks.call(model, x)
        outputs = [np.asarray(o) for o in (final if isinstance(final, (list, tuple)) else [final])]
        names = ["the model's output"] * len(outputs)
    for name, out in zip(names, outputs):
        finite = np.isfinite(out)
        if not finite.all():
            raise ConversionError(f"layer '{name}' gives {int(out.size - finite.sum())} NaN or infinite float "
                                  "values on the calibration data; the model's activations explode, so it cannot "
                                  "be quantized; train the model, or pass --data that matches its input range")
        spread = float(np.max(np.abs(out - out.mean()))) if out.size else 0.0
        if out.size and spread < 1e-6 and float(np.max(np.abs(out))) < 1e-6:
            if fake_quant := _fake_quant_range(model, name):
                low, high, inner = fake_quant
                raise ConversionError(
                    f"after quantization-aware training, layer '{inner}' gives only zeros on the calibration data: "
                    f"its learned quantization range [{low:.3g}, {high:.3g}] has steps of {(high - low) / 255:.2g}, "
                    "wider than the activations it quantizes; QAT's ranges start "
                    "at [-6, 6] and move slowly, so activations this small (often a barely trained model whose "
                    "batch-norm statistics have not settled) need a trained float model, or more QAT epochs "
                    "(--stage qat:epochs=N)")
            raise ConversionError(f"layer '{name}' gives float outputs of at most {float(np.max(np.abs(out))):.1e} on "
                                  "the calibration data: the activations vanish there (an untrained network, or a "
                                  "dead layer), and int8 cannot represent them; train the model, or pass --data "
                                  "that matches its input range")


def _fake_quant_range(model, layer_name: str) -> tuple[float, float, str] | None:
    """The output range a TFMOT quantize wrapper learned for ``layer_name`` and the wrapped layer's own
    name (None when the layer is no quantize wrapper)."""
    layer = next((layer for layer in _layers(model) if layer.name == layer_name), None)
    ends = {w.name.split("/")[-1].split(":")[0]: w for w in getattr(layer, "weights", [])}
    low, high = ends.get("output_min"), ends.get("output_max")
    if low is None or high is None:
        return None
    inner = getattr(getattr(layer, "layer", None), "name", layer_name)
    return float(np.asarray(low)), float(np.asarray(high)), inner


def representative(samples):
    """A TFLite representative dataset: one float32 sample per call. ``samples``: an array, or a dict
    of arrays by input name in the model's input order, which is the converted function's argument
    order (:func:`batch1_function`): fed by name, never by the position a converter happens to use."""
    def gen():
        if isinstance(samples, dict):
            arrays = list(samples.values())
            for i in range(len(arrays[0])):
                yield [a[i:i + 1].astype(np.float32) for a in arrays]
            return
        for x in samples:
            yield [x[None].astype(np.float32)]
    return gen


_RECURRENT = ("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")


def recurrent_layer(model):
    """The first recurrent layer of ``model`` (LSTM, GRU, ...), or None."""
    return next((layer for layer in _layers(model) if layer.__class__.__name__ in _RECURRENT), None)


def _fused_lstm(config: dict) -> bool:
    """Whether an LSTM's config (dropout aside) is one the converter fuses into a single
    UNIDIRECTIONAL_SEQUENCE_LSTM op: tf_keras's standard kernel (tanh, sigmoid, a bias, no unroll)."""
    return (config.get("activation") == "tanh" and config.get("recurrent_activation") == "sigmoid"
            and config.get("use_bias", True) and not config.get("unroll"))


def _for_inference(class_name: str, config: dict) -> dict:
    """A recurrent layer's config as it converts: dropout off (inference never drops; the same
    function), and unrolled over its time steps unless it is an LSTM the converter fuses."""
    if class_name != "RNN":  # a generic RNN of cells has no dropout of its own
        config = {**config, "dropout": 0.0, "recurrent_dropout": 0.0}
    if class_name in ("GRU", "SimpleRNN", "RNN") or (class_name == "LSTM" and not _fused_lstm(config)):
        config["unroll"] = True
    return config


def _unrolled(model):
    """A tf_keras ``model`` whose recurrent layers (also inside Bidirectional) convert: GRU,
    SimpleRNN, a generic RNN of cells and an LSTM the converter does not fuse are unrolled over
    their fixed time steps, with the same weights; a standard LSTM stays one layer, which the
    converter fuses into one UNIDIRECTIONAL_SEQUENCE_LSTM op (TFLite-Micro runs it).

    Traced at batch 1, TF 2.21's int8 calibration crashes the process (SIGSEGV) on a recurrent
    layer kept as a loop, and a Keras conversion keeps it as TensorList ops with no int8 builtin;
    unrolled, they are FULLY_CONNECTED, ADD, MUL, LOGISTIC and TANH ops (measured).
    """
    k = frameworks.tf_keras()

    def inner(config: dict) -> dict:
        return {**config, "config": _for_inference(config.get("class_name", ""), config["config"])}

    def clone(layer):
        name = layer.__class__.__name__
        config = layer.get_config()
        if name == "RNN" and (as_layer := _layer_of_cell(layer)) is not None:
            name, config = as_layer
            return getattr(k.layers, name).from_config(_for_inference(name, config))
        if name in ("GRU", "SimpleRNN", "RNN", "LSTM"):
            config = _for_inference(name, config)
        elif name == "Bidirectional":
            config["layer"] = inner(config["layer"])
            if config.get("backward_layer"):
                config["backward_layer"] = inner(config["backward_layer"])
        return layer.__class__.from_config(config)

    if recurrent_layer(model) is None:
        return model
    copy = k.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


_CELL_LAYERS = {"LSTMCell": "LSTM", "GRUCell": "GRU", "SimpleRNNCell": "SimpleRNN"}
_RNN_KEYS = ("return_sequences", "return_state", "go_backwards", "unroll", "time_major", "name", "trainable")


def _layer_of_cell(layer) -> tuple[str, dict] | None:
    """``RNN(LSTMCell(...))`` as the layer it equals, ``LSTM(...)`` (the same weights, in the same
    order), so that the converter fuses it too; None for other cells (stacked, custom)."""
    cell = getattr(layer, "cell", None)
    name = _CELL_LAYERS.get(type(cell).__name__)
    if cell is None or name is None or getattr(layer, "stateful", False):
        return None
    rnn = layer.get_config()
    return name, {**cell.get_config(), **{key: rnn[key] for key in _RNN_KEYS if key in rnn}}


# Recurrent models the converter would crash the process on, refused by what they hold: TF 2.21's
# int8 calibration dies (SIGSEGV, measured) on a loop it cannot unroll or fuse.
def check_recurrent(model) -> None:
    """Refuse, in one line naming the layer, a recurrent model edgec cannot convert without
    crashing TensorFlow: a ConvLSTM (no unrolled form), a mask over the time steps (Masking,
    ``mask_zero``: which steps count is decided at run time), or a recurrent layer in a model of
    several inputs.

    Raises:
        ConversionError: naming the layer and the way out.
    """
    rnn = recurrent_layer(model)
    if rnn is None:
        return
    for layer in _layers(model):
        name = layer.__class__.__name__
        if name.startswith("ConvLSTM"):
            raise ConversionError(f"layer '{layer.name}' ({name}) has no int8 TFLite form: it cannot be unrolled and "
                                  "TFLite has no fused op for it (TensorFlow's int8 calibration crashes on it); use "
                                  "Conv2D layers followed by an LSTM over the time steps, or TimeDistributed convs")
        if name == "Masking" or getattr(layer, "mask_zero", False):
            raise ConversionError(f"layer '{layer.name}' ({name}) masks time steps, which decides at run time which "
                                  f"steps the recurrent layer '{rnn.name}' sees; a microcontroller runs fixed steps: "
                                  "remove the mask (pad the data with zeros, or with the last step)")
    if len(model.inputs) > 1:
        raise ConversionError(f"layer '{rnn.name}' ({rnn.__class__.__name__}) is in a model of several inputs; edgec "
                              "converts recurrent layers in models of one input for now")


def _recurrent_converter(model, spec):
    """The converter of a tf_keras recurrent ``model`` at batch 1 (see :func:`_unrolled`).

    An LSTM converts only with its variables tracked (the converter lifts them, then freezes):
    converted from a frozen function, TF 2.21's calibration crashes the process on it, and Keras 3's
    own LSTM fails calibration (READ_VARIABLE), so a Keras 3 model converts through its tf_keras
    rebuild (measured; see :meth:`edgec.load.model.LoadedModel.for_conversion`).
    """
    tf = frameworks.tf()
    model = _unrolled(model)
    holder = tf.Module()
    holder.variables_ = list(model.variables)
    holder.call = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    function = holder.call.get_concrete_function()
    lstm = any(layer.__class__.__name__ in ("LSTM", "Bidirectional") for layer in _layers(model))
    return tf.lite.TFLiteConverter.from_concrete_functions([function], holder if lstm else None)


def _batch1_spec(model, calibration: np.ndarray):
    """The batch-1 input spec of a one-input model; a dimension the model leaves free (a sequence
    model's time steps, ``Input((None, 6))``) takes the calibration samples' size, which the data
    check has made the same for all samples. None for several inputs."""
    specs = _batch1_specs(model, calibration)
    return specs[0] if specs is not None and len(specs) == 1 else None


def _batch1_specs(model, calibration):
    """One batch-1 spec per model input (see :func:`_batch1_spec`); for several inputs each is named
    after its Keras input, so the converted tensors carry the names. None where shapes disagree."""
    tf = frameworks.tf()
    samples = list(calibration.values()) if isinstance(calibration, dict) else [calibration]
    if len(samples) != len(model.inputs):
        return None
    names = frameworks.keras_input_names(model) if len(model.inputs) > 1 else [None]
    specs = []
    for tensor, sample, name in zip(model.inputs, samples, names):
        dims, given = tuple(tensor.shape)[1:], tuple(np.shape(sample)[1:])
        if len(given) != len(dims):
            return None
        specs.append(tf.TensorSpec((1, *(int(g if d is None else d) for d, g in zip(dims, given))), tf.float32,
                                   name=name))
    return specs


def batch1_function(model, calibration: np.ndarray):
    """``model`` as a frozen-able concrete function of one fixed-shape, batch-1 input (None when an input
    dimension other than the batch is unknown, the model has several inputs, or it is recurrent:
    :func:`_recurrent_converter`).

    A Keras model converted as itself keeps a dynamic batch: the converter then computes shapes at run
    time (SHAPE, STRIDED_SLICE and PACK before each RESHAPE: three of each in MobileNet 0.25, sixteen in
    EfficientNetB0), which cost arena, flash, time and TFLite-Micro kernels. A microcontroller runs one
    sample at a time, so the graph is traced for exactly that (Keras 3 and tf_keras models alike).
    """
    tf = frameworks.tf()
    specs = _batch1_specs(model, calibration)
    if specs is None or recurrent_layer(model):
        return None  # TF 2.21's int8 calibration segfaults on a recurrent layer traced this way (measured)
    if len(specs) == 1 and len(model.outputs) == 1:
        function = tf.function(lambda x: model(x, training=False), input_signature=specs).get_concrete_function()
        return _rewritten_for_int8(function)
    names, outputs = frameworks.keras_input_names(model), frameworks.keras_output_names(model)

    def several(*xs):
        out = model(dict(zip(names, xs)) if len(xs) > 1 else xs[0], training=False)
        if isinstance(out, dict):
            return [out[n] for n in outputs]
        return list(out) if isinstance(out, (list, tuple)) else [out]

    return _rewritten_for_int8(tf.function(several, input_signature=specs).get_concrete_function())


def io_order(model, tfl: TFLiteModel) -> tuple[list[str], list[str]]:
    """The Keras input and output names of the converted model's input and output tensors, in the
    interpreter's order. Inputs carry their Keras names (:func:`_batch1_specs`); outputs are the
    converted function's results in the Keras order, named ``Identity``, ``Identity_1``, ...

    Raises:
        ConversionError: a tensor that cannot be told apart (a bug in edgec).
    """
    ins, outs = frameworks.keras_input_names(model), frameworks.keras_output_names(model)
    if len(ins) == 1 and len(outs) == 1:
        return ins, outs

    def bare(name: str) -> str:
        return name.split(":")[0].removeprefix("serving_default_")

    by_input = [bare(tfl.tensors[i].name) for i in tfl.inputs]
    order = []
    for i in tfl.outputs:
        m = re.fullmatch(r"(?:StatefulPartitionedCall(?:_\d+)?:|)?Identity(?:_(\d+))?(?::0)?", tfl.tensors[i].name)
        order.append(int(m.group(1) or 0) if m else None)
    inputs_match = sorted(by_input) == sorted(ins) if len(ins) > 1 else len(by_input) == 1
    if not inputs_match:
        raise ConversionError(f"the converted model's inputs are {by_input}, not the model's {ins}; this is a bug in "
                              "edgec, please report it")
    if len(outs) > 1 and sorted(o for o in order if o is not None) != list(range(len(outs))):
        raise ConversionError(f"the converted model's outputs ({[tfl.tensors[i].name for i in tfl.outputs]}) cannot "
                              f"be matched to the model's {outs}; this is a bug in edgec, please report it")
    return (by_input if len(ins) > 1 else ins), ([outs[k] for k in order if k is not None] if len(outs) > 1 else outs)


def _rewritten_for_int8(function):
    """``function`` with the TensorFlow ops that have no int8 TFLite-Micro kernel replaced by ones that
    compute the same float values and have one. A function with none of them is returned as it is, so
    its conversion stays a plain batch-1 conversion.

    - ``Neg`` becomes a multiply by -1. TFLite has no int8 NEG kernel, and Keras 3's
      LayerNormalization computes ``-mean * inv`` (so do models using ``keras.ops.negative``).
      Only the negations the converter keeps as NEG are rewritten (a float conversion tells which):
      others belong to patterns it fuses into one op (Keras 3's PReLU into PRELU, gelu into GELU)
      and a multiply would break the pattern.
    - ``Tile`` of axes of size 1 becomes ``BroadcastTo``, which is the same thing for such axes.
      Keras 3's UpSampling2D and ``keras.ops.repeat`` tile; TFLite-Micro has no TILE kernel and
      has BROADCAST_TO.
    """
    tf = frameworks.tf()
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    def broadcast_shape(op):
        """The output shape of a ``Tile`` that only repeats axes of size 1 (else None)."""
        before, after = op.inputs[0].shape, op.outputs[0].shape
        if not (before.is_fully_defined() and after.is_fully_defined()):
            return None
        if all(a == b or a == 1 for a, b in zip(before.as_list(), after.as_list())):
            return after.as_list()
        return None

    def constant(name: str, value: np.ndarray):
        node = graph_def.node.add(name=name, op="Const")
        node.attr["dtype"].type = tf.dtypes.as_dtype(value.dtype).as_datatype_enum
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
        return node.name

    ops = function.graph.get_operations()
    negations = _negations_kept(function) if any(op.type == "Neg" for op in ops) else set()
    if not negations and not any(op.type == "Tile" and broadcast_shape(op) for op in ops):
        return function
    frozen = convert_variables_to_constants_v2(function)
    graph_def = frozen.graph.as_graph_def()
    for node in list(graph_def.node):
        if node.op == "Neg" and node.name in negations:
            minus_one = np.array(-1, tf.dtypes.as_dtype(node.attr["T"].type).as_numpy_dtype)
            node.op = "Mul"
            node.input.append(constant(f"{node.name}/minus_one", minus_one))
        elif node.op == "Tile" and (shape := broadcast_shape(frozen.graph.get_operation_by_name(node.name))):
            node.op = "BroadcastTo"
            node.input[1] = constant(f"{node.name}/shape", np.array(shape, np.int32))
            del node.attr["Tmultiples"]
            node.attr["Tidx"].type = tf.int32.as_datatype_enum
    wrapped = tf.compat.v1.wrap_function(lambda: tf.graph_util.import_graph_def(graph_def, name=""), [])
    tensor = wrapped.graph.get_tensor_by_name
    return wrapped.prune([tensor(t.name) for t in frozen.inputs], [tensor(t.name) for t in frozen.outputs])


def _is_tf_keras(model) -> bool:
    return type(model).__module__.split(".")[0] == "tf_keras"


def _negations_kept(function) -> set[str]:
    """Names of the TensorFlow ``Neg`` ops that a (float, uncalibrated) conversion keeps as NEG ops."""
    tf = frameworks.tf()
    try:
        with captured_fds(1, 2), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            converted = read_tflite(tf.lite.TFLiteConverter.from_concrete_functions([function]).convert(),
                                   "float conversion", made_by=EDGEC_BUILT)
    except Exception:  # the int8 conversion that follows reports what fails, naming the layer
        return set()
    return {part for op in converted.ops if op.name == "NEG"
            for i in op.outputs for part in converted.tensors[i].name.split(";")}


def int8_converter(model, calibration: np.ndarray, per_tensor_fc: bool = False, activations: str = "int8"):
    """The TFLiteConverter edgec converts with: full int8, int8 input and output, ``calibration`` samples,
    traced at batch 1 where the input shape is fixed (:func:`batch1_function`); FULLY_CONNECTED weights
    per output channel, or with ``per_tensor_fc`` one scale per tensor (fewer multipliers in the file and
    in TFLite-Micro's arena). ``activations = "int16"``: TFLite's 16x8 mode, int16 activations (input and
    output too) with int8 weights, all-or-nothing as the converter does it."""
    tf = frameworks.tf()
    absl = logging.getLogger("absl")  # "Please consider providing the trackable_obj argument": we do not
    level = absl.level                   # want a trackable object (it keeps variables as resources)
    absl.setLevel(logging.ERROR)
    try:
        spec = _batch1_spec(model, calibration)
        if recurrent_layer(model) is not None and spec is not None and _is_tf_keras(model):
            converter = _recurrent_converter(model, spec)
        elif (function := batch1_function(model, calibration)) is not None:  # the converter freezes its variables
            converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
        else:
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
    finally:
        absl.setLevel(level)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative(calibration)
    if activations == "int16":
        sixteen_by_eight = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        converter.target_spec.supported_ops = [sixteen_by_eight]
        converter.inference_input_type = converter.inference_output_type = tf.int16
    else:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    converter._experimental_disable_per_channel_quantization_for_dense_layers = per_tensor_fc
    return converter


def convert_int8(model, calibration: np.ndarray, per_tensor_fc: bool = False, activations: str = "int8") -> bytes:
    """Convert a tf_keras model to a full-integer int8 flatbuffer.

    Args:
        model: the tf_keras model (QAT-annotated models convert as well).
        calibration: representative inputs, batch first, float32.
        per_tensor_fc: quantize FULLY_CONNECTED weights per tensor instead of per output channel.
        activations: ``"int8"``, or ``"int16"`` for TFLite's 16x8 mode (int8 weights).

    Returns:
        The flatbuffer bytes.

    Raises:
        ConversionError: an op cannot be converted to int8; names the layer and op.
    """
    check_recurrent(model)  # before the converter: what it would crash the process on
    data = run_converter(model, int8_converter(model, calibration, per_tensor_fc, activations).convert)
    check_full_int8(model, read_tflite(data, "converted model", made_by=EDGEC_BUILT), activations)
    return data


def run_converter(model, step: Callable[[], bytes]) -> bytes:
    """One step of TensorFlow's converter (``converter.convert``, its quantizer) with its C++ chatter and
    warnings kept out of the terminal; a failure is the :class:`ConversionError` naming ``model``'s layer."""
    try:
        with captured_fds(1, 2) as chatter, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = bytes(step())
    except Exception as exc:  # the converter raises ConverterError, ValueError, RuntimeError
        raise explain_failure(model, exc) from None
    _log.debug("converter output: %s", chatter[0].strip())
    return data
