"""fnnet.layers: one file per topic, each a forward with its hand-written backward beside it.

    dense.py        Dense (affine) and DenseParams
    activations.py  Identity, Relu, LeakyRelu, Sigmoid, Tanh, Softmax, ELU, SiLU, Softplus
    conv.py         Conv2D (NHWC) and ConvParams
    pool.py         MaxPool2D, AvgPool2D
    shape.py        Flatten, Reshape
    dropout.py      Dropout (stochastic: takes a key in train mode)
    batchnorm.py    BatchNorm (stateful: running statistics), BatchNormParams, BatchNormState
"""
from fnnet.layers.activations import ELU, Identity, LeakyRelu, Relu, Sigmoid, SiLU, Softmax, Softplus, Tanh
from fnnet.layers.batchnorm import BatchNorm, BatchNormParams, BatchNormState
from fnnet.layers.conv import Conv2D, ConvParams
from fnnet.layers.dense import Dense, DenseParams
from fnnet.layers.dropout import Dropout
from fnnet.layers.pool import AvgPool2D, MaxPool2D
from fnnet.layers.shape import Flatten, Reshape

__all__ = ["Dense", "DenseParams", "Identity", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Softmax",
           "ELU", "SiLU", "Softplus", "Conv2D", "ConvParams", "MaxPool2D", "AvgPool2D", "Flatten", "Reshape",
           "Dropout", "BatchNorm", "BatchNormParams", "BatchNormState"]
