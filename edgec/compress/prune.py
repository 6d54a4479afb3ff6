"""``prune``: TFMOT magnitude pruning with a schedule, then fine-tuning, then stripping.

Zeros do not shrink the ``.tflite`` (the converter stores dense tensors); they
shrink what a compressed firmware image or OTA update carries, which is why
the report measures gzip sizes. Follow with ``qat`` (prune-preserving) to keep
the zeros through quantization-aware training.
"""

from __future__ import annotations

import dataclasses
import logging

from edgec import _tf
from edgec.compress import register
from edgec.compress.base import Stage, in_range, selects
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
        frequency: int = 10             # steps between mask updates
        power: float = 3.0              # polynomial decay exponent
        epochs: int | None = None       # default: [training] epochs
        include: list | str = "*"      # layer name patterns to prune
        exclude: list | str = ()        # layer name patterns to leave dense
        m_by_n: str | None = None       # "2:4": structured N:M sparsity instead of the schedule

    def check_params(self) -> None:
        p = self.params
        in_range(self, "sparsity", p.sparsity, 0, 1, hi_open=True)
        in_range(self, "initial_sparsity", p.initial_sparsity, 0, p.sparsity)
        if p.schedule not in ("polynomial", "constant"):
            raise self.fail(f"schedule '{p.schedule}' is not 'polynomial' or 'constant'")
        if p.unit not in ("epochs", "steps"):
            raise self.fail(f"unit '{p.unit}' is not 'epochs' or 'steps'")
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

    def run(self, model, ctx):
        p = self.params
        mot = _tf.tfmot()
        k = _tf.tf_keras()
        sparsity = mot.sparsity.keras
        epochs = self.epochs(ctx)
        steps_per_epoch = ctx.steps_per_epoch
        total = epochs * steps_per_epoch
        begin = self._steps(p.begin, steps_per_epoch)
        end = self._steps(p.end, steps_per_epoch) if p.end is not None else max(begin + 1, (2 * total) // 3)
        if p.schedule == "polynomial":
            schedule = sparsity.PolynomialDecay(p.initial_sparsity, p.sparsity, begin, end,
                                                power=p.power, frequency=p.frequency)
        else:
            schedule = sparsity.ConstantSparsity(p.sparsity, begin, frequency=p.frequency)
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
        self.extra = {"pruned_layers": pruned_layers, "schedule_steps": {"begin": begin, "end": end, "total": total},
                      "train_logs": logs}
        return sparsity.strip_pruning(wrapped)
