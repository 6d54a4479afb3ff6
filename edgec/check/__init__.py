"""Check: an int8 model against a target.

``targets`` holds the profiles, ``latency`` the per-op cost model, ``measure``
the report's measurements per runtime, ``budgets`` the judgement,
``verification`` compares int8 with float, ``quant_error`` finds the layers
quantization hurts, and ``gate`` is ``edgec check``: all of it on a ``.tflite``
without TensorFlow.
"""
