"""The interpreters edgec runs models in, each in ``sandbox``'s child process.

``litert`` runs a model with LiteRT's reference kernels, ``micro`` with
TFLite-Micro (and measures its arena), ``vela`` compiles it for an Ethos-U NPU.
Nothing here imports TensorFlow, so ``edgec check`` stays fast.
"""
