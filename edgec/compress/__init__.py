"""Compression stages, run in the order the recipe lists them.

Each stage is a module here that registers one :class:`~edgec.compress.base.Stage`
subclass under its name: ``prune``, ``cluster``, ``ternary``, ``binary``, ``qat``, ``distill``, and the
structural ``channels`` and ``lowrank``, which rebuild a smaller model. A stage
takes the current tf_keras model and returns the next one; the runner measures
the model after every stage (:mod:`edgec.compress.metrics`). :mod:`.fit`
searches the ``channels`` fraction that meets a target's budgets.
"""

from __future__ import annotations

import importlib
import logging
import time

from edgec.compress.base import Context, Stage
from edgec.config import StageSpec
from edgec.errors import ConfigError

_log = logging.getLogger(__name__)
_MODULES = ("prune", "cluster", "ternary", "qat", "distill", "channels", "lowrank")
_REGISTRY: dict[str, type[Stage]] = {}


def register(cls: type[Stage]) -> type[Stage]:
    """Class decorator: make ``cls`` available as stage ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> dict[str, type[Stage]]:
    for module in _MODULES:
        importlib.import_module(f"edgec.compress.{module}")
    return dict(_REGISTRY)


def create(spec: StageSpec) -> Stage:
    """The stage ``spec`` names, with its parameters checked.

    Raises:
        ConfigError: unknown stage or parameter (with the closest known name).
    """
    stages = registry()
    if spec.name not in stages:
        import difflib

        close = difflib.get_close_matches(spec.name, list(stages), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(stages)}"
        raise ConfigError(f"unknown stage '{spec.name}'; {hint}")
    return stages[spec.name](dict(spec.params))


def validate(specs) -> list[Stage]:
    """All stages of a recipe, checked before any work starts (order rules included)."""
    stages = [create(s) for s in specs]
    names = [s.name for s in stages]
    for i, stage in enumerate(stages):
        stage.check_order(names[:i])
    return stages


def run(model, stages: list[Stage], ctx: Context) -> tuple[object, list[dict]]:
    """Run ``stages`` (from :func:`validate`) on ``model``; return the final model and one row per stage."""
    from edgec.compress.metrics import model_metrics

    rows = [{"name": "input", "seconds": 0.0, **model_metrics(model, ctx)}]
    for stage in stages:
        _log.info("stage %s", stage.name)
        start = time.perf_counter()
        model = stage.run(model, ctx)
        stage.check_result(model)
        ctx.done.append(stage.name)
        row = {"name": stage.name, "params": stage.params_dict(), "seconds": round(time.perf_counter() - start, 2)}
        ctx.clustered_layers = stage.extra.get("clustered_layers", ctx.clustered_layers)
        row.update(model_metrics(model, ctx, clustered=ctx.clustered_layers))
        row.update(stage.extra)
        rows.append(row)
    return out_of_strategy(model, ctx), rows


def out_of_strategy(model, ctx: Context):
    """``model`` with plain variables, for conversion. Trained under ``multi_worker_mirrored``, its
    BatchNorm statistics are variables every worker holds and reading them all-reduces across the cluster:
    the converter would trace that collective into the graph. The weights are read (each worker takes part,
    in the same order) into a copy built outside the strategy."""
    if ctx.training.strategy != "multi_worker_mirrored":
        return model
    from edgec.compress.training import copy_model

    return copy_model(model)
