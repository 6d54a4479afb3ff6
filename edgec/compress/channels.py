"""``channels``: structured filter pruning that removes whole channels and rebuilds a thinner model.

Unlike ``prune`` (zeros inside dense tensors), this shrinks the int8 file, the
TFLite-Micro arena and the MACs. Channels are ranked by the L1 or L2 norm of
their producers' filters, by the BatchNorm scale (network slimming), or by
their effect on the loss (``taylor``, ``hessian``: :mod:`edgec.compress.importance`,
on the labels, or the model's own outputs without them); a
residual group (channels tied by Add) is ranked by the sum of its producers'
normalized scores and pruned as one. :mod:`edgec.compress.graph` follows the
dependencies; layers it cannot follow keep their channels and are listed.
The thinner model is fine-tuned on the labels, or without labels on the
outputs of the model before pruning (self-distillation).
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np

from edgec.compress import register
from edgec.compress.base import StructuralStage, in_range, selects
from edgec.compress.graph import ChannelGraph
from edgec.compress.importance import ESTIMATORS

_log = logging.getLogger(__name__)
CRITERIA = ("l1", "l2", "bn", "taylor", "hessian")
BY_LOSS = ("taylor", "hessian")  # criteria that need data


@register
class Channels(StructuralStage):
    name = "channels"
    summary = "structured channel pruning (L1/L2/BatchNorm scale, per layer or global) that rebuilds a thinner model"

    @dataclasses.dataclass(frozen=True)
    class Params:
        fraction: float = 0.5           # fraction of the channels to remove
        criterion: str = "l1"           # "l1", "l2" (filter norms), "bn" (BatchNorm |gamma|), "taylor", "hessian"
        estimator: str = "fisher"       # hessian: "fisher" or "hutchinson" (edgec.compress.importance)
        scope: str = "layer"            # "layer": the fraction from every group; "global": across all groups
        multiple_of: int = 1            # keep channel counts a multiple of this (4 suits CMSIS-NN)
        include: list | str = "*"       # producer layer name patterns to prune
        exclude: tuple[str, ...] | list[str] | str = ()
        epochs: int | None = None       # fine-tuning epochs; default: [training] epochs; 0: none
        learning_rate: float | None = None
        max_fraction: float = 0.9       # --fit: the most aggressive fraction it tries

    def check_params(self) -> None:
        p = self.params
        in_range(self, "fraction", p.fraction, 0, 1, hi_open=True)
        in_range(self, "max_fraction", p.max_fraction, 0, 1, lo_open=True, hi_open=True)
        if p.criterion not in CRITERIA:
            raise self.fail(f"criterion '{p.criterion}' is not one of {', '.join(CRITERIA)}")
        if p.estimator not in ESTIMATORS:
            raise self.fail(f"estimator '{p.estimator}' is not one of {', '.join(ESTIMATORS)}")
        if p.scope not in ("layer", "global"):
            raise self.fail(f"scope '{p.scope}' is not 'layer' or 'global'")
        in_range(self, "multiple_of", p.multiple_of, 1, 1024)
        if p.epochs is not None:
            in_range(self, "epochs", p.epochs, 0, 1e6)

    def shrink(self, model, fraction: float, scope=None, ctx=None):
        """The thinner model for ``fraction`` (no training), and the per-layer report. ``ctx`` (its data)
        is needed by the ``taylor`` and ``hessian`` criteria."""
        graph = ChannelGraph(model)
        left = graph.frozen_producers()
        chosen = []
        for r in graph.prunable():
            producers = graph.spaces[r].producers
            if all(selects(p, self.params.include, self.params.exclude) for p in producers):
                chosen.append(r)
            else:
                left.update({p: "excluded by the stage's include/exclude" for p in producers})
        if not chosen:
            why = "; ".join(f"{k}: {v}" for k, v in left.items()) or "the model has no Conv or Dense layer"
            raise self.fail(f"no layer's channels can be removed ({why})")
        extra = {}
        if self.params.criterion in BY_LOSS:
            scores, source = self._by_loss(model, graph, chosen, ctx)
            extra = {"importance": {"criterion": self.params.criterion, "loss_on": source,
                                    **({"estimator": self.params.estimator} if self.params.criterion == "hessian"
                                       else {})}}
        else:
            scores = {r: self._scores(graph, r) for r in chosen}
        keep = self._select(graph, scores, fraction)
        rows = [{"layers": graph.spaces[r].producers, "before": graph.spaces[r].size, "after": int(len(keep[r]))}
                for r in chosen]
        thin = graph.rebuild(keep, scope=scope)
        return thin, {"channels": rows, "left_unpruned": left, **extra}

    def _by_loss(self, model, graph: ChannelGraph, chosen: list, ctx) -> tuple[dict, str]:
        """Taylor or Hessian scores per channel of each chosen group, computed once per model (``--fit``
        shrinks the same model many times)."""
        from edgec.compress import importance

        cached = getattr(self, "_importance", None)
        if cached is not None and cached[0] is model:
            return cached[1], cached[2]
        if ctx is None:
            raise self.fail(f"criterion={self.params.criterion} needs the training data")
        layers = {layer.name: layer for layer in model.layers}
        groups = {}
        for r in chosen:
            space = graph.spaces[r]
            parts = [(v, 0) for b in space.scales for v in (layers[b].gamma, layers[b].beta) if v is not None]
            if not parts:  # no BatchNorm on these channels: the producers' filters and biases
                for name in space.producers:
                    layer = layers[name]
                    kernel = layer.pointwise_kernel if hasattr(layer, "pointwise_kernel") else layer.kernel
                    parts.append((kernel, len(kernel.shape) - 1))
                    if getattr(layer, "bias", None) is not None:
                        parts.append((layer.bias, 0))
            groups[r] = parts
        if self.params.criterion == "taylor":
            scores, source = importance.channel_taylor(model, ctx, groups)
        else:
            scores, source = importance.channel_hessian(model, ctx, groups, estimator=self.params.estimator)
        self._importance = (model, scores, source)
        return scores, source

    def _scores(self, graph: ChannelGraph, r: int) -> np.ndarray:
        space = graph.spaces[r]
        layers = {layer.name: layer for layer in graph.model.layers}
        parts = []
        if self.params.criterion == "bn":
            parts = [np.abs(layers[b].gamma.numpy()) for b in space.scales if layers[b].gamma is not None]
        if not parts:  # "l1"/"l2", and "bn" for a group without a BatchNorm scale
            order = 2 if self.params.criterion == "l2" else 1
            for name in space.producers:
                layer = layers[name]
                kernel = (layer.pointwise_kernel if hasattr(layer, "pointwise_kernel") else layer.kernel).numpy()
                flat = kernel.reshape(-1, kernel.shape[-1])
                parts.append(np.linalg.norm(flat, ord=order, axis=0))
        # each layer's scores relative to its own mean, so that tied layers weigh equally
        return sum(p / (p.mean() if p.mean() > 0 else 1.0) for p in parts)

    def _select(self, graph: ChannelGraph, scores: dict, fraction: float) -> dict:
        m = self.params.multiple_of
        sizes = {r: graph.spaces[r].size for r in scores}
        if self.params.scope == "layer":
            counts = {r: n - int(round(fraction * n)) for r, n in sizes.items()}
        else:
            everything = sorted((s / (scores[r].mean() or 1.0), r, i) for r in scores for i, s in enumerate(scores[r]))
            removed = everything[: int(round(fraction * len(everything)))]
            counts = {r: n - sum(1 for _, rr, _ in removed if rr == r) for r, n in sizes.items()}
        keep = {}
        for r, n in sizes.items():
            count = min(n, max(m, math.ceil(max(counts[r], 1) / m) * m))
            best = np.argsort(-scores[r], kind="stable")[:count]
            keep[r] = np.sort(best)
        return keep

    def smaller_model(self, model, ctx):
        thin, report = self.shrink(model, self.params.fraction, scope=ctx.scope(), ctx=ctx)
        for row in report["channels"]:
            _log.info("channels: %s %d -> %d", ",".join(row["layers"]), row["before"], row["after"])
        return thin, report

    def run(self, model, ctx):
        if self.params.fraction == 0:
            self.extra = {"channels": [], "note": "fraction 0: nothing removed"}
            return model
        return super().run(model, ctx)
