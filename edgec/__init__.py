"""edgec: a trained Keras model to a microcontroller or a phone.

The package follows the pipeline: load (:mod:`edgec.load.model`, :mod:`edgec.load.data`)
→ compress (:mod:`edgec.compress`) → convert (:mod:`edgec.converters`) → emit
(:mod:`edgec.emit.artifacts`) → check (:mod:`edgec.runtime`, :mod:`edgec.check.targets`)
→ report (:mod:`edgec.report`). :func:`edgec.pipeline.build` runs it; :mod:`edgec.api`
(``edgec.build``, ``edgec.api.check``, ``edgec.api.inspect``) is the same from Python, on objects in
memory.
"""

__version__ = "0.1.0"

__all__ = ["build", "__version__"]


def __getattr__(name: str):
    """``edgec.build`` (:func:`edgec.api.build`), imported on first use so that ``import edgec`` does
    not load TensorFlow. ``edgec.api.check`` and ``edgec.api.inspect`` take a ``.tflite``
    (``edgec.check.gate`` is the module of the command's checks)."""
    if name == "build":
        from edgec import api

        return api.build
    raise AttributeError(f"module 'edgec' has no attribute {name!r}")
