"""edgec: a trained Keras model to a microcontroller or a phone.

The package follows the pipeline: load (:mod:`edgec.models`, :mod:`edgec.data`)
→ compress (:mod:`edgec.compress`) → convert (:mod:`edgec.converters`) → emit
(:mod:`edgec.artifacts`) → check (:mod:`edgec.runtime`, :mod:`edgec.targets`)
→ report (:mod:`edgec.report`). :func:`edgec.pipeline.build` runs it.
"""

__version__ = "0.1.0"
