"""``qat``: TFMOT quantization-aware training, the last training stage.

After ``prune`` it uses the prune-preserving scheme (PQAT), after ``cluster``
the cluster-preserving one (CQAT, also keeping zeros when pruning ran first):
plain QAT would re-learn the zeros and clusters away. A layer TFMOT cannot
quantize is named in the error; ``skip`` leaves such layers unannotated (float
during QAT; the converter still quantizes them post-training when it can).
"""

from __future__ import annotations

import dataclasses
import math
import re

from edgec import _tf
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
        skip: list | str = ()               # layer name patterns QAT leaves unannotated

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

    def epochs(self, ctx) -> int:
        """The given epochs, else enough for ~500 steps (capped at 20): TFMOT's activation ranges are
        moving averages (decay 0.999) that start at +-6 and need that many steps to fit the data."""
        if self.params.epochs is not None:
            return self.params.epochs
        return max(ctx.training.epochs, min(20, math.ceil(_RANGE_STEPS / ctx.steps_per_epoch)))

    def _scheme(self, done: list[str]):
        mot = _tf.tfmot()
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
        mot = _tf.tfmot()
        k = _tf.tf_keras()
        q = mot.quantization.keras
        skipped = []

        from tensorflow_model_optimization.python.core.quantization.keras.quantize_aware_activation import \
            QuantizeAwareActivation as Aware

        supported = Aware._PRE_QUANT_ACTIVATIONS | Aware._POST_QUANT_ACTIVATIONS

        def annotate(layer):
            if isinstance(layer, k.layers.InputLayer):
                return layer
            if name_matches(layer.name, p.skip):
                skipped.append(layer.name)
                return layer
            act = getattr(layer, "activation", None)
            act_name = getattr(act, "__name__", None)
            if act is not None and act_name not in supported:  # TFMOT's own error names no layer
                raise ConversionError(
                    f"quantization-aware training cannot quantize layer '{layer.name}' ({type(layer).__name__}) with "
                    f"activation {str(act_name).removeprefix('edgec_')} (TFMOT takes {', '.join(sorted(supported))}); "
                    f"leave it out of QAT with --stage qat:skip={layer.name}, or use one of those activations")
            return q.quantize_annotate_layer(layer)

        scheme_name, scheme = self._scheme(ctx.done)
        model = in_strategy(model, ctx)
        with ctx.scope():
            annotated = k.models.clone_model(model, clone_function=annotate)
            try:
                with q.quantize_scope():
                    qat_model = q.quantize_apply(annotated, scheme)
            except (RuntimeError, ValueError) as exc:
                raise self._explain(exc) from None
            compile_for_training(qat_model, ctx, self.name, loss_from=model,
                                 learning_rate=p.learning_rate or ctx.training.learning_rate / 10)
        logs = fit(qat_model, ctx, self.name, self.epochs(ctx))
        self.extra = {"scheme": scheme_name, "skipped_layers": skipped, "train_logs": logs}
        return qat_model

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
