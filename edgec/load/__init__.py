"""Load: the user's files, read without running anything they hold.

``model`` reads Keras files (``.keras``, ``.h5``, SavedModel) and ``bridge``
rebuilds a Keras 3 model as tf_keras for the TFMOT stages; ``hdf5`` and
``savedmodel_ops`` look inside a file before Keras opens it; ``data`` reads the
calibration and validation data; ``tflite_file`` parses a ``.tflite`` after
``flatbuffer_check`` has verified it; ``limits`` bounds what is read and
``user_code`` imports the user's own code only when the command line asks.
"""
