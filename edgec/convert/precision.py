"""How the model is quantized: the build's precision choices in one place. FULLY_CONNECTED weights per
output channel, per tensor, or chosen by measurement; int8 or int16 activations; the activation ranges
(:mod:`edgec.convert.calibration`).

Per-channel weights are TFLite's default and the most accurate. Per tensor, an FC layer has one scale, so
the file holds fewer scales and TFLite-Micro's arena no per-channel multipliers and shifts: on an FC-only
autoencoder shaped like MLPerf Tiny's anomaly detector the arena drops from 22,040 to 4,632 bytes (the
reference int8 file's figure) for 0.5 dB of output SNR (measured; ``tests/test_precision.py``).

``auto`` converts both ways and keeps per-tensor when its output SNR against the float model, on the
validation samples, is within :data:`AUTO_SNR_DROP_DB` of per-channel's, or meets the target's
``output_snr_db`` budget; the report records both conversions and what was saved.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from edgec.check.verification import error_metrics, predict
from edgec.convert.calibration import convert as convert_with_ranges
from edgec.convert.int8 import convert_int8
from edgec.convert.mixed import convert as convert_mixed
from edgec.errors import ConfigError, RuntimeCheckError
from edgec.load.tflite_file import EDGEC_BUILT, dequantize, quantize, read_tflite
from edgec.runtime import litert, micro

_log = logging.getLogger(__name__)
AUTO_SNR_DROP_DB = 1.0  # auto keeps per-tensor FC if it loses at most this much output SNR against per-channel
AUTO_SAMPLES = 200      # validation samples the choice is measured on
AUTO_CALIBRATIONS = ("minmax", "percentile:99.99", "percentile:99.9", "percentile:99", "mse")  # calibration auto


def _reference(model, calibration: np.ndarray, x_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The samples an automatic choice is measured on (up to :data:`AUTO_SAMPLES` validation samples, held out
    from calibration; the calibration samples if there are none) and the float model's outputs on them."""
    x = x_val[:AUTO_SAMPLES] if len(x_val) else calibration[:AUTO_SAMPLES]
    return x, predict(model, x)


def _measure(data: bytes, float_out: np.ndarray, x: np.ndarray) -> dict[str, Any]:
    tfl = read_tflite(data, "converted model", made_by=EDGEC_BUILT)
    q = litert.run(data, quantize(x, tfl.input), reference_kernels=True).astype(np.int32)
    errors = error_metrics(float_out, dequantize(q, tfl.output), q, tfl.output)
    try:
        arena: int | None = micro.measure_arena(data).bytes
    except RuntimeCheckError:  # an op TFLite-Micro lacks: the arena is judged (and reported) later, as always
        arena = None
    return {"tflite_bytes": len(data), "arena_bytes": arena, "output_snr_db": errors["output_snr_db"],
            "output_error_steps_max": errors["output_error_steps_max"]}


AUTO_MAX_PROMOTED = 4  # precision = "auto" promotes at most this many layers to 16x8


def promote_layers(model, calibration: np.ndarray, x_val: np.ndarray, ranked: list[str],
                   snr_budget_db: float | None, steps_budget: float | None,
                   ram_limit: int | None) -> tuple[bytes, dict[str, Any]]:
    """``precision = "auto"``: the int8 model, then the ``ranked`` layers (worst quantization error first)
    promoted to 16x8 one more at a time, each measured on up to :data:`AUTO_SAMPLES` validation samples,
    until the output meets ``snr_budget_db`` / ``steps_budget``. A trial whose arena exceeds ``ram_limit``
    is not kept. Without a trial that meets the budget, the one with the best SNR that fits is kept, and the
    section says so."""
    x, float_out = _reference(model, calibration, x_val)
    trials: list[dict[str, Any]] = []
    kept: tuple[bytes, dict[str, Any]] | None = None
    layers: list[str] = []
    skipped: list[str] = []
    candidates = iter(ranked)
    while True:
        try:
            data = convert_int8(model, calibration) if not layers else convert_mixed(model, calibration, layers)[0]
        except ConfigError as exc:  # a layer with no activation of its own in 16x8 (the model's output layer)
            if "matched no op" not in str(exc):
                raise
            skipped.append(layers.pop())
            if (nxt := next(candidates, None)) is None:
                break
            layers.append(nxt)
            continue
        r = {"int16_layers": list(layers), **_measure(data, float_out, x)}
        r["fits_ram"] = ram_limit is None or r["arena_bytes"] is None or r["arena_bytes"] <= ram_limit
        r["meets_output_budget"] = ((snr_budget_db is None or (r["output_snr_db"] or 0.0) >= snr_budget_db)
                                    and (steps_budget is None or r["output_error_steps_max"] <= steps_budget))
        trials.append(r)
        if r["fits_ram"] and (kept is None or (r["output_snr_db"] or -math.inf) > (kept[1]["output_snr_db"]
                                                                                   or -math.inf)):
            kept = (data, r)
        if r["fits_ram"] and r["meets_output_budget"]:
            kept = (data, r)
            break
        if len(layers) == AUTO_MAX_PROMOTED or (nxt := next(candidates, None)) is None:
            break
        layers.append(nxt)
    if kept is None:
        raise ConfigError("precision = \"auto\": even the int8 model's arena exceeds the ram budget")
    data, best = kept
    reason = (f"the first trial that meets the output budget ({len(best['int16_layers'])} layer(s) in 16x8)"
              if best["meets_output_budget"] else "no trial met the output budget; the best SNR that fits is kept")
    return data, {"mode": "auto", "int16_layers": best["int16_layers"], "reason": reason, "trials": trials,
                  "skipped_layers": skipped}


