"""``prune``: TFMOT magnitude pruning with a schedule, then fine-tuning, then stripping.

Zeros do not shrink the ``.tflite`` (the converter stores dense tensors); they
shrink what a compressed firmware image or OTA update carries, which is why
the report measures gzip sizes. Follow with ``qat`` (prune-preserving) to keep
the zeros through quantization-aware training.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from edgec import frameworks
from edgec.compress import register
from edgec.compress.base import Stage, in_range, selects
from edgec.compress.metrics import kernels
from edgec.compress.training import fit

_log = logging.getLogger(__name__)


@register
class Prune(Stage):
    name = "prune"
    summary = "TFMOT magnitude pruning (polynomial or constant schedule, optional 2:4), fine-tuned and stripped"

    @dataclasses.dataclass(frozen=True)
    class Params:
        sparsity: float = 0.5           # final fraction of zero weights in each pruned kernel
        initial_sparsity: float = 0.0   # polynomial schedule only
        schedule: str = "polynomial"    # "polynomial" or "constant"
        unit: str = "epochs"            # what begin and end count: "epochs" or "steps"
        begin: float = 0
        end: float | None = None        # default: 2/3 of the fine-tuning, leaving the rest to recover
        frequency: int | None = None    # steps between mask updates; default: 10, or fewer if the schedule is short
        power: float = 3.0              # polynomial decay exponent
        epochs: int | None = None       # default: [training] epochs
        include: list | str = "*"      # layer name patterns to prune
        exclude: tuple[str, ...] | list[str] | str = ()        # layer name patterns to leave dense
        m_by_n: str | None = None       # "2:4": structured N:M sparsity instead of the schedule

    def check_params(self) -> None:
        p = self.params
        in_range(self, "sparsity", p.sparsity, 0, 1, hi_open=True)
        in_range(self, "initial_sparsity", p.initial_sparsity, 0, p.sparsity)
        if p.schedule not in ("polynomial", "constant"):
            raise self.fail(f"schedule '{p.schedule}' is not 'polynomial' or 'constant'")
        if p.unit not in ("epochs", "steps"):
            raise self.fail(f"unit '{p.unit}' is not 'epochs' or 'steps'")
        if p.frequency is not None:
            if isinstance(p.frequency, bool) or not isinstance(p.frequency, int):
                raise self.fail(f"frequency must be a whole number of steps, got {p.frequency!r}")
            in_range(self, "frequency", p.frequency, 1, 1e9)
        if p.m_by_n is not None:
            m, _, n = str(p.m_by_n).partition(":")
            if not (m.isdigit() and n.isdigit() and 0 < int(m) < int(n)):
                raise self.fail(f"m_by_n '{p.m_by_n}' is not like '2:4'")
        if p.epochs is not None:
            in_range(self, "epochs", p.epochs, 1, 1e6)

    def check_order(self, before: list[str]) -> None:
        super().check_order(before)
        if "cluster" in before:
            raise self.fail("pruning after clustering would break the clusters; put 'prune' before 'cluster'")

    def _steps(self, value: float, steps_per_epoch: int) -> int:
        return int(round(value * steps_per_epoch)) if self.params.unit == "epochs" else int(value)

    def _reached(self, begin: int, end: int, total: int, frequency: int) -> tuple[int | None, float]:
        """The last step at which TFMOT updates the masks and the sparsity it sets there.

        TFMOT updates at steps ``s`` with ``begin <= s <= end`` (constant: no end) and
        ``(s - begin) % frequency == 0``; training runs steps ``0 .. total - 1``.
        """
        p = self.params
        last = total - 1 if p.schedule == "constant" else min(end, total - 1)
        if last < begin:
            return None, 0.0
        step = begin + (last - begin) // frequency * frequency
        if p.schedule == "constant":
            return step, p.sparsity
        progress = min(1.0, max(0.0, (step - begin) / (end - begin)))
        return step, p.sparsity + (p.initial_sparsity - p.sparsity) * (1 - progress) ** p.power

    def schedule_steps(self, steps_per_epoch: int, epochs: int) -> dict:
        """begin, end, total and frequency in steps, checked so that the masks really reach the target.

        Raises:
            ConfigError: a schedule whose masks would never update, or would stop short of 90 % of
                the target sparsity, before any training (naming the numbers and the fix).
        """
        p = self.params
        total = epochs * steps_per_epoch
        begin = self._steps(p.begin, steps_per_epoch)
        end = self._steps(p.end, steps_per_epoch) if p.end is not None else max(begin + 1, (2 * total) // 3)
        if total < 1:
            raise self.fail("the fine-tuning has no steps; give more training samples or epochs")
        if p.schedule == "polynomial" and end <= begin:
            raise self.fail(f"the schedule ends (step {end}) before it begins (step {begin}); set end after begin")
        frequency = p.frequency
        if frequency is None:  # TFMOT's 10, unless the schedule is too short for it to reach the target
            span = (min(end, total - 1) if p.schedule == "polynomial" else total - 1) - begin
            frequency = next((f for f in range(10, 0, -1) if span // f >= min(4, span)
                              and self._reached(begin, end, total, f)[1] >= 0.99 * p.sparsity), 1)
        step, reached = self._reached(begin, end, total, frequency)
        if p.m_by_n is None and (step is None or reached < 0.9 * p.sparsity):
            fits = [f for f in range(frequency, 0, -1) if self._reached(begin, end, total, f)[1] >= 0.9 * p.sparsity]
            what = (f"the pruning begins at step {begin} but the fine-tuning has only {total} steps "
                    f"({epochs} epoch(s) x {steps_per_epoch})" if step is None else
                    f"the masks update every {frequency} steps from step {begin}, the schedule ends at step {end} and "
                    f"the fine-tuning has {total} steps ({epochs} epoch(s) x {steps_per_epoch}), so the last update "
                    f"(step {step}) sets {100 * reached:.0f} % sparsity, not the {100 * p.sparsity:.0f} % asked for")
            fix = (f"set frequency={fits[0]}" if fits and step is not None else "set begin earlier") + \
                ", or train longer (epochs, or more samples)"
            raise self.fail(f"{what}; {fix}")
        return {"begin": begin, "end": end, "total": total, "frequency": frequency}

    def check_result(self, model) -> None:
        """The pruned kernels must hold at least 90 % of the target sparsity."""
        pruned = [v for layer, v in kernels(model) if layer in self.extra.get("pruned_layers", ())]
        size = sum(v.size for v in pruned)
        got = 1 - sum(np.count_nonzero(v) for v in pruned) / size if size else 0.0
        target = self.params.sparsity
        if self.params.m_by_n:
            m, _, n = str(self.params.m_by_n).partition(":")
            target = 1 - int(m) / int(n)
        self.extra["kernel_sparsity_reached"] = got
        if got < 0.9 * target:
            raise self.fail(f"pruning reached {100 * got:.1f} % sparsity in the pruned kernels, less than 90 % of "
                            f"the {100 * target:.0f} % asked for; train longer or lower frequency")

    def run(self, model, ctx):
        p = self.params
        mot = frameworks.tfmot()
        k = frameworks.tf_keras()
        sparsity = mot.sparsity.keras
        epochs = self.epochs(ctx)
        sched = self.schedule_steps(ctx.steps_per_epoch, epochs)
        begin, end = sched["begin"], sched["end"]
        if p.schedule == "polynomial":
            schedule = sparsity.PolynomialDecay(p.initial_sparsity, p.sparsity, begin, end,
                                                power=p.power, frequency=sched["frequency"])
        else:
            schedule = sparsity.ConstantSparsity(p.sparsity, begin, frequency=sched["frequency"])
        kwargs = {"pruning_schedule": schedule}
        if p.m_by_n:
            m, _, n = str(p.m_by_n).partition(":")
            kwargs = {"sparsity_m_by_n": (int(m), int(n))}
        pruned_layers = []

        def wrap(layer):
            has_kernel = hasattr(layer, "kernel") or hasattr(layer, "depthwise_kernel")
            if not (has_kernel and selects(layer.name, p.include, p.exclude)):
                return layer
            if p.m_by_n and not isinstance(layer, (k.layers.Conv2D, k.layers.Dense)):
                _log.info("prune: %s left dense (m_by_n applies to Conv2D and Dense only)", layer.name)
                return layer
            pruned_layers.append(layer.name)
            return sparsity.prune_low_magnitude(layer, **kwargs)

        wrapped = self.rewrap(model, ctx, wrap)
        if not pruned_layers:
            raise self.fail("no layer matches include/exclude; check the layer name patterns")
        logs = fit(wrapped, ctx, self.name, epochs, callbacks=[sparsity.UpdatePruningStep()])
        self.extra = {"pruned_layers": pruned_layers, "schedule_steps": sched, "train_logs": logs}
        return sparsity.strip_pruning(wrapped)
