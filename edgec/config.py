"""Configuration as data: frozen dataclasses with strict ``from_dict``.

An unknown key is an error that suggests the closest known one, so a typo in
a recipe or profile never passes silently.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
from pathlib import Path

from edgec.errors import ConfigError
from edgec.load import limits
from edgec.units import parse_quantity


def check_keys(data: dict, known, where: str, error=ConfigError) -> None:
    """Raise ``error`` naming the first unknown key of ``data`` and the closest known key."""
    known = list(known)
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(sorted(known))}"
            raise error(f"{where}: unknown key '{key}'; {hint}")


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """One compression stage as the user wrote it: a registered name and its parameters."""

    name: str
    params: tuple = ()  # (key, value) pairs, validated by the stage's own Params

    @classmethod
    def from_dict(cls, data: dict, where: str) -> "StageSpec":
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise ConfigError(f"{where} needs name = \"<stage>\" (one of the stages in `edgec stages`)")
        params = {k: v for k, v in data.items() if k != "name"}
        return cls(data["name"], tuple(sorted(params.items(), key=lambda kv: kv[0])))

    @classmethod
    def parse(cls, text: str) -> "StageSpec":
        """``prune:sparsity=0.75,schedule=constant`` → StageSpec; values read as TOML, else as strings.

        A list is written with ``|``: ``qat:skip=ln|head``.
        """
        name, _, rest = text.partition(":")
        params = {}
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"--stage {text!r}: '{item}' is not KEY=VALUE; write it like "
                                  "--stage prune:sparsity=0.75,epochs=2")
            params[key.strip()] = [_scalar(v) for v in value.split("|")] if "|" in value else _scalar(value)
        return cls.from_dict({"name": name.strip(), **params}, f"--stage {text!r}")

    def to_dict(self) -> dict:
        return {"name": self.name, **dict(self.params)}


def _scalar(text: str):
    text = text.strip()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _precision(value) -> tuple | str:
    """``[precision] conv3 = "int16"`` (or the same pairs as a tuple): the layers to quantize 16x8; or
    ``"auto"``: the layers with the largest quantization error, until the output budget is met."""
    if value == "auto":
        return "auto"
    pairs = tuple(value.items()) if isinstance(value, dict) else tuple(value)
    for pair in pairs:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and isinstance(pair[0], str) and pair[0]):
            raise ConfigError(f"precision must be a table of layer names, got {value!r}; write it as "
                              "[precision] conv3 = \"int16\"")
        if pair[1] not in ("int8", "int16"):
            raise ConfigError(f"precision of layer '{pair[0]}' must be \"int8\" or \"int16\", got {pair[1]!r}")
    return tuple((name, kind) for name, kind in pairs if kind == "int16")


def parse_calibration(method: str) -> tuple[str, float | None]:
    """``("minmax", None)``, ``("percentile", p)``, ``("mse", None)`` or ``("auto", None)`` (see
    :mod:`edgec.convert.calibration` and :mod:`edgec.convert.precision`).

    Raises:
        ConfigError: an unknown method, or a percentile outside (50, 100].
    """
    if method in ("minmax", "mse", "auto"):
        return method, None
    m = re.fullmatch(r"percentile:(\d+(?:\.\d+)?)", method)
    if m and 50 < float(m.group(1)) <= 100:
        return "percentile", float(m.group(1))
    raise ConfigError(f"calibration {method!r} is not known; use minmax, mse, auto, or percentile:<p> with "
                      "50 < p <= 100 (percentile:99.99)")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How stages fine-tune: the defaults suit small models; ``loss = "auto"`` reads the model's output."""

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: int = 2  # per stage, unless the stage sets its own
    loss: str = "auto"
    strategy: str = "default"  # "default", "mirrored" or "multi_worker_mirrored"

    @classmethod
    def from_dict(cls, data: dict) -> "TrainingConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"[training] must be a table of settings, got {data!r}; write it as [training]")
        check_keys(data, [f.name for f in dataclasses.fields(cls)], "[training]")
        cfg = cls(**data)
        if cfg.optimizer not in ("adam", "sgd", "rmsprop"):
            raise ConfigError(f"[training] optimizer '{cfg.optimizer}' is not adam, sgd or rmsprop")
        if cfg.strategy not in STRATEGIES:
            raise ConfigError(f"[training] strategy '{cfg.strategy}' is not one of {', '.join(STRATEGIES)}")
        for key, lo, hi in (("batch_size", 1, 1 << 20), ("epochs", 0, MAX_EPOCHS)):
            value = getattr(cfg, key)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(f"[training] {key} must be a whole number from {lo} to {hi:,}, got {value!r}")
        lr = cfg.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or not 0 < lr <= 10:
            raise ConfigError(f"[training] learning_rate must be a number in (0, 10], got {lr!r}")
        for key in ("optimizer", "loss", "strategy"):
            if not isinstance(getattr(cfg, key), str):
                raise ConfigError(f"[training] {key} must be a string, got {getattr(cfg, key)!r}")
        return cfg


