"""``--fit``: the least aggressive channel-pruning fraction whose int8 model meets the budgets.

The search needs no training: sizes, MACs and the arena of the thinner model
do not depend on its weights' values, so each trial prunes (without fine-
tuning), converts and measures. It assumes the footprint shrinks as the
fraction grows (true up to the rounding of channel counts) and bisects on the
fraction until the step is below ``TOLERANCE``. The caller fine-tunes once, at
the fraction chosen.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

from edgec.compress.base import Stage
from edgec.config import StageSpec
from edgec.errors import BudgetExceeded, ConfigError

_log = logging.getLogger(__name__)
TOLERANCE = 0.02
FIT_BUDGETS = ("flash", "ram", "latency")  # what depends on the structure; accuracy needs training


def with_channels(stages: list[Stage]) -> list[Stage]:
    """``stages`` with a ``channels`` stage first (a default one is added when there is none)."""
    from edgec.compress import create

    names = [s.name for s in stages]
    if "channels" not in names:
        return [create(StageSpec("channels", ())), *stages]
    if names.index("channels") != 0:
        raise ConfigError("--fit searches the fraction of the 'channels' stage on the loaded model, "
                          "so 'channels' must be the first stage; move it to the front")
    return stages


def search(model, stage: Any, judge: Callable, max_fraction: float, ctx=None) -> dict:
    """Bisect ``stage``'s fraction in [0, ``max_fraction``].

    ``judge(keras_model)`` returns the budget rows (``budgets.judge``) of the
    converted model; only :data:`FIT_BUDGETS` count; ``ctx`` holds the data the taylor and
    hessian criteria rank channels on. Returns the chosen fraction
    and every trial.

    Raises:
        ConfigError: no flash, RAM or latency budget to fit.
        BudgetExceeded: even ``max_fraction`` misses a budget (named, with the overshoot).
    """
    trials: list[dict[str, Any]] = []
    last: list[dict[str, Any]] = []

    def trial(fraction: float) -> bool:
        thin = model if fraction == 0 else stage.shrink(model, fraction, ctx=ctx)[0]
        rows = [r for r in judge(thin) if r["name"] in FIT_BUDGETS]
        if not rows:
            raise ConfigError("--fit needs a flash, ram or latency budget to fit; set one with "
                              "--budget ram=64KiB (or [budgets] in the recipe), or pick an MCU target")
        ok = all(r["ok"] for r in rows)
        trials.append({"fraction": round(fraction, 4), "ok": ok,
                       "budgets": {r["name"]: {"value": r["value"], "limit": r["limit"]} for r in rows}})
        _log.info("fit: fraction %.3f %s", fraction, "meets the budgets" if ok else "misses a budget")
        last[:] = rows
        return ok

    if trial(0.0):
        return {"fraction": 0.0, "trials": trials}
    if not trial(max_fraction):
        from edgec.check.budgets import failures

        raise BudgetExceeded(f"--fit: no channel fraction up to {max_fraction:g} meets the budgets; at "
                             f"{max_fraction:g} (the most aggressive tried) " + "; ".join(failures(last))
                             + ". Raise the limit, raise the channels stage's max_fraction, or start from a "
                               "smaller model")
    lo, hi = 0.0, max_fraction
    while hi - lo > TOLERANCE:
        mid = (lo + hi) / 2
        if trial(mid):
            hi = mid
        else:
            lo = mid
    return {"fraction": round(hi, 4), "trials": trials}


def apply(stage: Stage, fraction: float) -> None:
    """Set the fraction the search chose on ``stage`` (its parameters are frozen dataclasses)."""
    stage.params = dataclasses.replace(stage.params, fraction=fraction)
