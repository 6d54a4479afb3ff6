"""What every compression stage shares: parameters as data, and the run context."""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from typing import Any

import numpy as np

from edgec import frameworks
from edgec.compress.training import compile_for_training, in_strategy, strategy
from edgec.config import TrainingConfig, check_keys
from edgec.errors import ConfigError


@dataclasses.dataclass
class Context:
    """What stages need besides the model: data, training settings, what ran before."""

    x_train: np.ndarray
    y_train: np.ndarray | None
    x_val: np.ndarray
    y_val: np.ndarray | None
    training: TrainingConfig
    seed: int = 0
    progress: bool = True
    allow_custom_code: bool = False
    custom_objects: tuple = ()
    done: list = dataclasses.field(default_factory=list)  # names of the stages already run
    clustered_layers: list = dataclasses.field(default_factory=list)  # set by a cluster stage

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.x_train) / self.training.batch_size)

    def scope(self):
        """The tf.distribute strategy's scope, in which models are built and compiled."""
        return strategy(self.training.strategy).scope()


class Stage:
    """A compression step. Subclasses set ``name``, ``summary`` and a ``Params`` dataclass."""

    name = ""
    summary = ""

    @dataclasses.dataclass(frozen=True)
    class Params:
        pass

    def __init__(self, params: dict):
        fields = dataclasses.fields(self.Params)
        check_keys(params, [f.name for f in fields], f"stage '{self.name}'")
        try:
            self.params: Any = self.Params(**params)  # the subclass's Params
        except TypeError as exc:
            raise ConfigError(f"stage '{self.name}': {exc}") from None
        self.check_params()
        self.extra: dict = {}  # stage-specific figures for the report row

    @classmethod
    def defaults(cls) -> dict:
        return {f.name: (f.default if f.default is not dataclasses.MISSING else "(required)")
                for f in dataclasses.fields(cls.Params)}

    def params_dict(self) -> dict:
        return dataclasses.asdict(self.params)

    def check_params(self) -> None:
        """Raise ConfigError for values out of range."""

    def check_order(self, before: list[str]) -> None:
        """Raise ConfigError when this stage cannot follow the stages in ``before``."""
        if "qat" in before:
            raise ConfigError(f"stage '{self.name}' cannot follow 'qat': quantization-aware training must be "
                              "the last training stage; move 'qat' to the end of the stages")

    def run(self, model, ctx: Context):
        raise NotImplementedError

    def check_result(self, model) -> None:
        """Raise ConfigError when the stage's model falls short of what it was asked for (a sparsity, a
        cluster count): a stage that silently did nothing must not pass a build."""

    def epochs(self, ctx: Context) -> int:
        """The stage's ``epochs``, else the recipe's (at least 1)."""
        epochs = getattr(self.params, "epochs", None)
        return epochs if epochs is not None else (ctx.training.epochs or 1)

    def rewrap(self, model, ctx: Context, wrap, learning_rate: float | None = None):
        """``model`` cloned in the strategy scope with ``wrap`` applied to every layer (returning the
        layer itself leaves it alone), compiled for fine-tuning."""
        model = in_strategy(model, ctx)
        with ctx.scope():
            wrapped = frameworks.tf_keras().models.clone_model(model, clone_function=wrap)
            compile_for_training(wrapped, ctx, self.name, learning_rate=learning_rate)
        return wrapped

    def fail(self, message: str) -> ConfigError:
        return ConfigError(f"stage '{self.name}': {message}")


class StructuralStage(Stage):
    """A stage that rebuilds a smaller model (``channels``, ``lowrank``): :meth:`smaller_model` makes it
    without training; :meth:`run` measures what ships before and after, then fine-tunes (on the
    labels, else on the outputs of the model before the stage)."""

    def check_order(self, before: list[str]) -> None:
        super().check_order(before)
        for undone in ("prune", "cluster", "ternary", "binary"):
            if undone in before:
                raise self.fail(f"fine-tuning after '{undone}' would undo it; put '{self.name}' before '{undone}'")

    def smaller_model(self, model, ctx: Context) -> tuple[object, dict]:
        """The smaller model (built in the strategy scope, untrained) and the stage's report."""
        raise NotImplementedError

    def run(self, model, ctx: Context):
        from edgec.compress.structure import compare, footprint
        from edgec.compress.training import fine_tune, fine_tune_source

        new, report = self.smaller_model(model, ctx)
        sizes = compare(footprint(model, ctx.x_train), footprint(new, ctx.x_train))
        epochs = self.epochs(ctx)
        logs = fine_tune(new, ctx, self.name, epochs, reference=model, learning_rate=self.params.learning_rate)
        self.extra = {**report, "footprint": sizes, "fine_tuned_on": fine_tune_source(ctx, epochs),
                      "train_logs": logs}
        return new


def in_range(stage: Stage, name: str, value, lo, hi, lo_open=False, hi_open=False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        raise stage.fail(f"{name} must be a number in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}, "
                         f"got {value!r}")


def name_matches(name: str, patterns) -> bool:
    """``fnmatch`` of a layer name against a pattern or a list of patterns."""
    if isinstance(patterns, str):
        patterns = [patterns]
    return any(fnmatch.fnmatchcase(name, p) for p in patterns or [])


def selects(name: str, include, exclude) -> bool:
    """Whether layer ``name`` matches an ``include`` pattern and no ``exclude`` pattern."""
    return name_matches(name, include) and not name_matches(name, exclude)
