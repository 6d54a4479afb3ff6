"""``prune``: TFMOT magnitude pruning with a schedule, then fine-tuning, then stripping.

With ``criterion = "taylor"`` or ``"hessian"`` the weights are ranked by their
effect on the loss instead (:mod:`edgec.compress.importance`: |w x grad|, or
the saliency 1/2 h w^2), which TFMOT's wrappers cannot do: edgec keeps its own
masks on the plain model, updated on TFMOT's schedule (the same begin, end,
frequency, polynomial or constant sparsity), and re-applied after every
optimizer step so that a pruned weight stays zero.

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
from edgec.compress.importance import ESTIMATORS
from edgec.compress.metrics import kernels, mac_kernel
from edgec.compress.training import fit

_log = logging.getLogger(__name__)
CRITERIA = ("magnitude", "taylor", "hessian")
IMPORTANCE_BATCHES = 2  # batches each mask update ranks the weights on
IMPORTANCE_PROBES = 16  # hessian: Rademacher vectors a batch (one weight's estimate is noisier than a channel's)


@register
class Prune(Stage):
    name = "prune"
    summary = ("unstructured pruning on a polynomial or constant schedule: TFMOT by magnitude (optional 2:4), or "
               "by the loss (criterion=taylor|hessian), fine-tuned")

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
        criterion: str = "magnitude"    # "magnitude" (TFMOT), "taylor" or "hessian" (edgec's masks)
        estimator: str = "fisher"       # hessian: "fisher" or "hutchinson" (edgec.compress.importance)

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
        if p.criterion not in CRITERIA:
            raise self.fail(f"criterion '{p.criterion}' is not one of {', '.join(CRITERIA)}")
        if p.estimator not in ESTIMATORS:
            raise self.fail(f"estimator '{p.estimator}' is not one of {', '.join(ESTIMATORS)}")
        if p.criterion != "magnitude" and p.m_by_n:
            raise self.fail("m_by_n is TFMOT's, by magnitude only; drop m_by_n or criterion")

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

    def sparsity_at(self, step: int, sched: dict) -> float | None:
        """The sparsity the masks take at ``step``, or None where the schedule does not update them (TFMOT's
        rule: from ``begin`` every ``frequency`` steps, until ``end`` for the polynomial schedule)."""
        p = self.params
        begin, end, frequency = sched["begin"], sched["end"], sched["frequency"]
        if step < begin or (step - begin) % frequency or (p.schedule == "polynomial" and step > end):
            return None
        if p.schedule == "constant":
            return p.sparsity
        progress = min(1.0, (step - begin) / (end - begin))
        return p.sparsity + (p.initial_sparsity - p.sparsity) * (1 - progress) ** p.power

    def run(self, model, ctx):
        if self.params.criterion != "magnitude":
            return self._run_by_loss(model, ctx)
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

    def _run_by_loss(self, model, ctx):
        from edgec.compress.training import compile_for_training, in_strategy

        p = self.params
        k = frameworks.tf_keras()
        epochs = self.epochs(ctx)
        sched = self.schedule_steps(ctx.steps_per_epoch, epochs)
        model = in_strategy(model, ctx)
        layers = [layer for layer in model.layers if mac_kernel(layer, k) is not None
                  and selects(layer.name, p.include, p.exclude)]
        if not layers:
            raise self.fail("no layer matches include/exclude; check the layer name patterns")
        with ctx.scope():
            compile_for_training(model, ctx, self.name)
        masks = _loss_masks(k, self, model, ctx, [mac_kernel(layer, k) for layer in layers], sched)
        logs = fit(model, ctx, self.name, epochs, callbacks=[masks])
        self.extra = {"pruned_layers": [layer.name for layer in layers], "schedule_steps": sched,
                      "criterion": p.criterion, "ranked_on": masks.ranked_on, "mask_updates": masks.updates,
                      "train_logs": logs}
        return model


def _loss_masks(k, stage: Prune, model, ctx, variables: list, sched: dict):
    """A Keras callback keeping a 0/1 mask per kernel: at the schedule's update steps the weights are ranked
    by the loss (taylor or hessian, on a few training batches) and the least important, up to the sparsity of
    that step, are masked (once masked, always masked); after every batch the masks are applied again."""
    from edgec.compress.importance import parameter_scores

    class Callback(k.callbacks.Callback):  # type: ignore[name-defined]  # tf_keras, imported at run time
        def __init__(self):
            super().__init__()
            self.masks = [np.ones(v.shape, np.float32) for v in variables]
            self.step = 0
            self.updates = 0
            self.ranked_on = ""

        def on_train_batch_begin(self, batch, logs=None):
            target = stage.sparsity_at(self.step, sched)
            if target is not None and target > 0:
                scores, self.ranked_on = parameter_scores(model, ctx, variables, stage.params.criterion,
                                                          IMPORTANCE_BATCHES, IMPORTANCE_PROBES, stage.params.estimator)
                for i, (v, score) in enumerate(zip(variables, scores)):
                    score = np.where(self.masks[i] > 0, score, -np.inf)  # pruned weights stay pruned
                    cut = int(round(target * score.size))
                    mask = np.ones(score.size, np.float32)
                    mask[np.argsort(score.reshape(-1), kind="stable")[:cut]] = 0
                    self.masks[i] = mask.reshape(score.shape)
                self.updates += 1
                self._apply()

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            self._apply()

        def _apply(self):
            for v, mask in zip(variables, self.masks):
                v.assign(v.numpy() * mask)

    return Callback()