def _best_ranges(model, calibration: np.ndarray, x_val: np.ndarray,
                 per_tensor_fc: bool) -> tuple[bytes, dict[str, Any]]:
    """``calibration = "auto"``: every method of :data:`AUTO_CALIBRATIONS` converted, measured on up to
    :data:`AUTO_SAMPLES` validation samples (held out from calibration), and the one with the highest output
    SNR against the float model kept (min-max on a tie)."""
    x, float_out = _reference(model, calibration, x_val)
    candidates: dict[str, tuple[bytes, dict[str, Any]]] = {
        "minmax": (convert_int8(model, calibration, per_tensor_fc=per_tensor_fc), {"method": "minmax"})}
    for method in AUTO_CALIBRATIONS[1:]:
        candidates[method] = convert_with_ranges(model, calibration, method, per_tensor_fc=per_tensor_fc)
    measured = {m: _measure(data, float_out, x) for m, (data, _) in candidates.items()}
    best = max(measured, key=lambda m: (measured[m]["output_snr_db"] or -math.inf, m == "minmax"))
    data, section = candidates[best]
    _log.info("calibration %s: the highest output SNR of %s", best, ", ".join(measured))
    return data, {**section, "method": "auto", "chosen": best, "samples": int(len(x)),
                  "candidates": {m: {"output_snr_db": r["output_snr_db"], "arena_bytes": r["arena_bytes"],
                                     "tflite_bytes": r["tflite_bytes"]} for m, r in measured.items()}}


def convert(model, calibration: np.ndarray, x_val: np.ndarray, mode: str, snr_budget_db: float | None = None,
            activations: str = "int8", ranges: str = "minmax", several: bool = False,
            int16_layers: tuple[str, ...] = ()) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    """The converted flatbuffer as the build's choices ask: FULLY_CONNECTED weights ``mode`` (per-channel,
    per-tensor or auto), ``activations`` (int8 or int16) and activation ``ranges`` (a calibration method, see
    :mod:`edgec.convert.calibration`), and ``int16_layers`` in 16x8 with the rest int8
    (:mod:`edgec.convert.mixed`). Returns it with the report's ``fc_quantization`` section (for
    ``auto``: both conversions measured, and why one was kept) and its ``calibration`` section."""
    if int16_layers:  # the configuration allows it with int8, min-max and per-channel FC only
        data, section = convert_mixed(model, calibration, list(int16_layers))
        return data, {"mode": mode, "chosen": mode}, {"method": "minmax", "mixed_precision": section}
    if ranges == "auto":
        data, section = _best_ranges(model, calibration, x_val, per_tensor_fc=mode == "per-tensor")
        return data, {"mode": mode, "chosen": mode}, section
    if ranges != "minmax":  # the configuration allows it with int8 and a fixed FC choice only
        data, section = convert_with_ranges(model, calibration, ranges, per_tensor_fc=mode == "per-tensor")
        return data, {"mode": mode, "chosen": mode}, section
    minmax = {"method": "minmax"}
    if mode == "auto" and several:
        return (convert_int8(model, calibration, activations=activations),
                {"mode": mode, "chosen": "per-channel", "reason": "auto measures models with one input and one "
                 "output; set fc_quantization = \"per-tensor\" to convert this one per tensor"}, minmax)
    if mode != "auto":
        return (convert_int8(model, calibration, per_tensor_fc=mode == "per-tensor", activations=activations),
                {"mode": mode, "chosen": mode}, minmax)
    per_channel = convert_int8(model, calibration, activations=activations)
    if "FULLY_CONNECTED" not in read_tflite(per_channel, "converted model", made_by=EDGEC_BUILT).op_counts:
        return per_channel, {"mode": mode, "chosen": "per-channel", "reason": "the model has no FULLY_CONNECTED op"}, \
            minmax
    per_tensor = convert_int8(model, calibration, per_tensor_fc=True, activations=activations)
    x, float_out = _reference(model, calibration, x_val)
    pc, pt = _measure(per_channel, float_out, x), _measure(per_tensor, float_out, x)
    snr_pc, snr_pt = pc["output_snr_db"], pt["output_snr_db"]
    if snr_pc is None or snr_pt is None:
        keep, why = "per-channel", "the float outputs are all zero, so the SNR cannot tell the two apart"
    elif snr_pt >= snr_pc - AUTO_SNR_DROP_DB:
        keep, why = "per-tensor", (f"its output SNR ({snr_pt:.2f} dB) is within {AUTO_SNR_DROP_DB} dB of "
                                   f"per-channel's ({snr_pc:.2f} dB)")
    elif snr_budget_db is not None and snr_pt >= snr_budget_db:
        keep, why = "per-tensor", (f"its output SNR ({snr_pt:.2f} dB) meets the output_snr_db budget "
                                   f"({snr_budget_db} dB)")
    else:
        keep, why = "per-channel", (f"per-tensor's output SNR ({snr_pt:.2f} dB) is more than "
                                    f"{AUTO_SNR_DROP_DB} dB below per-channel's ({snr_pc:.2f} dB)")
    _log.info("FULLY_CONNECTED weights %s: %s", keep, why)
    section = {"mode": mode, "chosen": keep, "reason": why, "samples": int(len(x)),
               "per-channel": pc, "per-tensor": pt,
               "bytes_saved": pc["tflite_bytes"] - pt["tflite_bytes"] if keep == "per-tensor" else 0,
               "arena_bytes_saved": (pc["arena_bytes"] - pt["arena_bytes"]
                                     if keep == "per-tensor" and None not in (pc["arena_bytes"], pt["arena_bytes"])
                                     else 0)}
    return (per_tensor if keep == "per-tensor" else per_channel), section, minmax
