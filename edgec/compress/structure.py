"""What a structural stage changes in what ships: parameters, MACs, int8 bytes, TFLite-Micro arena.

Measured by converting the model (a few calibration samples suffice: the
sizes do not depend on the scales) and planning its arena with the real
TFLite-Micro interpreter. Used for the before/after figures of ``channels``
and ``lowrank``, and by the budget fit, which needs no training.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgec.errors import UnsupportedOpError
from edgec.load.tflite_file import TFLiteModel
from edgec.runtime.micro import Arena

CALIBRATION_SAMPLES = 16


@dataclasses.dataclass
class Footprint:
    parameters: int
    tflite: bytes
    model: TFLiteModel
    arena: Arena | None          # None: TFLite-Micro has no kernel for some op
    refusal: UnsupportedOpError | None = None

    def to_dict(self) -> dict:
        return {"parameters": self.parameters, "macs": self.model.macs, "tflite_bytes": len(self.tflite),
                "arena_bytes": self.arena.bytes if self.arena else None}


def footprint(keras_model, x: np.ndarray) -> Footprint:
    """Convert ``keras_model`` to int8 (calibrated on the first samples of ``x``) and measure it."""
    from edgec.convert.int8 import by_layer, convert_int8
    from edgec.load.tflite_file import EDGEC_BUILT, read_tflite
    from edgec.runtime import micro

    data = convert_int8(keras_model, x[:CALIBRATION_SAMPLES])
    tfl = read_tflite(data, "converted model", made_by=EDGEC_BUILT)
    try:
        arena, refusal = micro.measure_arena(data), None
    except UnsupportedOpError as exc:  # named by the Keras layer the op came from
        arena, refusal = None, by_layer(keras_model, tfl, exc)
    return Footprint(int(keras_model.count_params()), data, tfl, arena, refusal)


def compare(before: Footprint, after: Footprint) -> dict:
    """``{"before": {...}, "after": {...}, "ratio": {...}}`` for the report."""
    b, a = before.to_dict(), after.to_dict()
    ratio = {k: round(a[k] / b[k], 4) for k in b if b[k] and a[k] is not None}
    return {"before": b, "after": a, "ratio": ratio}
