"""``qat``: TFMOT quantization-aware training, the last training stage.

After ``prune`` it uses the prune-preserving scheme (PQAT), after ``cluster``
the cluster-preserving one (CQAT, also keeping zeros when pruning ran first):
plain QAT would re-learn the zeros and clusters away. A layer TFMOT cannot
quantize is named in the error; ``skip`` leaves such layers unannotated (float
during QAT; the converter still quantizes them post-training when it can).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import math
import os
import re

from edgec import frameworks
from edgec.compress import register
from edgec.compress.base import Stage, in_range, name_matches
from edgec.compress.training import compile_for_training, fit, in_strategy
from edgec.errors import ConversionError

_UNSUPPORTED = re.compile(r"Layer (\S+?):<class '([\w.]+)'> is not supported")
_RANGE_STEPS = 500
SCHEMES = ("auto", "default", "prune_preserve", "cluster_preserve")


@register
class QAT(Stage):
    name = "qat"
    summary = "TFMOT quantization-aware training; prune-/cluster-preserving (PQAT/CQAT) after prune/cluster"

    @dataclasses.dataclass(frozen=True)
    class Params:
        epochs: int | None = None           # default: enough for ~500 steps, at most 20 (see epochs())
        learning_rate: float | None = None  # default: [training] learning_rate / 10
        scheme: str = "auto"                # auto: from the stages before; or default, prune_preserve, cluster_preserve
        skip: tuple[str, ...] | list[str] | str = ()               # layer name patterns QAT leaves unannotated

    def check_params(self) -> None:
        p = self.params
        if p.scheme not in SCHEMES:
            raise self.fail(f"scheme '{p.scheme}' is not one of {', '.join(SCHEMES)}")
        if p.epochs is not None:
            in_range(self, "epochs", p.epochs, 0, 1e6)
        if p.learning_rate is not None:
            in_range(self, "learning_rate", p.learning_rate, 0, 10, lo_open=True)

    def check_order(self, before: list[str]) -> None:
        if "qat" in before:
            raise self.fail("appears twice; keep one qat stage, at the end")
        for constrained in ("ternary", "binary"):
            if constrained in before:
                raise self.fail(f"would fine-tune every weight and undo '{constrained}', whose values map exactly "
                                "onto the int8 grid already; drop qat")

    def epochs(self, ctx) -> int:
        """The given epochs, else enough for ~500 steps (capped at 20): TFMOT's activation ranges are
        moving averages (decay 0.999) that start at +-6 and need that many steps to fit the data."""
        if self.params.epochs is not None:
            return self.params.epochs
        return max(ctx.training.epochs, min(20, math.ceil(_RANGE_STEPS / ctx.steps_per_epoch)))

    def _scheme(self, done: list[str]):
        mot = frameworks.tfmot()
        name = self.params.scheme
        if name == "auto":
            name = "cluster_preserve" if "cluster" in done else "prune_preserve" if "prune" in done else "default"
        combine = mot.experimental.combine
        if name == "cluster_preserve":
            return name, combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity="prune" in done)
        if name == "prune_preserve":
            return name, combine.Default8BitPrunePreserveQuantizeScheme()
        return name, mot.quantization.keras.default_8bit.Default8BitQuantizeScheme()

    def run(self, model, ctx):
        p = self.params
        scheme_name, scheme = self._scheme(ctx.done)
        model = in_strategy(model, ctx)
        with ctx.scope():
            qat_model, skipped = self._quantized(model, scheme)
            compile_for_training(qat_model, ctx, self.name, loss_from=model,
                                 learning_rate=p.learning_rate or ctx.training.learning_rate / 10)
        logs = fit(qat_model, ctx, self.name, self.epochs(ctx))
        self.extra = {"scheme": scheme_name, "skipped_layers": skipped, "output_only_layers": self.output_only,
                      "train_logs": logs}
        return qat_model

    def _quantized(self, model, scheme):
        """TFMOT's QAT model of ``model`` and the layers left out by ``skip``.

        TFMOT refuses a layer it cannot quantize one at a time (and an activation it cannot quantize
        without naming the layer), so a model with twenty hard_swish activations and a Rescaling
        would take a user twenty-one runs. Every such layer is found first, and one error names them
        all with the ``skip`` that passes them.
        """
        k = frameworks.tf_keras()
        q = frameworks.tfmot().quantization.keras
        skip = self.params.skip
        layers = [layer for layer in model.layers if not isinstance(layer, k.layers.InputLayer)]
        unsupported = {layer.name for layer in layers if _activation(layer) not in (None, *_qat_activations())}
        # A standalone Activation layer (MobileNetV3's hard_swish) has nothing to make quantization-aware
        # inside it: its output is fake-quantized, as TFMOT does for softmax. TFMOT's own config for it
        # raises, even when the layer is skipped and only its output is to be quantized.
        output_only = {layer.name for layer in layers if layer.name in unsupported
                       and isinstance(layer, k.layers.Activation)}
        refused = {layer.name: f"activation {_activation(layer).removeprefix('edgec_')}" for layer in layers
                   if layer.name in unsupported - output_only and not name_matches(layer.name, skip)}
        for _ in range(_MAX_PROBES):
            skipped = []

            def annotate(layer, _left_out=tuple(refused)):
                if isinstance(layer, k.layers.InputLayer):
                    return layer
                left_out = name_matches(layer.name, skip) or layer.name in _left_out
                if left_out and layer.name not in output_only:
                    skipped.append(layer.name)
                if layer.name in output_only or (left_out and layer.name in unsupported):
                    # TFMOT quantizes the output of a layer left out before an annotated one with the
                    # registry's config for it, which raises for its activation: only its output then
                    return q.quantize_annotate_layer(layer, quantize_config=_output_only_config())
                return layer if left_out else q.quantize_annotate_layer(layer)

            annotated = k.models.clone_model(model, clone_function=annotate)
            try:
                with q.quantize_scope({"OutputOnlyQuantizeConfig": type(_output_only_config())}):
                    qat_model = q.quantize_apply(annotated, scheme)
            except (RuntimeError, ValueError) as exc:
                found = _UNSUPPORTED.search(" ".join(str(exc).split()))
                if not found or found.group(1) in refused:
                    raise self._explain(exc) from None
                # TFMOT's registry supports a layer by its class: every layer of that class is refused too,
                # except batch norm, which its layout transforms fold into the conv before it where there is one
                cls = next((type(layer) for layer in layers if layer.name == found.group(1)), None)
                if cls is not None and cls.__name__ == "BatchNormalization":
                    cls = None
                for layer in layers:
                    if (layer.name == found.group(1) or type(layer) is cls) and not name_matches(layer.name, skip):
                        refused[layer.name] = found.group(2).rsplit(".", 1)[-1]
                continue
            if refused:
                raise ConversionError(_unquantizable(refused, [layer.name for layer in layers], skip))
            self.output_only = sorted(output_only)
            return qat_model, [name for name in skipped if name not in refused]
        raise ConversionError(_unquantizable(refused, [layer.name for layer in layers], skip))

    def _explain(self, exc: Exception) -> ConversionError:
        text = " ".join(str(exc).split())
        m = _UNSUPPORTED.search(text)
        if m:
            layer, cls = m.group(1), m.group(2).rsplit(".", 1)[-1]
            return ConversionError(
                f"quantization-aware training cannot quantize layer '{layer}' ({cls}); leave it out of QAT "
                f"with skip = [\"{layer}\"] in the qat stage (--stage qat:skip={layer}), or replace the layer")
        return ConversionError(f"quantization-aware training could not prepare the model: {text[:300]}; "
                               "use skip = [...] in the qat stage for the layers it names, or drop the qat stage")


@functools.cache
def _output_only_class():
    mot = frameworks.tfmot()

    class OutputOnlyQuantizeConfig(mot.quantization.keras.QuantizeConfig):
        """Fake-quantize a layer's output only (8 bits, asymmetric, a moving-average range)."""

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [mot.quantization.keras.quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

        def get_config(self):
            return {}

    return OutputOnlyQuantizeConfig


def _output_only_config():
    return _output_only_class()()


_MAX_PROBES = 64  # quantize_apply runs per layer TFMOT refuses; a model refusing more is told the first 64


def _activation(layer) -> str | None:
    act = getattr(layer, "activation", None)
    return None if act is None else str(getattr(act, "__name__", act))


def _qat_activations() -> frozenset:
    """The activations TFMOT's QAT can quantize."""
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_aware_activation import (
        QuantizeAwareActivation as Aware,
    )

    return frozenset(Aware._PRE_QUANT_ACTIVATIONS | Aware._POST_QUANT_ACTIVATIONS)


def _unquantizable(refused: dict, names: list, skip) -> str:
    """One line naming the layers TFMOT cannot quantize (``refused``: name -> why), and the ``skip``
    that passes them all: globs where they share a prefix or a suffix that no other layer of
    ``names`` has."""
    def glob(members: list) -> str | None:
        prefix = os.path.commonprefix(members).rstrip("_0123456789")
        suffix = os.path.commonprefix([m[::-1] for m in members])[::-1].lstrip("_0123456789")
        for pattern in (prefix + "*", "*" + suffix):
            if len(members) > 1 and len(pattern) >= 3 and all(
                    n in refused for n in names if fnmatch.fnmatchcase(n, pattern)):
                return pattern
        return None

    kinds: dict[str, list[str]] = {}
    for n, why in refused.items():
        kinds.setdefault(why, []).append(n)
    everything = glob(list(refused))
    patterns = [everything] if everything else []
    for members in ([] if everything else kinds.values()):
        if pattern := glob(members):
            patterns.append(pattern)
            continue
        bases: dict[str, list[str]] = {}  # names that fall into a few prefixes (activation_7, rescaling_2)
        for n in members:
            bases.setdefault(n.rstrip("_0123456789") or n, []).append(n)
        for group in bases.values():
            patterns += [pattern] if (pattern := glob(group)) else group
    option = "qat:skip=" + "|".join([*([skip] if isinstance(skip, str) else list(skip or [])), *patterns])
    if any(c in option for c in "|*?["):
        option = f"'{option}'"
    what = "; ".join(f"{', '.join(repr(n) for n in ns[:3])}{f' and {len(ns) - 3} more' if len(ns) > 3 else ''} "
                     f"({why})" for why, ns in kinds.items())
    which = f"layer {what}" if len(refused) == 1 else f"{len(refused)} layers: {what}"
    them = "them" if len(refused) > 1 else "it"
    takes = (f" (TFMOT's activations: {', '.join(sorted(_qat_activations()))})"
             if any(why.startswith("activation ") for why in kinds) else "")
    return (f"quantization-aware training cannot quantize {which}{takes}; leave {them} out of QAT with "
            f"--stage {option}, or replace {them}")
