"""``lowrank``: replace Dense and 1x1 Conv2D layers by two thinner ones from a truncated SVD.

A kernel W (in x out) becomes A (in x r) then B (r x out) with
A = U_r sqrt(S_r) and B = sqrt(S_r) V_r^T, so A B is the best rank-r
approximation of W. The first layer is linear without bias (and carries the
stride of a 1x1 convolution); the second keeps the original name, bias and
activation. The rank comes from ``ratio`` (of the largest possible rank) or
from ``energy`` (the fraction of the sum of squared singular values kept). A
layer is left alone when r (in + out) >= in x out, since factorizing would
not save parameters. Then the model is fine-tuned like after ``channels``.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np

from edgec import frameworks
from edgec.compress import register
from edgec.compress.base import StructuralStage, in_range, selects
from edgec.compress.graph import as_functional, from_config

DEFAULT_ENERGY = 0.9


@register
class LowRank(StructuralStage):
    name = "lowrank"
    summary = "truncated-SVD factorization of Dense and 1x1 Conv2D layers (rank by ratio or energy kept)"

    @dataclasses.dataclass(frozen=True)
    class Params:
        energy: float | None = None     # keep this fraction of the singular value energy (default 0.9)
        ratio: float | None = None      # or: rank = ratio x min(in, out)
        multiple_of: int = 1            # round ranks up to a multiple of this
        include: list | str = "*"       # layer name patterns to factorize
        exclude: tuple[str, ...] | list[str] | str = ()
        epochs: int | None = None       # fine-tuning epochs; default: [training] epochs; 0: none
        learning_rate: float | None = None

    def check_params(self) -> None:
        p = self.params
        if p.energy is not None and p.ratio is not None:
            raise self.fail("give either energy or ratio, not both")
        if p.energy is not None:
            in_range(self, "energy", p.energy, 0, 1, lo_open=True)
        if p.ratio is not None:
            in_range(self, "ratio", p.ratio, 0, 1, lo_open=True)
        in_range(self, "multiple_of", p.multiple_of, 1, 1024)
        if p.epochs is not None:
            in_range(self, "epochs", p.epochs, 0, 1e6)

    def rank(self, s: np.ndarray) -> tuple[int, float]:
        """The rank for singular values ``s`` (descending) and the energy it keeps."""
        p = self.params
        energy = np.cumsum(s**2) / max(float(np.sum(s**2)), 1e-30)
        if p.ratio is not None:
            r = max(1, math.ceil(p.ratio * len(s)))
        else:
            target = p.energy if p.energy is not None else DEFAULT_ENERGY
            r = int(np.searchsorted(energy, target - 1e-12) + 1)
        r = min(len(s), math.ceil(r / p.multiple_of) * p.multiple_of)
        return r, float(energy[r - 1])

    def _candidate(self, layer, k) -> str | None:
        """Why ``layer`` cannot be factorized, or None when it can."""
        cfg = layer.get_config()
        if type(layer) is k.layers.Dense:
            return None
        if type(layer) is k.layers.Conv2D:
            if tuple(cfg["kernel_size"]) != (1, 1):
                return f"kernel {tuple(cfg['kernel_size'])} is not 1x1"
            if cfg.get("groups", 1) != 1 or cfg.get("data_format") != "channels_last":
                return "grouped or channels-first convolution"
            return None
        return "not Dense or 1x1 Conv2D"

    def factorize(self, model, scope=None):
        """The factorized model (no training) and the per-layer report."""
        k = frameworks.tf_keras()
        model = as_functional(model)
        config = model.get_config()
        names = {layer.name for layer in model.layers}
        factors, rows, skipped = {}, [], {}
        for layer in model.layers:
            if not selects(layer.name, self.params.include, self.params.exclude) or not hasattr(layer, "kernel"):
                continue
            why = self._candidate(layer, k)
            if why is None and len(layer.inbound_nodes) != 1:
                why = "called more than once"
            if why is not None:
                if type(layer) in (k.layers.Dense, k.layers.Conv2D):
                    skipped[layer.name] = why
                continue
            kernel = layer.kernel.numpy()
            w = kernel.reshape(-1, kernel.shape[-1])
            n_in, n_out = w.shape
            u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
            r, kept = self.rank(s)
            if r * (n_in + n_out) >= n_in * n_out:
                skipped[layer.name] = (f"rank {r} of {len(s)} keeps {r * (n_in + n_out)} weights, "
                                       f"not fewer than {n_in * n_out}")
                continue
            root = np.sqrt(s[:r])
            first = f"{layer.name}_lowrank"
            while first in names:
                first += "_"
            names.add(first)
            factors[layer.name] = (first, (u[:, :r] * root).astype(np.float32).reshape(*kernel.shape[:-1], r),
                                   (root[:, None] * vt[:r]).astype(np.float32).reshape(*kernel.shape[:-2], r, n_out))
            rows.append({"layer": layer.name, "shape": [n_in, n_out], "rank": r, "max_rank": len(s),
                         "energy_kept": round(kept, 4), "kernel_weights_before": n_in * n_out,
                         "kernel_weights_after": r * (n_in + n_out)})
        if not factors:
            why = "; ".join(f"{k_}: {v}" for k_, v in skipped.items()) or "the model has no Dense or 1x1 Conv2D layer"
            raise self.fail(f"no layer would get smaller ({why})")
        layers = []
        for entry in config["layers"]:
            if entry["name"] in factors:
                first = copy.deepcopy(entry)
                first["name"] = first["config"]["name"] = factors[entry["name"]][0]
                first["config"].update({"activation": "linear", "use_bias": False, "activity_regularizer": None,
                                        "kernel_regularizer": None, "bias_regularizer": None})
                first["config"]["filters" if "filters" in first["config"] else "units"] = \
                    factors[entry["name"]][1].shape[-1]
                if "strides" in entry["config"]:
                    entry["config"]["strides"] = [1] * len(entry["config"]["strides"])
                entry["inbound_nodes"] = [[[first["name"], 0, 0, {}]]]
                layers.append(first)
            layers.append(entry)
        config["layers"] = layers
        weights = {layer.name: layer.get_weights() for layer in model.layers}
        for name, (first, a, b) in factors.items():
            weights[first] = [a]
            weights[name] = [b, *weights[name][1:]]
        new = from_config(model, config, weights, scope)
        return new, {"factorized": rows, "left_unfactorized": skipped}

    def smaller_model(self, model, ctx):
        return self.factorize(model, scope=ctx.scope())
