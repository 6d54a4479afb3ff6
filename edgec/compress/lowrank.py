"""``lowrank``: replace layers by thinner ones from a low-rank factorization of their kernels.

Dense and 1x1 Conv2D layers (every ``method``): a kernel W (in x out) becomes
A (in x r) then B (r x out) with A = U_r sqrt(S_r) and B = sqrt(S_r) V_r^T, so
A B is the best rank-r approximation of W (truncated SVD). The first layer is
linear without bias (and carries the stride of a 1x1 convolution); the second
keeps the original name, bias and activation.

kxk Conv2D layers, with ``method = "tucker"`` or ``"cp"``
(:mod:`edgec.compress.decompose`):

- tucker: a 1x1 convolution in -> r1, the kxk convolution r1 -> r2 (stride,
  padding and dilation kept), a 1x1 r2 -> out (Tucker-2 by HOSVD and HOOI);
- cp: a 1x1 in -> R, a depthwise kh x 1, a depthwise 1 x kw, a 1x1 R -> out
  (CP by alternating least squares), each factor's columns scaled to equal
  norms so that int8 quantizes them alike.

With ``method = "svd"`` (the default) kxk convolutions are left alone.
The ranks come from ``ratio`` (of each mode's size; R of the output channels for CP),
from ``energy`` (the fraction of the squared singular values kept, of each
channel unfolding for Tucker), or from ``macs``: the fraction of the MACs of
the layers the stage may factorize to keep, for which one ratio is searched
(by bisection on the ranks' MACs; no decomposition is computed until it is
found). A layer is left alone, and the report says why, when the
factorization would not lower its MACs (kxk) or its weights (Dense, 1x1).
Then the model is fine-tuned like after ``channels``.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np

from edgec import frameworks
from edgec.compress import register
from edgec.compress.base import StructuralStage, in_range, selects
from edgec.compress.decompose import channel_spectra, cp, tucker2
from edgec.compress.graph import as_functional, from_config

DEFAULT_ENERGY = 0.9
METHODS = ("svd", "tucker", "cp")


@register
class LowRank(StructuralStage):
    name = "lowrank"
    summary = ("low-rank factorization: truncated SVD of Dense and 1x1 Conv2D, Tucker-2 or CP of kxk Conv2D "
               "(method=tucker|cp); ranks by ratio, energy kept or a MAC budget (macs)")

    @dataclasses.dataclass(frozen=True)
    class Params:
        energy: float | None = None     # keep this fraction of the singular value energy (default 0.9)
        ratio: float | None = None      # or: rank = ratio x min(in, out)
        macs: float | None = None       # or: the fraction of the MACs of the layers it may factorize to keep
        #                                 (one ratio for all of them, searched)
        multiple_of: int = 1            # round ranks up to a multiple of this
        method: str = "svd"             # kxk Conv2D: "tucker" or "cp" factorizes them; "svd" leaves them
        include: list | str = "*"       # layer name patterns to factorize
        exclude: tuple[str, ...] | list[str] | str = ()
        epochs: int | None = None       # fine-tuning epochs; default: [training] epochs; 0: none
        learning_rate: float | None = None

    def check_params(self) -> None:
        p = self.params
        if sum(x is not None for x in (p.energy, p.ratio, p.macs)) > 1:
            raise self.fail("give one of energy, ratio and macs, not several")
        if p.macs is not None:
            in_range(self, "macs", p.macs, 0, 1, lo_open=True, hi_open=True)
        if p.energy is not None:
            in_range(self, "energy", p.energy, 0, 1, lo_open=True)
        if p.ratio is not None:
            in_range(self, "ratio", p.ratio, 0, 1, lo_open=True)
        in_range(self, "multiple_of", p.multiple_of, 1, 1024)
        if p.method not in METHODS:
            raise self.fail(f"method must be one of {', '.join(METHODS)}, got {p.method!r}")
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
            if cfg.get("groups", 1) != 1 or cfg.get("data_format") != "channels_last":
                return "grouped or channels-first convolution"
            if tuple(cfg["kernel_size"]) != (1, 1) and self.params.method == "svd":
                return f"kernel {tuple(cfg['kernel_size'])} is not 1x1 (method=tucker or cp factorizes it)"
            return None
        return "not Dense or Conv2D"

    def _svd(self, layer, kernel: np.ndarray) -> tuple[list, dict] | str:
        """A Dense or 1x1 kernel as two: ([(role, kernel)], report row), or why not."""
        w = kernel.reshape(-1, kernel.shape[-1])
        n_in, n_out = w.shape
        u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
        r, kept = self.rank(s)
        if r * (n_in + n_out) >= n_in * n_out:
            return f"rank {r} of {len(s)} keeps {r * (n_in + n_out)} weights, not fewer than {n_in * n_out}"
        root = np.sqrt(s[:r])
        parts = [("lowrank", (u[:, :r] * root).reshape(*kernel.shape[:-1], r)),
                 ("", (root[:, None] * vt[:r]).reshape(*kernel.shape[:-2], r, n_out))]
        px = _pixels(layer.output.shape)
        return parts, {"method": "svd", "shape": [n_in, n_out], "rank": r, "max_rank": len(s),
                       "energy_kept": round(kept, 4), "kernel_weights_before": n_in * n_out,
                       "kernel_weights_after": r * (n_in + n_out), "macs_before": px * n_in * n_out,
                       "macs_after": px * r * (n_in + n_out)}

    def _ranks(self, spectrum: np.ndarray, size: int) -> int:
        return min(size, self.rank(spectrum)[0]) if self.params.ratio is None else \
            min(size, math.ceil(math.ceil(self.params.ratio * size) / self.params.multiple_of)
                * self.params.multiple_of)

    def _plan(self, layer, kernel: np.ndarray, spectra: tuple) -> tuple[list[int], int, int]:
        """A kernel's ranks and its MACs before and after factorizing (no decomposition computed), given its
        ``spectra`` (:func:`_spectra`)."""
        out_px = _pixels(layer.output.shape)
        if _square(kernel):
            n_in, n_out = int(np.prod(kernel.shape[:-1])), kernel.shape[-1]
            r = self.rank(spectra[0])[0]
            return [r], out_px * n_in * n_out, out_px * r * (n_in + n_out)
        kh, kw, n_in, n_out = kernel.shape
        sh, sw = layer.strides
        in_px = _pixels(layer.input.shape, out_px * sh * sw)
        before = out_px * kh * kw * n_in * n_out
        s_in, s_out = spectra
        if self.params.method == "tucker":
            r1, r2 = self._ranks(s_in, n_in), self._ranks(s_out, n_out)
            return [r1, r2], before, in_px * n_in * r1 + out_px * kh * kw * r1 * r2 + out_px * r2 * n_out
        r = self._ranks(s_out, n_out)
        mid_px = out_px * sw  # after the vertical pass (its rows strided, its columns not yet)
        return [r], before, in_px * n_in * r + mid_px * kh * r + out_px * kw * r + out_px * r * n_out

    def _kxk(self, layer, kernel: np.ndarray) -> tuple[list, dict] | str:
        """A kxk kernel as Tucker-2 or CP factors: ([(role, kernel)], report row), or why not."""
        kh, kw, n_in, n_out = kernel.shape
        ranks, before, after = self._plan(layer, kernel, _spectra(kernel))
        if after >= before:
            return f"{self.params.method} ranks {ranks} take {after:,} MACs, not fewer than {before:,}"
        if self.params.method == "tucker":
            r1, r2 = ranks
            core, u, v, error = tucker2(kernel, r1, r2)
            parts = [("tucker_in", u.reshape(1, 1, n_in, r1)), ("tucker_core", core),
                     ("", v.T.reshape(1, 1, r2, n_out))]
            weights_after = n_in * r1 + kh * kw * r1 * r2 + r2 * n_out
        else:
            (r,) = ranks
            a, b, c, d, error = cp(kernel, r)
            scale = (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0) * np.linalg.norm(c, axis=0)
                     * np.linalg.norm(d, axis=0)) ** 0.25
            a, b, c, d = (f / np.maximum(np.linalg.norm(f, axis=0), 1e-30) * scale for f in (a, b, c, d))
            parts = [("cp_in", c.reshape(1, 1, n_in, r)), ("cp_vertical", a.reshape(kh, 1, r, 1)),
                     ("cp_horizontal", b.reshape(1, kw, r, 1)), ("", d.T.reshape(1, 1, r, n_out))]
            weights_after = r * (n_in + kh + kw + n_out)
        row = {"method": self.params.method, "shape": [kh, kw, n_in, n_out], "ranks": ranks,
               "relative_error": round(error, 6), "macs_before": before, "macs_after": after,
               "kernel_weights_before": kernel.size, "kernel_weights_after": weights_after}
        return parts, row

    def _with_ratio(self, ratio: float) -> "LowRank":
        stage = copy.copy(self)
        stage.params = dataclasses.replace(self.params, ratio=ratio, macs=None, energy=None)
        return stage

    def _ratio_for_macs(self, layers: list) -> tuple[float, dict]:
        """The largest ratio whose factorization keeps at most ``macs`` of the MACs of ``layers`` (those it
        may factorize), by bisection on the MACs alone (ranks, not decompositions)."""
        values = [layer.kernel.numpy() for layer in layers]
        kernels = [(layer, kernel, _spectra(kernel)) for layer, kernel in zip(layers, values)]  # once, not per step

        def kept(ratio: float) -> tuple[int, int]:
            stage = self._with_ratio(ratio)
            before = after = 0
            for layer, kernel, spectra in kernels:
                _, b, a = stage._plan(layer, kernel, spectra)
                before, after = before + b, after + min(a, b)  # a layer that would not shrink is left alone
            return after, before

        target = self.params.macs
        low_after, before = kept(1e-6)
        if low_after > target * before:
            raise self.fail(f"macs={target:g} is out of reach: the lowest ranks keep {low_after / before:.1%} of "
                            f"the {before:,} MACs of the layers it may factorize; raise macs")
        lo, hi = 1e-6, 1.0
        for _ in range(30):
            mid = (lo + hi) / 2
            if kept(mid)[0] <= target * before:
                lo = mid
            else:
                hi = mid
        after, _ = kept(lo)
        return lo, {"macs_target": target, "ratio_found": round(lo, 4), "macs_of_factorizable_layers": before,
                    "macs_kept": round(after / before, 4)}

    def factorize(self, model, scope=None):
        """The factorized model (no training) and the per-layer report."""
        k = frameworks.tf_keras()
        model = as_functional(model)
        config = model.get_config()
        names = {layer.name for layer in model.layers}
        factors, rows, skipped = {}, [], {}
        candidates = []
        for layer in model.layers:
            if not selects(layer.name, self.params.include, self.params.exclude) or not hasattr(layer, "kernel"):
                continue
            why = self._candidate(layer, k)
            if why is None and len(layer.inbound_nodes) != 1:
                why = "called more than once"
            if why is None:
                candidates.append(layer)
            elif type(layer) in (k.layers.Dense, k.layers.Conv2D):
                skipped[layer.name] = why
        stage, searched = self, {}
        if self.params.macs is not None and candidates:
            ratio, searched = self._ratio_for_macs(candidates)
            stage = self._with_ratio(ratio)
        for layer in candidates:
            kernel = layer.kernel.numpy()
            found = stage._svd(layer, kernel) if _square(kernel) else stage._kxk(layer, kernel)
            if isinstance(found, str):
                skipped[layer.name] = found
                continue
            parts, row = found
            named = []
            for role, w in parts:
                name = layer.name
                if role:
                    name = f"{layer.name}_{role}"
                    while name in names:
                        name += "_"
                    names.add(name)
                named.append((role, name, w.astype(np.float32)))
            factors[layer.name] = named
            rows.append({"layer": layer.name, **row})
        if not factors:
            why = "; ".join(f"{k_}: {v}" for k_, v in skipped.items()) or "the model has no Dense or Conv2D layer"
            raise self.fail(f"no layer would get smaller ({why})")
        layers = []
        for entry in config["layers"]:
            if entry["name"] in factors:
                inbound = entry["inbound_nodes"]
                for role, name, w in factors[entry["name"]][:-1]:
                    new = _factor_entry(k, entry, role, name, w)
                    new["inbound_nodes"] = inbound
                    inbound = [[[name, 0, 0, {}]]]
                    layers.append(new)
                last = factors[entry["name"]][-1][2]
                if last.ndim == 4:  # the output 1x1: the original's stride, padding and dilation went earlier
                    entry["config"].update(kernel_size=list(last.shape[:2]), strides=[1, 1], padding="valid",
                                           dilation_rate=[1, 1])
                entry["inbound_nodes"] = inbound
            layers.append(entry)
        config["layers"] = layers
        weights = {layer.name: layer.get_weights() for layer in model.layers}
        for name, parts in factors.items():
            for _, part, w in parts[:-1]:
                weights[part] = [w]
            weights[name] = [parts[-1][2], *weights[name][1:]]
        new = from_config(model, config, weights, scope)
        return new, {"factorized": rows, "left_unfactorized": skipped, **({"macs_search": searched} if searched
                                                                            else {})}

    def smaller_model(self, model, ctx):
        return self.factorize(model, scope=ctx.scope())


_LINEAR = {"activation": "linear", "use_bias": False, "activity_regularizer": None, "kernel_regularizer": None,
           "bias_regularizer": None}


def _factor_entry(k, entry: dict, role: str, name: str, w: np.ndarray) -> dict:
    """The config entry of one factor layer before ``entry`` (the layer factorized): linear, no bias."""
    if role in ("cp_vertical", "cp_horizontal"):  # depthwise kh x 1, then 1 x kw, each strided on its axis
        c = entry["config"]
        vertical = role == "cp_vertical"
        axis = 0 if vertical else 1
        keep = [c["strides"][axis], 1] if vertical else [1, c["strides"][axis]]
        dilation = [c["dilation_rate"][axis], 1] if vertical else [1, c["dilation_rate"][axis]]
        layer = k.layers.DepthwiseConv2D(kernel_size=tuple(w.shape[:2]), strides=tuple(keep),
                                         padding=c["padding"], dilation_rate=tuple(dilation), use_bias=False,
                                         name=name, dtype=c.get("dtype"))
        return {"class_name": "DepthwiseConv2D", "config": layer.get_config(), "name": name}
    new = copy.deepcopy(entry)
    new["name"] = new["config"]["name"] = name
    new["config"].update(_LINEAR)
    new["config"]["filters" if "filters" in new["config"] else "units"] = w.shape[-1]
    if w.ndim == 4:
        new["config"]["kernel_size"] = list(w.shape[:2])
        if role in ("tucker_in", "cp_in"):  # the input 1x1 runs at the input's resolution
            new["config"].update(strides=[1, 1], padding="valid", dilation_rate=[1, 1])
    return new


def _square(kernel: np.ndarray) -> bool:
    """A Dense or 1x1 kernel: one matrix, factorized by SVD."""
    return kernel.ndim == 2 or kernel.shape[:2] == (1, 1)


def _spectra(kernel: np.ndarray) -> tuple:
    """What the ranks are read from: the singular values of a Dense or 1x1 kernel's matrix, or of a kxk
    kernel's input- and output-channel unfoldings."""
    if _square(kernel):
        return (np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]).astype(np.float64), compute_uv=False),)
    return channel_spectra(kernel)


def _pixels(shape, otherwise: int = 1) -> int:
    """Positions a layer's kernel is applied at: the product of the dimensions between batch and channels."""
    dims = list(shape[1:-1])
    return otherwise if None in dims else int(np.prod(dims)) if dims else 1
