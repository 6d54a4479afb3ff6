"""Reading and running int8 TFLite models without TensorFlow.

``model_file`` parses the flatbuffer, ``litert`` runs it with the LiteRT
interpreter, ``micro`` with the TFLite-Micro interpreter (and measures its
arena), ``hdf5`` reads a Keras model's HDF5 data first; all three run in
``sandbox``'s child process. Nothing here imports TensorFlow, so
``edgec check`` stays fast.
"""
