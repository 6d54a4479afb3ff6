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

import numpy as np

from edgec import _tf
from edgec._capture import captured_fds
from edgec.errors import ConversionError
from edgec.runtime.model_file import EDGEC_BUILT, TFLiteModel, read_model

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
    tf = _tf.tf()
    k = _tf.tf_keras()
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


def _explain_failure(model, exc: Exception) -> ConversionError:
    text = str(exc)
    ops = _TF_OP.findall(text)
    select = _SELECT_OPS.search(text)
    if select:
        ops = [o.strip() for o in select.group(1).split(",") if o.strip()] or ops
    rnn = recurrent_layer(model)
    if ops and ops[0].startswith("TensorList") and rnn is not None:
        return ConversionError(f"layer '{rnn.name}' ({rnn.__class__.__name__}) converts to TensorFlow's TensorList ops, "
                               "which have no int8 TFLite builtin; edgec cannot convert recurrent layers to full "
                               "int8 yet (TensorFlow 2.21's int8 calibration crashes on the fused LSTM op); keep "
                               "recurrent layers out of the int8 model for now")
    if ops:
        op = ops[0]
        layer = _layer_with_tf_op(model, op) or "unknown layer"
        return ConversionError(f"layer '{layer}' uses TensorFlow op {op}, which has no int8 TFLite builtin; "
                               "replace the layer with built-in Keras layers that TFLite supports")
    first = next((ln.strip() for ln in text.splitlines() if "error" in ln.lower()), text.strip()[:200])
    return ConversionError(f"the TFLite converter failed: {first[:300]}; "
                           "check that every layer is a built-in Keras layer TFLite supports")


def layer_for_tensor(model, tensor: str) -> str:
    """The Keras layer an op's output tensor came from; of the layers fused into one op (conv, batch
    norm, relu) the one with weights. The model's output tensor maps to the last layer."""
    names = re.split(r"[/;:]", tensor)
    fused = [layer for layer in _layers(model) if layer.name in names]
    for has in (lambda l: hasattr(l, "kernel") or hasattr(l, "depthwise_kernel"), lambda l: bool(l.weights)):
        weighted = [layer.name for layer in fused if has(layer)]
        if weighted:
            return weighted[-1]
    if tensor.startswith(("StatefulPartitionedCall", "Identity")) and model.layers:  # the output: the last layer
        return model.layers[-1].name
    return _layer_from_tensor_name(model, tensor) or tensor


def check_full_int8(model, tfl: TFLiteModel) -> None:
    """Raise :class:`ConversionError` unless every op computes in int8 (or int32 bias)."""
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
    for label, t in (("input", tfl.input), ("output", tfl.output)):
        if t.dtype != "int8":
            raise ConversionError(f"the converted model's {label} is {t.dtype}, not int8; "
                                  "the model's last layer must produce a quantizable float tensor")


