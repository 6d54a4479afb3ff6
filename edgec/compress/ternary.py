"""``ternary`` and ``binary``: weights constrained to {-a, 0, +a} or {-a, +a} per output channel, fine-tuned.

Ternary follows Ternary Weight Networks (Li and Liu, 2016): per output channel a threshold
``threshold`` x mean |w| sets the smaller weights to zero and the others to +-a, a being the mean
magnitude of those kept. Binary follows BinaryConnect with a per-channel scale (XNOR-Net's BWN): +-mean |w|.
Training uses the straight-through estimator: the float weights are kept aside, each step runs on their
ternarized (binarized) values, and the optimizer's step is added to the float weights, so that small
gradients accumulate instead of being rounded away.

Per-channel int8 quantization maps +-a to +-127 in every channel, so the converted kernels hold 3 (2) int8
values: :mod:`edgec.convert.lut` stores them as 2-bit (1-bit) indices, which TFLite-Micro decodes at run time.
The first and last weight layers stay int8 by default (``keep_ends``), as the literature does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from edgec import frameworks
from edgec.compress import register
from edgec.compress.base import Stage, in_range, selects
from edgec.compress.metrics import mac_kernel
from edgec.compress.training import compile_for_training, fit, in_strategy


def _channel_axes(kernel: np.ndarray, depthwise: bool) -> tuple[int, ...]:
    """The axes reduced per output channel: all but the last (conv, dense), or the spatial ones of a depthwise
    kernel (kh, kw, in, multiplier), whose output channels are in x multiplier."""
    return (0, 1) if depthwise else tuple(range(kernel.ndim - 1))


def ternarize(w: np.ndarray, axes: tuple[int, ...], threshold: float = 0.7) -> np.ndarray:
    """{-a, 0, +a} per output channel: zero where |w| <= threshold x mean |w|, else sign(w) x the mean |w| kept."""
    mag = np.abs(w)
    delta = threshold * mag.mean(axis=axes, keepdims=True)
    keep = mag > delta
    count = keep.sum(axis=axes, keepdims=True)
    alpha = np.where(count > 0, (mag * keep).sum(axis=axes, keepdims=True) / np.maximum(count, 1), 0.0)
    return (np.sign(w) * keep * alpha).astype(w.dtype)


def binarize(w: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """{-a, +a} per output channel: sign(w) (zero counts as +) times the channel's mean |w|."""
    alpha = np.abs(w).mean(axis=axes, keepdims=True)
    return (np.where(w >= 0, 1.0, -1.0) * alpha).astype(w.dtype)


