"""Fine-tuning shared by the stages: loss inference, optimizer, progress, tf.distribute."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import sys
import time
import warnings

import numpy as np

from edgec import frameworks
from edgec.capture import captured_fds
from edgec.errors import ConfigError, DataError

_log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=None)
def strategy(name: str):
    """The tf.distribute strategy called ``name`` (one instance per process, as TF requires)."""
    tf = frameworks.tf()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def cluster_task(name: str) -> dict | None:
    """This process's place in a ``multi_worker_mirrored`` cluster, from ``TF_CONFIG`` (as TensorFlow reads
    it): ``{"type", "index", "workers", "chief"}``; None for another strategy.

    Raises:
        ConfigError: ``TF_CONFIG`` is missing or not the JSON TensorFlow expects.
    """
    if name != "multi_worker_mirrored":
        return None
    fix = ('set TF_CONFIG to {"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}} '
           "in each worker's environment (README: Training on several machines)")
    try:
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        cluster, task = config.get("cluster", {}), config.get("task", {})
        kind, index = str(task.get("type", "worker")), int(task.get("index", 0))
        workers = sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"TF_CONFIG is not valid ({exc}); {fix}") from None
    if not workers:
        raise ConfigError(f"--strategy multi_worker_mirrored needs a cluster, and TF_CONFIG names none; {fix}")
    chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)
    return {"type": kind, "index": index, "workers": workers, "chief": chief}


def in_strategy(model, ctx):
    """``model`` with its variables created under the recipe's tf.distribute strategy.

    Under the default strategy that is ``model`` itself; under another one the
    model is rebuilt inside the strategy's scope and its weights copied, since
    Keras refuses to train variables created outside the scope.
    """
    if ctx.training.strategy == "default":
        return model
    with ctx.scope():
        return copy_model(model)


def copy_model(model):
    """A copy of ``model`` with its weights, its variables made in whichever strategy scope is active."""
    clone = frameworks.tf_keras().models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def output_activation(model) -> str | None:
    """'softmax', 'sigmoid', ... of the model's last layer, or None for a linear output."""
    layer = model.layers[-1]
    while hasattr(layer, "layer"):  # TFMOT wrappers
        layer = layer.layer
    if type(layer).__name__ == "Softmax":
        return "softmax"
    act = getattr(layer, "activation", None)
    name = getattr(act, "__name__", None)
    return None if name in (None, "linear") else name


def infer_loss(model, y: np.ndarray) -> str:
    """The loss a user would pick for this output and these labels."""
    n_out = int(model.outputs[0].shape[-1])
    act = output_activation(model)
    if act == "softmax" or n_out > 1 and y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
        from_logits = "" if act == "softmax" else "_logits"
        if y.ndim == 1 or y.shape[-1] == 1:
            return "sparse_categorical_crossentropy" + from_logits
        return "categorical_crossentropy" + from_logits
    if act == "sigmoid":
        return "binary_crossentropy"
    return "mse"


def loss_object(name: str):
    k = frameworks.tf_keras()
    losses = {
        "sparse_categorical_crossentropy": lambda: k.losses.SparseCategoricalCrossentropy(),
        "sparse_categorical_crossentropy_logits": lambda: k.losses.SparseCategoricalCrossentropy(from_logits=True),
        "categorical_crossentropy": lambda: k.losses.CategoricalCrossentropy(),
        "categorical_crossentropy_logits": lambda: k.losses.CategoricalCrossentropy(from_logits=True),
        "binary_crossentropy": lambda: k.losses.BinaryCrossentropy(),
        "mse": lambda: k.losses.MeanSquaredError(),
        "mae": lambda: k.losses.MeanAbsoluteError(),
    }
    if name not in losses:
        raise ConfigError(f"[training] loss '{name}' is not one of auto, {', '.join(losses)}")
    return losses[name]()


def optimizer(training):
    k = frameworks.tf_keras()
    cls = {"adam": k.optimizers.Adam, "sgd": k.optimizers.SGD, "rmsprop": k.optimizers.RMSprop}[training.optimizer]
    return cls(learning_rate=training.learning_rate)


def metrics_for(loss: str) -> list:
    if "categorical" in loss:
        return ["sparse_categorical_accuracy" if loss.startswith("sparse") else "categorical_accuracy"]
    if loss == "binary_crossentropy":
        return ["binary_accuracy"]
    return []


def loss_name(model, ctx) -> str:
    """The recipe's loss, or (``auto``) the one ``model``'s output and the labels call for."""
    return ctx.training.loss if ctx.training.loss != "auto" else infer_loss(model, ctx.y_train)


def teacher_loss(reference) -> str:
    """The loss for training on ``reference``'s own outputs (no labels), by its output activation."""
    act = output_activation(reference)
    return {"softmax": "categorical_crossentropy", "sigmoid": "binary_crossentropy"}.get(act or "", "mse")


