"""fnnet: functional neural networks on JAX with hand-written, proven backward passes."""
from fnnet._version import __version__
from fnnet.layers.activations import Identity, LeakyRelu, Relu, Sigmoid, Softmax, Tanh
from fnnet.layers.dense import Dense, DenseParams
from fnnet.layers.activations import ELU, SiLU, Softplus
from fnnet.layers.batchnorm import BatchNorm, BatchNormParams, BatchNormState
from fnnet.layers.conv import Conv2D, ConvParams
from fnnet.layers.dropout import Dropout
from fnnet.layers.pool import AvgPool2D, MaxPool2D
from fnnet.layers.shape import Flatten, Reshape
from fnnet.losses import MSE, HalfSSE, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from fnnet.network import (Network, backprop, backward, forward, init, init_state, loss, mlp, out_shape, predict,
                            value_and_grad)
from fnnet.checkpoint import Checkpoint, load, restore, save
from fnnet.train.fit import DivergedError, History, fit
from fnnet.train.metrics import accuracy
from fnnet.custom_vjp import loss_with_manual_grad
from fnnet import initializers
from fnnet.models.cnn import cnn
from fnnet import check, datasets

__all__ = [
    "__version__",
    "Dense", "DenseParams", "Identity", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Softmax",
    "ELU", "SiLU", "Softplus", "Conv2D", "ConvParams", "MaxPool2D", "AvgPool2D", "Flatten", "Reshape",
    "Dropout", "BatchNorm", "BatchNormParams", "BatchNormState", "init_state",
    "MSE", "HalfSSE", "SoftmaxCrossEntropy", "SigmoidBinaryCrossEntropy",
    "Network", "mlp", "cnn", "init", "forward", "loss", "backward", "value_and_grad", "backprop", "predict",
    "out_shape", "initializers", "check", "datasets",
    "save", "load", "restore", "Checkpoint",
    "fit", "History", "DivergedError", "accuracy", "loss_with_manual_grad",
]
