"""fnnet: functional neural networks on JAX with hand-written, proven backward passes."""
from fnnet._version import __version__
from fnnet.layers.activations import Identity, LeakyRelu, Relu, Sigmoid, Softmax, Tanh
from fnnet.layers.dense import Dense, DenseParams, with_matmul_dtype
from fnnet.layers.activations import GELU
from fnnet.layers.attention import AttentionParams, CausalSelfAttention
from fnnet.layers.combinators import Positionwise, Residual, Sequential
from fnnet.layers.embedding import Embedding, PositionalEmbedding, TokenPositionEmbedding
from fnnet.layers.norm import LayerNorm, RMSNorm
from fnnet.losses_seq import SequenceCrossEntropy
from fnnet.models.gpt import TiedLM, generate, gpt
from fnnet.losses import MSE, HalfSSE, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from fnnet.network import (Network, backprop, backward, forward, init, loss, mlp, out_shape, predict,
                            value_and_grad)
from fnnet.checkpoint import Checkpoint, load, restore, save
from fnnet.train.fit import DivergedError, History, fit
from fnnet.train.metrics import accuracy
from fnnet.custom_vjp import loss_with_manual_grad
from fnnet import initializers
from fnnet import check, datasets
from fnnet import testing

__all__ = [
    "__version__",
    "Dense", "DenseParams", "with_matmul_dtype", "Identity", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Softmax",
    "MSE", "HalfSSE", "SoftmaxCrossEntropy", "SigmoidBinaryCrossEntropy",
    "Network", "mlp", "init", "forward", "loss", "backward", "value_and_grad", "backprop", "predict",
    "out_shape", "initializers", "check", "datasets", "testing",
    "save", "load", "restore", "Checkpoint",
    "fit", "History", "DivergedError", "accuracy", "loss_with_manual_grad",
    # sequences and the GPT (issue 9)
    "GELU", "LayerNorm", "RMSNorm", "Embedding", "PositionalEmbedding", "TokenPositionEmbedding",
    "CausalSelfAttention", "AttentionParams", "Sequential", "Residual", "Positionwise",
    "SequenceCrossEntropy", "TiedLM", "gpt", "generate",
]