class _SignStage(Stage):
    """What ternary and binary share: the layers chosen, the straight-through training, the check."""

    levels = 0  # values per output channel

    @dataclasses.dataclass(frozen=True)
    class Params:
        epochs: int | None = None
        learning_rate: float | None = None  # default: [training] learning_rate
        include: list | str = "*"
        exclude: tuple[str, ...] | list[str] | str = ()
        keep_ends: bool = True  # the first and last weight layers stay int8

    def check_params(self) -> None:
        p = self.params
        if p.epochs is not None:
            in_range(self, "epochs", p.epochs, 0, 1e6)
        if p.learning_rate is not None:
            in_range(self, "learning_rate", p.learning_rate, 0, 10, lo_open=True)
        if not isinstance(p.keep_ends, bool):
            raise self.fail(f"keep_ends must be true or false, got {p.keep_ends!r}")

    def quantize(self, w: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError

    def _layers(self, model) -> list:
        k = frameworks.tf_keras()
        weighted = [layer for layer in model.layers if _kernel(layer, k) is not None]
        ends = {weighted[0].name, weighted[-1].name} if self.params.keep_ends and weighted else set()
        chosen = [layer for layer in weighted
                  if layer.name not in ends and selects(layer.name, self.params.include, self.params.exclude)]
        if not chosen:
            raise self.fail("no layer matches include/exclude (the first and last weight layers are kept out by "
                            "keep_ends = true); check the layer name patterns, or set keep_ends = false")
        return chosen

    def run(self, model, ctx):
        k = frameworks.tf_keras()
        model = in_strategy(model, ctx)
        layers = self._layers(model)
        with ctx.scope():
            compile_for_training(model, ctx, self.name, learning_rate=self.params.learning_rate)
        step = _straight_through(k, [(_kernel(layer, k), self._axes(layer, k)) for layer in layers], self.quantize)
        logs = fit(model, ctx, self.name, self.epochs(ctx), callbacks=[step])
        step.finish()
        self.extra = {"constrained_layers": [layer.name for layer in layers], "train_logs": logs,
                      "zero_fraction": _zeros(step)}
        return model

    def _axes(self, layer, k) -> tuple[int, ...]:
        kernel = _kernel(layer, k)
        return _channel_axes(kernel.numpy(), isinstance(layer, k.layers.DepthwiseConv2D))

    def check_result(self, model) -> None:
        """Each constrained kernel must hold at most ``levels`` values per output channel."""
        k = frameworks.tf_keras()
        for layer in model.layers:
            if layer.name not in self.extra.get("constrained_layers", ()):
                continue
            w = _kernel(layer, k).numpy()
            axes = self._axes(layer, k)
            per_channel = np.moveaxis(w, [a for a in range(w.ndim) if a not in axes], list(range(w.ndim - len(axes))))
            flat = per_channel.reshape(-1, int(np.prod([w.shape[a] for a in axes])))
            most = max(len(np.unique(row)) for row in flat)
            if most > self.levels:
                raise self.fail(f"layer '{layer.name}' holds {most} values in an output channel after training, "
                                f"more than {self.levels}; this is a bug in edgec, please report it")


def _kernel(layer, k):
    """The multiply-accumulate weights it constrains, else None: not a transposed convolution's, whose output
    channels are not its kernel's last axis."""
    return None if isinstance(layer, k.layers.Conv2DTranspose) else mac_kernel(layer, k)


def _zeros(step: Any) -> float:
    values = [v.numpy() for v, _ in step.kernels]
    return float(sum(int((v == 0).sum()) for v in values) / max(sum(v.size for v in values), 1))


def _straight_through(k, kernels_and_axes, quantize) -> Any:
    """A Keras callback for the straight-through estimator: before each training batch the kernels take the
    quantized values of the float weights kept aside; after it, the optimizer's change to each kernel is
    added to those float weights. Evaluation and the end of training (``finish()``) see the quantized values."""

    class Callback(k.callbacks.Callback):  # type: ignore[name-defined]  # tf_keras, imported at run time
        def __init__(self):
            super().__init__()
            self.kernels = kernels_and_axes
            self.shadow = [v.numpy().copy() for v, _ in kernels_and_axes]
            self.applied: list[np.ndarray] = []
            self._apply()

        def _apply(self):
            self.applied = [quantize(s, axes) for s, (_, axes) in zip(self.shadow, self.kernels)]
            for (v, _), q in zip(self.kernels, self.applied):
                v.assign(q)

        def on_train_batch_begin(self, batch, logs=None):
            self._apply()

        def on_train_batch_end(self, batch, logs=None):
            for s, (v, _), q in zip(self.shadow, self.kernels, self.applied):
                s += v.numpy() - q

        def on_test_begin(self, logs=None):
            self._apply()

        def finish(self):
            self._apply()

    return Callback()


@register
class Ternary(_SignStage):
    name = "ternary"
    summary = "weights {-a, 0, +a} per output channel (ternary weight networks), 2-bit LUT after conversion"
    levels = 3

    @dataclasses.dataclass(frozen=True)
    class Params(_SignStage.Params):
        threshold: float = 0.7  # zero below threshold x mean |w| (per output channel)

    def check_params(self) -> None:
        super().check_params()
        in_range(self, "threshold", self.params.threshold, 0, 2, lo_open=True)

    def quantize(self, w, axes):
        return ternarize(w, axes, self.params.threshold)


@register
class Binary(_SignStage):
    name = "binary"
    summary = "weights {-a, +a} per output channel (binary weights with a scale), 1-bit LUT after conversion"
    levels = 2

    def quantize(self, w, axes):
        return binarize(w, axes)
