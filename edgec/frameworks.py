"""The one place that decides which Keras TensorFlow gives us.

TFMOT only accepts tf_keras models, and importing tfmot flips
``TF_USE_LEGACY_KERAS`` as a side effect. To keep behaviour independent of
import order, edgec sets the flag itself before TensorFlow is first imported,
so ``tf.keras`` is always tf_keras inside edgec. Keras 3 (the ``keras``
package) is only used to read users' Keras 3 files, in :mod:`edgec.load.bridge`.

Import TensorFlow through :func:`tf` and tf_keras through :func:`tf_keras` so
that commands which do not need TensorFlow (``edgec check``) never load it.
"""

import logging
import os
import warnings

_log = logging.getLogger(__name__)
_tf_module = None


def _prepare_env() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["TF_USE_LEGACY_KERAS"] = "1"


def tf():
    """Return the ``tensorflow`` module, imported with tf_keras as tf.keras."""
    global _tf_module
    if _tf_module is not None:
        return _tf_module
    _prepare_env()
    from edgec.capture import captured_fd2

    # TensorFlow's C++ start-up lines (oneDNN, CUDA probing) ignore
    # TF_CPP_MIN_LOG_LEVEL; keep them off the user's stderr, in the debug log.
    with captured_fd2() as noise:
        import tensorflow

        tensorflow.get_logger().setLevel(logging.ERROR)
        tensorflow.config.list_physical_devices()
    _log.debug("TensorFlow start-up output: %s", noise[0].strip())
    _tf_module = tensorflow
    return tensorflow


def tf_keras():
    """Return the ``tf_keras`` module (Keras 2, the one TFMOT works with)."""
    tf()
    import tf_keras as k

    return k


def keras3():
    """Return the Keras 3 ``keras`` module, used only to read Keras 3 files."""
    tf()
    import keras

    return keras


def set_seed(seed: int) -> dict:
    """Seed Python, NumPy and TensorFlow and ask TensorFlow for determinism; what was set."""
    import random

    import numpy as np

    t = tf()
    random.seed(seed)
    np.random.seed(seed)
    t.random.set_seed(seed)
    try:
        t.config.experimental.enable_op_determinism()
        determinism = True
    except Exception as exc:  # older TF or already-initialised context
        _log.debug("op determinism not enabled: %s", exc)
        determinism = False
    return {"seed": seed, "seeded": ["python random", "numpy", "tensorflow (global)"],
            "tf_op_determinism": determinism}


def tfmot():
    """Return ``tensorflow_model_optimization``, imported after tf_keras is settled."""
    tf()
    import tensorflow_model_optimization as mot

    return mot


def call(model, x, **kwargs):
    """``model(x, training=False)`` with Keras' warnings kept off stderr (Keras 3 warns that a bare
    tensor "doesn't match the expected structure" of a functional model's named inputs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model(x, training=False, **kwargs)


def keras_input_names(model) -> list[str]:
    """The names of a Keras model's inputs (``keras.Input(name=...)``), in its order."""
    names = getattr(model, "input_names", None)
    if not names:
        names = [getattr(t, "name", None) or f"input_{i}" for i, t in enumerate(model.inputs)]
    return [str(n).split(":")[0] for n in names]


def keras_output_names(model) -> list[str]:
    """The names of a Keras model's outputs (the layers that produce them), in its order."""
    names = getattr(model, "output_names", None)
    if not names or len(names) != len(model.outputs):
        names = [f"output_{i}" for i in range(len(model.outputs))]
    return [str(n).split(":")[0] for n in names]
