"""Mixed precision: chosen layers 16x8 (int16 activations, int8 weights), the rest int8.

TFLiteConverter's 16x8 mode is all-or-nothing. ai-edge-quantizer (Google's, pinned) quantizes a float
``.tflite`` from a recipe of regular expressions over tensor names; edgec gives it one static int8 rule
for every op and a 16x8 rule per named Keras layer, calibrates on the build's calibration samples, and
checks the result: the model's input and output are int8, no op is left in float, and each named layer
matched an op. TFLite-Micro runs the result (QUANTIZE ops convert between the precisions).
Known limit (ai-edge-quantizer 0.10.0): it has no rule for EXPAND_DIMS, so a model with Conv1D layers keeps
those ops in float, and edgec refuses it in one line.
"""

from __future__ import annotations

import re
import warnings
from importlib import metadata
from typing import Any

import numpy as np

from edgec import frameworks
from edgec.capture import captured_fds
from edgec.convert.int8 import batch1_function, check_full_int8, explain_failure
from edgec.errors import ConfigError, ConversionError
from edgec.load.tflite_file import EDGEC_BUILT, read_tflite, with_signature


def _layer_pattern(layer: str, tensor_names: list[str], layer_names: set[str]) -> str:
    """Tensor names of a Keras layer's ops: ``model/<scope>/...``, the scope being the layer's name or, as Keras 3
    traces it, its name plus ``_<n>`` (``conv3`` as ``conv3_1``) where that is not another layer's name."""
    parts = {part for name in tensor_names for part in re.split(r"[/;:]", name)}
    scopes = sorted(p for p in parts if p == layer or (re.fullmatch(rf"{re.escape(layer)}_\d+", p)
                                                      and p not in layer_names))
    return rf"(.*/)?({'|'.join(map(re.escape, scopes)) or re.escape(layer)})/.*"


def convert(model, calibration: np.ndarray, int16_layers: list[str]) -> tuple[bytes, dict[str, Any]]:
    """The flatbuffer with ``int16_layers`` in 16x8 and the rest int8, and the report's ``precision`` section.

    Raises:
        ConfigError: a named layer matched no op of the converted model.
        ConversionError: the converter or ai-edge-quantizer failed, or left an op in float.
    """
    from ai_edge_litert import interpreter as lrt
    from ai_edge_quantizer import calibrator, quantizer
    from ai_edge_quantizer.utils import qsv_utils

    tf = frameworks.tf()
    try:
        with captured_fds(1, 2), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # traced at batch 1 as edgec's int8 conversion is (no SHAPE ops for a dynamic batch), then given
            # the signature ai-edge-quantizer runs
            function = batch1_function(model, calibration)
            converter = (tf.lite.TFLiteConverter.from_keras_model(model) if function is None
                         else tf.lite.TFLiteConverter.from_concrete_functions([function]))
            float_model = with_signature(converter.convert())
            signatures = lrt.Interpreter(model_content=float_model).get_signature_list()
            if len(signatures) != 1 or [len(v["inputs"]) for v in signatures.values()] != [1]:
                raise ConfigError("precision (mixed int8/16x8) needs a model with one input; convert this one "
                                  "with activations = \"int16\" or \"int8\"")
            signature, spec = next(iter(signatures.items()))
            input_name = spec["inputs"][0]
            names = [t.name for t in read_tflite(float_model, "float model", made_by=EDGEC_BUILT).tensors]
            known = {layer.name for layer in model.layers}
            patterns = {layer: _layer_pattern(layer, names, known) for layer in int16_layers}
            q = quantizer.Quantizer(float_model)
            q.add_static_config(".*", "*", activation_num_bits=8, weight_num_bits=8)
            for pattern in patterns.values():
                q.add_static_config(pattern, "*", activation_num_bits=16, weight_num_bits=8)
            # min-max ranges over all samples, as TFLiteConverter calibrates: Quantizer.calibrate offers only a
            # moving average (smoothing 0.95), whose narrower ranges clipped the input and output and cost
            # 21 dB of output SNR on the test model (40.7 -> 19.3 dB); with min-max its all-int8 result
            # equals the converter's (measured)
            calib = calibrator.Calibrator(float_model, qsv_update_func=qsv_utils.min_max_update)
            calib.calibrate({signature: [{input_name: sample[None]} for sample in calibration]},
                            q._recipe_manager)
            data = bytes(q.quantize(calib.get_model_qsvs()).quantized_model)
    except ConfigError:
        raise
    except Exception as exc:
        raise explain_failure(model, exc) from None
    tfl = read_tflite(data, "converted model", made_by=EDGEC_BUILT)
    dequantized = {op.outputs[0] for op in tfl.ops if op.name == "DEQUANTIZE"}
    floats = sorted({op.name for op in tfl.ops if op.name != "QUANTIZE" and dequantized & set(op.inputs)})
    if dequantized:
        raise ConversionError(f"ai-edge-quantizer left op(s) {', '.join(floats) or 'DEQUANTIZE'} in float (it has no "
                              "int8 rule for them; EXPAND_DIMS, which Conv1D layers become, is one); use activations = "
                              "\"int16\" for the whole model instead")
    check_full_int8(model, tfl)
    layers = []
    for layer in int16_layers:
        tensors = [t for t in tfl.tensors if re.fullmatch(patterns[layer], t.name) and not t.is_constant]
        if not any(t.dtype == "int16" for t in tensors):
            raise ConfigError(f"precision names layer '{layer}', which matched no op of the converted model; "
                              "use the Keras layer's name (model.summary() lists them)")
        layers.append({"layer": layer, "int16_tensors": sum(t.dtype == "int16" for t in tensors)})
    return data, {"int16_layers": layers, "engine": f"ai-edge-quantizer {metadata.version('ai-edge-quantizer')}"}
