"""Convert: a Keras model to a full-integer TFLite flatbuffer, calibrated on the data (``int8``)."""