def _names(value, key: str, example: str) -> tuple:
    """A string or a list of non-empty strings, as a tuple."""
    value = (value,) if isinstance(value, str) else value
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{key} must be a list of names, like {key} = {example}")
    return tuple(value)


STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")
MAX_EPOCHS = 10_000  # a recipe asking for more is a typo or an attempt to hang the CI job
MAX_SEED = 2**32 - 1
ACTIVATIONS = ("int8", "int16")  # activation type of the converted model (int16: TFLite's 16x8 mode)
FC_QUANTIZATION = ("per-channel", "per-tensor", "auto")  # FULLY_CONNECTED weight scales (edgec.convert.precision)
LUT = ("auto", "on", "off")  # LUT weight compression after conversion (edgec.convert.lut); auto: after weight sharing
LUT_STAGES = ("cluster", "ternary", "binary")  # stages that leave few values per channel: lut = "auto" compresses
TASKS = ("classifier", "regression", "reconstruction", "other")  # how an output is judged (edgec.check.verification)
EMIT_KINDS = ("c",)


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """Everything one ``edgec build`` needs, as plain values."""

    model: str
    data: str
    target: str
    out: str = "edgec_out"
    name: str | None = None
    calibration_samples: int = 300
    verify_samples: int = 500
    micro_samples: int = 50
    seed: int = 0
    allow_custom_code: bool = False
    custom_objects: tuple = ()  # modules (the user's code) whose classes the model may use
    kernels: str | None = None
    budgets: tuple = ()  # (name, value in bytes / ms / fraction) pairs overriding the profile
    training: TrainingConfig = TrainingConfig()
    stages: tuple = ()  # StageSpec, in order
    fit: bool = False  # search the channels fraction that meets the budgets
    emit: tuple = ()  # extra artifacts: "c" = interpreter-free C inference code
    code_folders: tuple = ()  # where data loaders and custom-object modules may be (default: the current folder)
    task: str | None = None  # the output's task kind (TASKS); None: inferred
    strict: bool = False  # a budget the validation set is too small to resolve is an error, not a warning
    fc_quantization: str = "per-channel"  # FULLY_CONNECTED weights: FC_QUANTIZATION (auto: measured, see convert)
    activations: str = "int8"  # ACTIVATIONS
    calibration: str = "minmax"  # activation ranges: minmax, percentile:<p>, mse (edgec.convert.calibration)
    precision: tuple | str = ()  # (Keras layer, "int16") pairs: those layers 16x8, the rest int8; or "auto"
    lut: str = "auto"  # LUT: weights as k-bit indices + tables, decoded by TFLite-Micro (edgec.convert.lut)

    @classmethod
    def from_dict(cls, data: dict) -> "BuildConfig":
        data = dict(data)
        check_keys(data, [f.name for f in dataclasses.fields(cls)], "build configuration")
        missing = [k for k in ("model", "data", "target") if data.get(k) in (None, "")]
        if missing:
            how = {"model": "MODEL (the first argument)", "data": "--data", "target": "--target"}
            raise ConfigError(f"no {', '.join(missing)} given; pass {' and '.join(how[m] for m in missing)}, "
                              f"or set {' and '.join(missing)} in a --config recipe")
        if "training" in data and not isinstance(data["training"], TrainingConfig):
            data["training"] = TrainingConfig.from_dict(data["training"])
        if "budgets" in data and not isinstance(data["budgets"], tuple):
            if not isinstance(data["budgets"], dict):
                raise ConfigError(f"budgets must be a table of limits, got {data['budgets']!r}; write it as "
                                  "[budgets] ram = \"96KiB\"")
            data["budgets"] = tuple((k, parse_quantity(k, v)) for k, v in data["budgets"].items())
        for key in ("model", "data", "target", "out", "name", "kernels", "task", "fc_quantization",
                    "activations", "calibration", "lut"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ConfigError(f"{key} must be a string, got {data[key]!r}")
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ConfigError(f"seed must be a whole number from 0 to {MAX_SEED:,}, got {seed!r}")
        stages = data.get("stages", ())
        if not isinstance(stages, (list, tuple)):
            raise ConfigError("stages must be a list of tables: [[stages]] name = \"prune\" ...")
        data["stages"] = tuple(st if isinstance(st, StageSpec) else StageSpec.from_dict(st, f"stages[{i}]")
                               for i, st in enumerate(stages))
        data["custom_objects"] = _names(data.get("custom_objects", ()), "custom_objects", '["mypkg.layers"]')
        data["emit"] = _names(data.get("emit", ()), "emit", '["c"]')
        data["precision"] = _precision(data.get("precision", ()))
        unknown = [e for e in data["emit"] if e not in EMIT_KINDS]
        if unknown:
            raise ConfigError(f"emit {unknown[0]!r} is not known; use one of {', '.join(EMIT_KINDS)}")
        cfg = cls(**data)
        for key in ("fit", "strict", "allow_custom_code"):
            if not isinstance(getattr(cfg, key), bool):
                raise ConfigError(f"{key} must be true or false, got {getattr(cfg, key)!r}")
        if cfg.activations not in ACTIVATIONS:
            raise ConfigError(f"activations {cfg.activations!r} is not known; use one of {', '.join(ACTIVATIONS)}")
        if cfg.fc_quantization not in FC_QUANTIZATION:
            raise ConfigError(f"fc_quantization {cfg.fc_quantization!r} is not known; use one of "
                              f"{', '.join(FC_QUANTIZATION)}")
        parse_calibration(cfg.calibration)
        if cfg.lut not in LUT:
            raise ConfigError(f"lut {cfg.lut!r} is not known; use one of {', '.join(LUT)}")
        if cfg.lut == "on" and cfg.activations != "int8":
            raise ConfigError("lut = \"on\" compresses int8 models; drop it or build with int8 activations")
        if cfg.precision and (cfg.activations != "int8" or cfg.calibration != "minmax"
                              or cfg.fc_quantization != "per-channel"):
            raise ConfigError("precision (layers in 16x8) works with int8 activations elsewhere, minmax calibration "
                              "and per-channel FULLY_CONNECTED weights; drop the other choice")
        if cfg.calibration != "minmax" and (cfg.activations != "int8" or cfg.fc_quantization == "auto"):
            raise ConfigError(f"calibration {cfg.calibration!r} works with int8 activations and a fixed "
                              "fc_quantization (per-channel or per-tensor); drop one of the two choices")
        if cfg.task is not None and cfg.task not in TASKS:
            raise ConfigError(f"task {cfg.task!r} is not known; use one of {', '.join(TASKS)} (or leave it out "
                              "to infer it from the model and the labels)")
        for key in ("calibration_samples", "verify_samples", "micro_samples"):
            value = getattr(cfg, key)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
                raise ConfigError(f"{key} must be a whole number from 1 to 1,000,000, got {value!r}")
        return cfg

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["stages"] = [st.to_dict() for st in self.stages]
        d["budgets"] = dict(self.budgets)
        d["emit"] = list(self.emit)
        d["precision"] = self.precision if isinstance(self.precision, str) else dict(self.precision)
        d["custom_objects"] = list(self.custom_objects)
        return d


# Keys a recipe may not hold: what they switch on is for the person running edgec to decide.
_COMMAND_LINE_ONLY = {"allow_custom_code": "pass --allow-custom-code on the command line for a model you trust",
                      "code_folders": "loaders and custom objects are looked up in the current folder (and the "
                                      "recipe's, with --trust-recipe)"}


def code_in_recipe(recipe: dict) -> list[str]:
    """What in a recipe would run the user's Python code (a data loader, custom-object modules)."""
    found = []
    data = recipe.get("data")
    if isinstance(data, str) and ":" in data and data != "random" and not Path(data).exists():
        found.append(f"data = {data!r} (a loader function)")
    if recipe.get("custom_objects"):
        found.append(f"custom_objects = {recipe['custom_objects']!r}")
    return found


def recipe_settings(path: str | Path, trusted: bool = False, given: frozenset = frozenset()) -> tuple[dict, tuple]:
    """A recipe's settings, refused if it names code to run and is not ``trusted``, and the folders
    that code may come from (the current folder; the recipe's too when trusted).

    Args:
        path: the recipe.
        trusted: ``--trust-recipe``.
        given: the keys the command line sets itself (a recipe's loader that ``--data`` replaces
            runs nothing).

    Raises:
        ConfigError: what :func:`load_recipe` raises, or code in an untrusted recipe.
    """
    settings = load_recipe(path)
    code = code_in_recipe({k: v for k, v in settings.items() if k not in given})
    if code and not trusted:
        raise ConfigError(f"the recipe {path} names Python code to run: {'; '.join(code)}; edgec runs code from "
                          "a recipe only with --trust-recipe (or give --data / --custom-objects on the command "
                          "line yourself)")
    folders = (Path.cwd(), Path(path).resolve().parent) if trusted else (Path.cwd(),)
    return settings, folders


def load_recipe(path: str | Path) -> dict:
    """The build settings in an ``edgec.toml`` (or the ``[tool.edgec]`` table of a pyproject.toml).

    Paths to the model, the data, a target file and the output are taken
    relative to the recipe's folder, so a recipe works from any directory.

    Raises:
        ConfigError: missing or unreadable file, invalid TOML, no [tool.edgec] table.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist; pass the path of an edgec.toml or pyproject.toml")
    try:
        data = tomllib.loads(limits.read_text(p, "config file"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {p} ({exc}); check the file") from None
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ConfigError(f"config file {p} is not valid TOML ({exc}); fix the file") from None
    if p.name == "pyproject.toml":
        data = data.get("tool", {}).get("edgec")
        if not isinstance(data, dict):
            raise ConfigError(f"{p} has no [tool.edgec] table; add one or pass an edgec.toml")
    for key in _COMMAND_LINE_ONLY:
        if key in data:
            raise ConfigError(f"config file {p}: {key} cannot be set in a recipe (a recipe someone sends you must "
                              f"not switch a safety off or choose where code comes from); "
                              f"{_COMMAND_LINE_ONLY[key]}")
    check_keys(data, [f.name for f in dataclasses.fields(BuildConfig) if f.name not in _COMMAND_LINE_ONLY],
               f"config file {p}")
    base = p.resolve().parent
    for key in ("model", "out"):
        if isinstance(data.get(key), str):
            data[key] = str(base / data[key])
    if isinstance(data.get("data"), str) and data["data"] != "random" and ":" not in data["data"]:
        data["data"] = str(base / data["data"])
    if isinstance(data.get("target"), str) and data["target"].endswith(".toml"):
        data["target"] = str(base / data["target"])
    for stage in data.get("stages", []) if isinstance(data.get("stages"), list) else []:
        for key in ("teacher", "student"):
            if isinstance(stage, dict) and isinstance(stage.get(key), str):
                stage[key] = str(base / stage[key])
    return data
