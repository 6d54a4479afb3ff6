"""edgec from Python: the one facade the command line calls too, on paths or on objects in memory.

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
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgec.check import gate
from edgec.check.targets import Target
from edgec.check.targets import get as get_target
from edgec.check.targets import names as target_names
from edgec.config import ACTIVATIONS, FC_QUANTIZATION, LUT, BuildConfig, StageSpec, recipe_settings
from edgec.emit import artifacts
from edgec.errors import ConfigError, EdgecError, OutputError, UnsupportedOpError
from edgec.load import limits
from edgec.load.tflite_file import read_tflite_file
from edgec.report import Report
from edgec.runtime import sandbox
from edgec.units import parse_budget_options, parse_quantity

if TYPE_CHECKING:  # the build's modules are imported when a build runs: `edgec check` stays a fast gate
    from edgec import pipeline
    from edgec.load.data import Dataset
    from edgec.load.model import LoadedModel

__all__ = ["build", "check", "emit_c", "inspect", "stages", "targets", "set_limits", "BuildResult", "EmitResult",
           "Inspection", "Report", "Target", "EdgecError", "ConfigError", "OutputError", "FC_QUANTIZATION",
           "ACTIVATIONS", "LUT"]

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
Budgets = dict[str, str | float] | list[str] | tuple[str, ...]


def build(model: Any, data: Any = None, target: str | None = None, *, stages: Stages = (),
          budgets: Budgets | None = None, out: str | Path | None = None, recipe: str | Path | None = None,
          trust_recipe: bool = False, name: str | None = None, task: str | None = None, seed: int | None = None,
          calibration_samples: int | None = None, verify_samples: int | None = None, fit: bool | None = None,
          emit: tuple[str, ...] | list[str] = (), kernels: str | None = None, strategy: str | None = None,
          allow_custom_code: bool | None = None, custom_objects: tuple[str, ...] | list[str] = (),
          strict: bool | None = None, fc_quantization: str | None = None, activations: str | None = None,
          calibration: str | None = None, precision: dict[str, str] | list[str] | str | None = None,
          lut: str | None = None, write: bool | None = None, progress: bool = False) -> BuildResult:
    """Compress, convert to full int8, verify and judge ``model`` on ``target``; write into ``out`` if given.

    Every option is the command line's ``edgec build`` option of the same name; one left as None
    takes the ``recipe``'s value, else the default.

    Args:
        model: a Keras 3 or tf_keras model object, or a model file's path.
        data: calibration and verification data (see the module docstring).
        target: a target profile's name (``edgec targets``) or a profile file's path.
        stages: compression stages as on the command line (``"prune:sparsity=0.5"``); they replace the recipe's.
        budgets: limits overriding the profile's and the recipe's: ``{"ram": "96KiB"}`` or ``["ram=96KiB"]``.
        out: a folder to write the artifacts and reports into (checked before any work), or None to
            keep them in memory until :meth:`BuildResult.write`.
        write: write into ``out``, else the recipe's ``out``, else ``edgec_out`` (as the command line
            does); by default, only when ``out`` is given.
        recipe: an ``edgec.toml`` (or pyproject.toml with ``[tool.edgec]``); ``trust_recipe`` lets it
            name code to run.

    Raises:
        EdgecError: bad input or a model that cannot be converted, with the one-line message; nothing
            is written.
    """
    settings: dict[str, Any] = {}
    folders: tuple[Path, ...] = (Path.cwd(),)
    from_files = model is None or isinstance(model, (str, Path))  # None: the recipe's
    given_objects = not from_files or (data is not None and not isinstance(data, (str, Path)))
    if recipe is not None:
        on_call = frozenset(k for k, v in (("data", data), ("custom_objects", custom_objects)) if v)
        settings, folders = recipe_settings(recipe, trust_recipe, on_call)
    loaded = None if from_files else _in_memory(model, name)
    given = {"model": None if model is None else (IN_MEMORY if loaded else str(model)), "target": target,
             "data": None if data is None else (str(data) if isinstance(data, (str, Path)) else "<arrays>"),
             "out": None if out is None else str(out), "name": name, "task": task, "seed": seed,
             "calibration_samples": calibration_samples, "verify_samples": verify_samples, "fit": fit,
             "kernels": kernels, "emit": list(emit) or None, "custom_objects": list(custom_objects) or None,
             "allow_custom_code": allow_custom_code, "strict": strict, "fc_quantization": fc_quantization,
             "activations": activations, "calibration": calibration, "lut": lut,
             "precision": None if precision is None else _precision(precision), "code_folders": tuple(folders)}
    settings.update({k: v for k, v in given.items() if v is not None})
    if given_objects:
        settings.setdefault("out", "edgec_out")  # not written unless ``out`` is given
    if budgets:
        from_recipe = settings.get("budgets", {})
        settings["budgets"] = {**(from_recipe if isinstance(from_recipe, dict) else {}), **_budgets(budgets)}
    if stages:
        settings["stages"] = [s if isinstance(s, StageSpec) else StageSpec.parse(str(s)) for s in stages]
    if strategy:
        settings["training"] = {**settings.get("training", {}), "strategy": strategy}
    cfg = BuildConfig.from_dict(settings)
    dataset = None if data is None or isinstance(data, (str, Path)) else _dataset(data, loaded, cfg)
    write_to = cfg.out if (out is not None if write is None else write) else None
    from edgec import pipeline

    built = pipeline.run(cfg, progress, model=loaded, data=dataset, write_to=write_to)
    result = BuildResult(built.report, built)
    if write_to is not None:
        result.write(write_to)
    return result


def check(tflite: str | Path | bytes, target: str = "cortex-m4", *, budgets: Budgets | None = None,
          kernels: str | None = None) -> Report:
    """Measure a ``.tflite`` (a path, or its bytes) on ``target`` and judge its budgets, as ``edgec check``."""
    overrides = _budgets(budgets or {})
    if isinstance(tflite, (bytes, bytearray)):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.tflite"
            path.write_bytes(bytes(tflite))
            return gate.check(str(path), target, overrides, kernels)
    return gate.check(str(tflite), target, overrides, kernels)


@dataclasses.dataclass
class EmitResult:
    """What :func:`emit_c` generated (``files``, in memory) and measured (``section``: the report's ``c``)."""

    files: dict[str, bytes]
    section: dict[str, Any]

    def write(self, out: str | Path) -> dict[str, str]:
        """Write the C sources into the folder ``out`` (all or nothing). Returns name -> path."""
        folder = artifacts.check_destination(str(out), tuple(self.files))
        self.section["files"] = artifacts.write_artifacts(folder, self.files)
        return dict(self.section["files"])


def emit_c(tflite: str | Path, *, name: str | None = None, samples: int = 100, mcu: bool = True,
           target: str = "cortex-m4", out: str | Path | None = None, lut: bool = False) -> EmitResult:
    """Interpreter-free C99 for an int8 ``.tflite``, proved bit-exact with TFLite-Micro on ``samples``
    probe inputs on the host and, with ``mcu`` and the ARM tools installed, under QEMU; written into
    ``out`` if given (checked before any work). ``lut``: conv and FC weights with at most 16 values per
    output channel (a clustered model's) as indices and tables, where that takes less flash.

    Raises:
        UnsupportedOpError: an op the generator has no kernel for, named with its index.
    """
    from edgec.emit.codegen.crosscheck import emit_and_verify, probe_inputs  # not on edgec check's path

    profile = get_target(target)
    if out is not None:
        artifacts.check_destination(str(out))
    data, tfl = read_tflite_file(str(tflite))
    try:
        gen, section = emit_and_verify(data, tfl, name or Path(tflite).stem, Path(tflite).name,
                                       probe_inputs(tfl, samples), mcu="auto" if mcu else "off", target=profile,
                                       lut=lut)
    except UnsupportedOpError as exc:
        raise tfl.locate(exc) from None
    result = EmitResult({k: v.encode() for k, v in gen.files.items()}, section)
    if out is not None:
        result.write(out)
    return result


@dataclasses.dataclass
class Inspection:
    """``edgec inspect``'s per-op table of a ``.tflite`` on a target."""

    model: str
    target: str
    kernels: str
    macs: int
    parameters: int
    peak_live_bytes: int
    cycles_calibrated: bool
    clock_hz: int | None
    instructions: int | None  # the estimate for the whole model on an MCU target, else None
    cycles: int | None
    latency_ms: float | None
    latency_ms_range: list[float] | None  # the band the instruction and cycles-per-instruction fits allow
    not_measured: list[str]  # op kinds costed as another kind (no measurement of their own)
    ops: list[dict[str, Any]]  # index, op, output shape, params, MACs, elementwise, cycles, share, live bytes

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def inspect(tflite: str | Path, target: str = "cortex-m4", kernels: str | None = None) -> Inspection:
    """The per-op table of ``edgec inspect``: op, shape, parameters, MACs, cycles, live memory."""
    return Inspection(**gate.inspect(str(tflite), target, kernels))


def stages() -> dict[str, dict[str, Any]]:
    """The compression stages: name -> summary and parameters with their defaults."""
    from edgec import compress

    return {name: {"summary": st.summary, "parameters": st.defaults()} for name, st in compress.registry().items()}


def targets() -> list[Target]:
    """The built-in target profiles."""
    return [get_target(n) for n in target_names()]


def set_limits(max_input_size: str | int = "2GiB", max_memory: str | int | None = None) -> None:
    """The largest file (and array an .npz expands to) edgec reads, and the memory its interpreters may
    use (default 80 % of what is available), for the calls that follow in this context."""
    limits.set_current(limits.Limits(limits.parse_size(str(max_input_size), "--max-input-size"),
                                     limits.parse_size(str(max_memory), "--max-memory") if max_memory else 0))
    if max_memory:  # an interpreter process started before this runs under the default limit
        sandbox.shutdown()


def _budgets(budgets: Budgets) -> dict[str, float]:
    if isinstance(budgets, dict):
        return {k: parse_quantity(k, v) for k, v in budgets.items()}
    return parse_budget_options(list(budgets))


def _in_memory(model: Any, name: str | None) -> LoadedModel:
    from edgec.load.model import LoadedModel

    module = type(model).__module__.split(".")[0]
    if module not in ("keras", "tf_keras") or not getattr(model, "inputs", None):
        raise ConfigError(f"model is a {type(model).__name__}; pass a Keras 3 or tf_keras Model (Functional or "
                          "Sequential, built with known inputs), or a model file's path")
    return LoadedModel(model, name or getattr(model, "name", None) or "model", IN_MEMORY, "in-memory",
                       keras3=module == "keras")


def _precision(value: dict[str, str] | list[str] | str) -> dict[str, str] | str:
    """``{"conv3": "int16"}``, the command line's ``["conv3=int16"]``, or ``"auto"`` (also ``["auto"]``)."""
    if isinstance(value, dict):
        return dict(value)
    if value == "auto" or list(value) == ["auto"]:
        return "auto"
    pairs = [str(item).split("=", 1) for item in value]
    bad = [item for item, pair in zip(value, pairs) if len(pair) != 2]
    if bad:
        raise ConfigError(f"--precision {bad[0]!r} is not LAYER=int16; write it like --precision conv3=int16")
    return dict((name.strip(), kind.strip()) for name, kind in pairs)


def _dataset(data: Any, model: LoadedModel | None, cfg: BuildConfig) -> Dataset:
    from edgec.load import data as data_mod

    if model is None:
        raise ConfigError("data given as arrays needs the model as an object; pass both as objects, or the data "
                          "as an .npz path")
    several_in, several_out = len(model.input_names) > 1, len(model.output_names) > 1
    return data_mod.from_python(data, model.input_shapes if several_in else model.input_shape,
                                model.output_names if several_out else None, cfg.calibration_samples, cfg.seed)