def check_activations(model, samples: np.ndarray) -> None:
    """Refuse a model whose float activations vanish or explode on ``samples`` before converting it.

    An untrained network (``keras.applications.MobileNet(weights=None)`` as it comes) gives logits
    near 1e-15: the int8 scales then underflow and the converted file is not one any runtime
    accepts. Named here by the first layer whose output collapses, with what to do.

    Raises:
        ConversionError: naming the layer, what its outputs look like and the fix.
    """
    x = np.asarray(samples[: min(len(samples), 8)], np.float32)
    layers = [layer for layer in _layers(model) if layer.__class__.__name__ != "InputLayer"]
    outputs, names = None, []
    try:
        keras = type(model).__module__.split(".")[0]
        module = _tf.keras3() if keras == "keras" else _tf.tf_keras()
        probes = [(layer.name, layer.output) for layer in layers if not isinstance(layer.output, (list, tuple))]
        names = [n for n, _ in probes]
        outputs = _tf.call(module.Model(model.inputs, [t for _, t in probes]), x)
        outputs = [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
    except Exception:  # a model whose layers' outputs cannot be tapped: judge its final output alone
        outputs, names = [np.asarray(_tf.call(model, x))], ["the model's output"]
    for name, out in zip(names, outputs):
        finite = np.isfinite(out)
        if not finite.all():
            raise ConversionError(f"layer '{name}' gives {int(out.size - finite.sum())} NaN or infinite float "
                                  "values on the calibration data; the model's activations explode, so it cannot "
                                  "be quantized; train the model, or pass --data that matches its input range")
        spread = float(np.max(np.abs(out - out.mean()))) if out.size else 0.0
        if out.size and spread < 1e-6 and float(np.max(np.abs(out))) < 1e-6:
            raise ConversionError(f"layer '{name}' gives float outputs of at most {float(np.max(np.abs(out))):.1e} on "
                                  "the calibration data: the activations vanish there (an untrained network, or a "
                                  "dead layer), and int8 cannot represent them; train the model, or pass --data "
                                  "that matches its input range")


def representative(samples: np.ndarray):
    """A TFLite representative dataset: one float32 sample per call."""
    def gen():
        for x in samples:
            yield [x[None].astype(np.float32)]
    return gen


_RECURRENT = ("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")


def recurrent_layer(model):
    """The first recurrent layer of ``model`` (LSTM, GRU, ...), or None."""
    return next((layer for layer in _layers(model) if layer.__class__.__name__ in _RECURRENT), None)


def batch1_function(model):
    """``model`` as a frozen-able concrete function of one fixed-shape, batch-1 input (None when an input
    dimension other than the batch is unknown, or the model has several inputs).

    A Keras model converted as itself keeps a dynamic batch: the converter then computes shapes at run
    time (SHAPE, STRIDED_SLICE and PACK before each RESHAPE: three of each in MobileNet 0.25, sixteen in
    EfficientNetB0), which cost arena, flash, time and TFLite-Micro kernels. A microcontroller runs one
    sample at a time, so the graph is traced for exactly that (Keras 3 and tf_keras models alike).
    """
    tf = _tf.tf()
    if len(model.inputs) != 1 or recurrent_layer(model):
        return None  # TF 2.21's int8 calibration segfaults on a recurrent layer traced this way (measured)
    dims = tuple(model.inputs[0].shape)[1:]
    if any(d is None for d in dims):
        return None
    spec = tf.TensorSpec((1, *(int(d) for d in dims)), tf.float32)
    return tf.function(lambda x: model(x, training=False), input_signature=[spec]).get_concrete_function()


def int8_converter(model, calibration: np.ndarray):
    """The TFLiteConverter edgec converts with: full int8, int8 input and output, ``calibration`` samples,
    traced at batch 1 where the input shape is fixed (:func:`batch1_function`)."""
    tf = _tf.tf()
    function = batch1_function(model)
    if function is not None:  # without a trackable object the converter freezes the variables into constants
        absl = logging.getLogger("absl")  # "Please consider providing the trackable_obj argument": we do not
        level = absl.level                   # want a trackable object (it keeps variables as resources)
        absl.setLevel(logging.ERROR)
        try:
            converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
        finally:
            absl.setLevel(level)
    else:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative(calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter


def convert_int8(model, calibration: np.ndarray) -> bytes:
    """Convert a tf_keras model to a full-integer int8 flatbuffer.

    Args:
        model: the tf_keras model (QAT-annotated models convert as well).
        calibration: representative inputs, batch first, float32.

    Returns:
        The flatbuffer bytes.

    Raises:
        ConversionError: an op cannot be converted to int8; names the layer and op.
    """
    converter = int8_converter(model, calibration)
    try:
        with captured_fds(1, 2) as chatter, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = converter.convert()
    except Exception as exc:  # the converter raises ConverterError, ValueError, RuntimeError
        raise _explain_failure(model, exc) from None
    _log.debug("converter output: %s", chatter[0].strip())
    check_full_int8(model, read_model(data, "converted model", made_by=EDGEC_BUILT))
    return data