def compile_for_training(model, ctx, stage: str, loss_from=None, learning_rate: float | None = None) -> str:
    """Compile ``model`` with the recipe's optimizer and (inferred) loss; return the loss name.

    ``loss_from`` is the model to read the output activation from when ``model``
    is wrapped in a way that hides it (QAT moves activations into quantizers);
    ``learning_rate`` replaces the recipe's.
    """
    if ctx.y_train is None:
        raise DataError(f"stage '{stage}' fine-tunes the model and needs labels, but the data has none; "
                        "give y (or y_train/y_val) in the data, or use only a distill stage with a teacher")
    loss = loss_name(loss_from or model, ctx)
    training = ctx.training if learning_rate is None else dataclasses.replace(ctx.training, learning_rate=learning_rate)
    model.compile(optimizer=optimizer(training), loss=loss_object(loss), metrics=metrics_for(loss))
    return loss


def progress_callback(stage: str, epochs: int, enabled: bool, stream):
    """A progress bar on ``stream`` (stderr; never stdout, which carries --json): redrawn in place on
    a terminal, one line per epoch otherwise; nothing when ``enabled`` is false."""
    k = frameworks.tf_keras()
    tty = stream.isatty()

    class Bar(k.callbacks.Callback):  # type: ignore[name-defined]  # tf_keras, imported at run time
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.t0 = epoch, time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            steps = self.params.get("steps") or 1
            if enabled and tty:
                done = int(30 * (batch + 1) / steps)
                stream.write(f"\redgec: {stage} epoch {self.epoch + 1}/{epochs} "
                                 f"[{'#' * done}{'.' * (30 - done)}] loss {logs.get('loss', 0):.4f}")
                stream.flush()

        def on_epoch_end(self, epoch, logs=None):
            if not enabled:
                return
            shown = " ".join(f"{k_} {v:.4f}" for k_, v in (logs or {}).items())
            stream.write(("\r" if tty else "") + f"edgec: {stage} epoch {epoch + 1}/{epochs} "
                             f"{shown} ({time.perf_counter() - self.t0:.1f} s)\n")
            stream.flush()

    return Bar()


def fit(model, ctx, stage: str, epochs: int, callbacks=(), x=None, y=None) -> dict:
    """``model.fit`` on the training data with validation, seeded; returns the last epoch's logs."""
    if epochs == 0:
        return {}
    frameworks.set_seed(ctx.seed)
    x = ctx.x_train if x is None else x
    y = ctx.y_train if y is None else y
    has_val = ctx.y_val is not None and len(ctx.x_val) > 0
    sys.stderr.flush()
    # TensorFlow's C++ runtime logs to fd 2 during fit (tf.data attribute notices and the like):
    # capture it, and draw the progress bar on a copy of the real stderr taken before.
    with os.fdopen(os.dup(2), "w") as stream, captured_fds(1, 2) as noise, \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hist = model.fit(x, y, batch_size=ctx.training.batch_size, epochs=epochs, verbose=0, shuffle=True,
                         validation_data=(ctx.x_val, ctx.y_val) if has_val else None,
                         callbacks=[*callbacks, progress_callback(stage, epochs, ctx.progress, stream)])
    _log.debug("%s training output: %s %s", stage, noise[0].strip(), [str(w.message) for w in caught])
    return {k: float(v[-1]) for k, v in hist.history.items()}


def fine_tune(model, ctx, stage: str, epochs: int, reference=None, learning_rate: float | None = None) -> dict:
    """Fine-tune ``model`` after a structural change: on the labels when the data has them, else on
    ``reference``'s outputs (self-distillation from the model before the change). Returns the logs."""
    if epochs == 0:
        return {}
    if ctx.y_train is not None or reference is None:
        with ctx.scope():
            compile_for_training(model, ctx, stage, learning_rate=learning_rate)
        return fit(model, ctx, stage, epochs)
    from edgec.check.verification import predict

    loss = teacher_loss(reference)
    training = ctx.training if learning_rate is None else dataclasses.replace(ctx.training, learning_rate=learning_rate)
    shape = (-1, *model.outputs[0].shape[1:])
    targets = predict(reference, ctx.x_train).reshape(shape)
    val = predict(reference, ctx.x_val).reshape(shape) if len(ctx.x_val) else None
    with ctx.scope():
        model.compile(optimizer=optimizer(training), loss=loss_object(loss))
    return fit(model, dataclasses.replace(ctx, y_val=val), stage, epochs, y=targets)


def fine_tune_source(ctx, epochs: int) -> str:
    """What :func:`fine_tune` trains on, for the report."""
    if epochs == 0:
        return "nothing (epochs = 0)"
    return "labels" if ctx.y_train is not None else "the model's own outputs before the stage (no labels)"
