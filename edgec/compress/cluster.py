"""``cluster``: TFMOT weight clustering (weight sharing), fine-tuned and stripped.

Each clustered kernel keeps at most ``clusters`` distinct values; after a
``prune`` stage the zeros are preserved (``preserve_sparsity``). Like pruning,
clustering does not shrink the ``.tflite`` itself but makes it compress well.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgec import frameworks
from edgec.compress import register
from edgec.compress.base import Stage, in_range, selects
from edgec.compress.metrics import kernels
from edgec.compress.training import fit

_INITS = ("kmeans_plus_plus", "linear", "density_based", "random")


@register
class Cluster(Stage):
    name = "cluster"
    summary = "TFMOT weight clustering (k clusters per kernel), sparsity-preserving after prune"

    @dataclasses.dataclass(frozen=True)
    class Params:
        clusters: int = 16
        init: str = "kmeans_plus_plus"   # centroid initialisation: kmeans_plus_plus, linear, density_based, random
        epochs: int | None = None
        learning_rate: float | None = None  # default: [training] learning_rate / 10 (fine-tuning centroids)
        include: list | str = "*"
        exclude: tuple[str, ...] | list[str] | str = ()
        preserve_sparsity: bool | None = None  # default: true when a prune stage ran before

    def check_params(self) -> None:
        p = self.params
        in_range(self, "clusters", p.clusters, 2, 256)
        if not isinstance(p.clusters, int):
            raise self.fail(f"clusters must be a whole number, got {p.clusters!r}")
        if p.init not in _INITS:
            raise self.fail(f"init '{p.init}' is not one of {', '.join(_INITS)}")
        if p.epochs is not None:
            in_range(self, "epochs", p.epochs, 0, 1e6)
        if p.learning_rate is not None:
            in_range(self, "learning_rate", p.learning_rate, 0, 10, lo_open=True)

    def check_result(self, model) -> None:
        """Each clustered kernel must hold at most ``clusters`` distinct values."""
        over = [(layer, n) for layer, v in kernels(model) if layer in self.extra.get("clustered_layers", ())
                # a zero kept by sparsity-preserving clustering is one value more than the clusters
                and (n := int(np.unique(v).size)) > self.params.clusters + int(bool(np.any(v == 0)))]
        if over:
            layer, n = over[0]
            raise self.fail(f"layer '{layer}' holds {n} distinct weight values after clustering, more than the "
                            f"{self.params.clusters} clusters asked for; this is a bug in edgec or TFMOT, please "
                            "report it")

    def run(self, model, ctx):
        p = self.params
        mot = frameworks.tfmot()
        k = frameworks.tf_keras()
        clustering = mot.clustering.keras
        init = getattr(clustering.CentroidInitialization, p.init.upper())
        preserve = p.preserve_sparsity if p.preserve_sparsity is not None else "prune" in ctx.done
        clustered = []

        def wrap(layer):
            # TFMOT clusters Conv and Dense kernels; it leaves depthwise kernels alone by design.
            has_kernel = hasattr(layer, "kernel") and not isinstance(layer, k.layers.DepthwiseConv2D)
            if has_kernel and selects(layer.name, p.include, p.exclude):
                clustered.append(layer.name)
                return clustering.cluster_weights(layer, number_of_clusters=p.clusters,
                                                  cluster_centroids_init=init, preserve_sparsity=preserve)
            return layer

        wrapped = self.rewrap(model, ctx, wrap, learning_rate=p.learning_rate or ctx.training.learning_rate / 10)
        if not clustered:
            raise self.fail("no layer matches include/exclude; check the layer name patterns")
        logs = fit(wrapped, ctx, self.name, self.epochs(ctx))
        self.extra = {"clustered_layers": clustered, "preserve_sparsity": preserve, "train_logs": logs}
        return clustering.strip_clustering(wrapped)
