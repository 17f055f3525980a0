"""fnnet: functional neural networks on JAX with hand-written, proven backward passes."""
from fnnet._activations import Identity, LeakyRelu, Relu, Sigmoid, Softmax, Tanh
from fnnet._dense import Dense, DenseParams
from fnnet._losses import MSE, HalfSSE, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from fnnet._network import (Network, backprop, backward, forward, init, loss, mlp, out_shape, predict,
                            value_and_grad)
from fnnet._checkpoint import load, save
from fnnet._fit import DivergedError, History, fit
from fnnet._metrics import accuracy
from fnnet._custom_vjp import loss_with_manual_grad
from fnnet import _init as initializers
from fnnet import check, datasets

__all__ = [
    "Dense", "DenseParams", "Identity", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Softmax",
    "MSE", "HalfSSE", "SoftmaxCrossEntropy", "SigmoidBinaryCrossEntropy",
    "Network", "mlp", "init", "forward", "loss", "backward", "value_and_grad", "backprop", "predict",
    "out_shape", "initializers", "check", "datasets",
    "save", "load",
    "fit", "History", "DivergedError", "accuracy", "loss_with_manual_grad",
]
