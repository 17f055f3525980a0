"""fnnet.layers: one file per topic, each a forward with its hand-written backward beside it.

    dense.py        Dense (affine) and DenseParams
    activations.py  Identity, Relu, LeakyRelu, Sigmoid, Tanh, Softmax
"""
from fnnet.layers.activations import Identity, LeakyRelu, Relu, Sigmoid, Softmax, Tanh
from fnnet.layers.dense import Dense, DenseParams

__all__ = ["Dense", "DenseParams", "Identity", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Softmax"]
