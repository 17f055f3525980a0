"""fnnet: functional neural networks on JAX with hand-written, proven backward passes."""
from fnnet._version import __version__
from fnnet.layers.activations import (ELU, GELU, Identity, LeakyRelu, Relu, Sigmoid, SiLU, Softmax, Softplus,
                                      Tanh)
from fnnet.layers.attention import AttentionParams, CausalSelfAttention
from fnnet.layers.batchnorm import BatchNorm, BatchNormParams, BatchNormState
from fnnet.layers.combinators import Positionwise, Residual, Sequential
from fnnet.layers.conv import Conv2D, ConvParams
from fnnet.layers.dense import Dense, DenseParams, with_matmul_dtype
from fnnet.layers.dropout import Dropout
from fnnet.layers.embedding import Embedding, PositionalEmbedding, TokenPositionEmbedding
from fnnet.layers.norm import LayerNorm, RMSNorm
from fnnet.layers.pool import AvgPool2D, MaxPool2D
from fnnet.layers.shape import Flatten, Reshape
from fnnet.losses import MSE, HalfSSE, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from fnnet.losses_seq import SequenceCrossEntropy
from fnnet.network import (Network, backprop, backward, forward, init, init_state, loss, mlp, out_shape, predict,
                           value_and_grad)
from fnnet.models.cnn import cnn
from fnnet.models.gpt import TiedLM, generate, gpt
from fnnet.checkpoint import Checkpoint, load, restore, save
from fnnet.train.fit import DivergedError, FitResult, History, TrainingInterrupted, fit
from fnnet.train.metrics import accuracy
from fnnet.custom_vjp import loss_with_manual_grad
from fnnet import initializers
from fnnet import check, datasets
from fnnet import testing

__all__ = [
    "__version__",
    # layers
    "Dense", "DenseParams", "with_matmul_dtype", "Identity", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Softmax",
    "ELU", "SiLU", "Softplus", "GELU", "Conv2D", "ConvParams", "MaxPool2D", "AvgPool2D", "Flatten", "Reshape",
    "Dropout", "BatchNorm", "BatchNormParams", "BatchNormState", "LayerNorm", "RMSNorm",
    "Embedding", "PositionalEmbedding", "TokenPositionEmbedding", "CausalSelfAttention", "AttentionParams",
    "Sequential", "Residual", "Positionwise",
    # losses
    "MSE", "HalfSSE", "SoftmaxCrossEntropy", "SigmoidBinaryCrossEntropy", "SequenceCrossEntropy",
    # networks and models
    "Network", "mlp", "cnn", "gpt", "TiedLM", "generate",
    "init", "init_state", "forward", "loss", "backward", "value_and_grad", "backprop", "predict", "out_shape",
    "initializers", "check", "datasets", "testing",
    # training and checkpoints
    "save", "load", "restore", "Checkpoint",
    "fit", "FitResult", "History", "DivergedError", "TrainingInterrupted", "accuracy", "loss_with_manual_grad",
]
