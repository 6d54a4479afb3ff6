"""edgec from Python: the same build and check as the command line, on objects in memory.

A Keras user in a notebook has a model and arrays::

    import edgec
    result = edgec.build(model, (x, y), target="cortex-m4", budgets={"ram": "96KiB"})
    result.ok, result.budgets, result.verification["top1_agreement"]
    result.write("out/")   # nothing is written before this

``model`` is a Keras 3 or tf_keras model object, or a path as on the command line; ``data`` an
array of inputs, an ``(x, y)`` pair, a dict of arrays (``x``/``y``, ``x_<input name>``, ...), a
``tf.data.Dataset``, a path to an ``.npz`` or ``"random"``. Errors are :class:`edgec.errors.EdgecError`
subclasses, whose message is the one line the command line prints.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edgec import data as data_mod
from edgec import pipeline
from edgec.budgets import parse_quantity
from edgec.check import check as _check_file
from edgec.check import inspect as _inspect_file
from edgec.config import BuildConfig, StageSpec
from edgec.errors import ConfigError
from edgec.models import LoadedModel
from edgec.report import Report

IN_MEMORY = "<in-memory model>"


@dataclasses.dataclass
class BuildResult:
    """What :func:`build` made: the report and the artifacts, in memory."""

    report: Report
    _built: pipeline.Built

    @property
    def tflite_bytes(self) -> bytes:
        """The full-integer int8 flatbuffer."""
        return next(body for name, body in self._built.files.items()
                    if name.endswith(".tflite") and not name.endswith("_vela.tflite"))

    @property
    def files(self) -> dict[str, bytes]:
        """Every artifact by file name (the C array, the settings header, ...), without the reports."""
        return dict(self._built.files)

    @property
    def ok(self) -> bool:
        """Every budget holds."""
        return self.report.ok

    @property
    def budgets(self) -> list[dict[str, Any]]:
        """One row per budget: name, value, limit, unit, kind, ok."""
        return list(self.report.budgets)

    @property
    def verification(self) -> dict[str, Any]:
        """int8 against float: task kind, agreement, error, TFLite-Micro against LiteRT."""
        return dict(self.report.verification or {})

    @property
    def measurements(self) -> dict[str, Any]:
        return dict(self.report.measurements or {})

    def to_dict(self) -> dict[str, Any]:
        return self.report.to_dict()

    def to_json(self) -> str:
        return self.report.to_json()

    def write(self, out: str | Path) -> dict[str, str]:
        """Write every artifact and report.json / report.html into the folder ``out``, all or nothing.

        Returns:
            Artifact name -> path.
        """
        return self._built.write(out)


Stages = tuple[str | StageSpec, ...] | list[str | StageSpec]
Budgets = dict[str, str | float]


def build(model: Any, data: Any = "random", target: str = "cortex-m4", *, stages: Stages = (),
          budgets: Budgets | None = None, name: str | None = None, task: str | None = None, seed: int = 0,
          calibration_samples: int = 300, verify_samples: int = 500, fit: bool = False,
          emit: tuple[str, ...] | list[str] = (), progress: bool = False) -> BuildResult:
    """Compress, convert to full int8, verify and judge ``model`` on ``target``, in memory.

    Args:
        model: a Keras 3 or tf_keras model object, or a model file's path.
        data: calibration and verification data (see the module docstring).
        target: a target profile's name (``edgec targets``) or a profile file's path.
        stages: compression stages as on the command line (``"prune:sparsity=0.5"``).
        budgets: limits overriding the profile's, as on the command line (``{"ram": "96KiB"}``).

    Raises:
        EdgecError: bad input or a model that cannot be converted, with the one-line message.
    """
    settings: dict[str, Any] = {"target": target, "name": name, "task": task, "seed": seed,
                                "calibration_samples": calibration_samples, "verify_samples": verify_samples,
                                "fit": fit, "emit": list(emit), "out": "edgec_out",
                                "stages": [s if isinstance(s, StageSpec) else StageSpec.parse(str(s)) for s in stages],
                                "budgets": {k: parse_quantity(k, v) for k, v in (budgets or {}).items()}}
    loaded = None if isinstance(model, (str, Path)) else _in_memory(model, name)
    settings["model"] = str(model) if loaded is None else IN_MEMORY
    settings["data"] = str(data) if isinstance(data, (str, Path)) else "<arrays>"
    cfg = BuildConfig.from_dict({k: v for k, v in settings.items() if v is not None})
    dataset = None
    if not isinstance(data, (str, Path)):
        dataset = _dataset(data, loaded, cfg)
    built = pipeline.run(cfg, progress, model=loaded, data=dataset)
    return BuildResult(built.report, built)


def check(tflite: str | Path | bytes, target: str = "cortex-m4", *, budgets: Budgets | None = None) -> Report:
    """Measure a ``.tflite`` (a path, or its bytes) on ``target`` and judge its budgets, as ``edgec check``."""
    overrides = {k: parse_quantity(k, v) for k, v in (budgets or {}).items()}
    if isinstance(tflite, (bytes, bytearray)):
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.tflite"
            path.write_bytes(bytes(tflite))
            return _check_file(str(path), target, overrides)
    return _check_file(str(tflite), target, overrides)


def inspect(tflite: str | Path, target: str = "cortex-m4") -> dict[str, Any]:
    """The per-op table of ``edgec inspect``: op, shape, parameters, MACs, cycles, live memory."""
    return _inspect_file(str(tflite), target)


def _in_memory(model: Any, name: str | None) -> LoadedModel:
    module = type(model).__module__.split(".")[0]
    if module not in ("keras", "tf_keras") or not getattr(model, "inputs", None):
        raise ConfigError(f"model is a {type(model).__name__}; pass a Keras 3 or tf_keras Model (Functional or "
                          "Sequential, built with known inputs), or a model file's path")
    return LoadedModel(model, name or getattr(model, "name", None) or "model", IN_MEMORY, "in-memory",
                       keras3=module == "keras")


def _dataset(data: Any, model: LoadedModel | None, cfg: BuildConfig) -> data_mod.Dataset:
    if model is None:
        raise ConfigError("data given as arrays needs the model as an object; pass both as objects, or the data "
                          "as an .npz path")
    several_in, several_out = len(model.input_names) > 1, len(model.output_names) > 1
    return data_mod.from_python(data, model.input_shapes if several_in else model.input_shape,
                                model.output_names if several_out else None, cfg.calibration_samples, cfg.seed)
