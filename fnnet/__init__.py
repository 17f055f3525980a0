"""fnnet: functional neural networks on JAX with hand-written, proven backward passes."""
from fnnet._version import __version__
from fnnet._xla_cpu import set_default_malloc, set_default_xla_flags

# Before any backend starts: XLA:CPU's concurrency-optimized scheduler off for every program
# of this process (fnnet/_xla_cpu.py says why; XLA_FLAGS naming the flag, or FNNET_XLA_FLAGS=0,
# keeps the user's choice).
XLA_FLAGS_STATUS = set_default_xla_flags()
# and, only with FNNET_CPU_MALLOC=1, glibc malloc plus jax's CPU dispatch set so that the large
# block of temporaries each XLA:CPU call allocates is kept for the next call instead of
# page-faulted in afresh (fnnet/_xla_cpu.py says why, and why it is not a default: a small
# step loses asynchronous dispatch).
MALLOC_STATUS = set_default_malloc()
from fnnet.layers.activations import (ELU, GELU, Identity, LeakyRelu, Relu, Sigmoid, SiLU, Softmax, Softplus,
                                      Tanh)
from fnnet.layers.attention import AttentionParams, CausalSelfAttention
from fnnet.layers.batchnorm import BatchNorm, BatchNormParams, BatchNormState
from fnnet.layers.combinators import Positionwise, Residual, Sequential
from fnnet.layers.conv import Conv2D, ConvParams
from fnnet.layers.conv_transpose import ConvTranspose2D, ConvTransposeParams
from fnnet.layers.dense import Dense, DenseParams, with_matmul_dtype
from fnnet.layers.dropout import Dropout
from fnnet.layers.embedding import Embedding, PositionalEmbedding, TokenPositionEmbedding
from fnnet.layers.norm import GroupNorm, GroupNormParams, LayerNorm, RMSNorm
from fnnet.layers.pool import AvgPool2D, MaxPool2D
from fnnet.layers.recurrent import GRU, LSTM, RNN, GRUParams, LSTMParams, LSTMState, RNNParams
from fnnet.layers.shape import Flatten, Reshape
from fnnet.losses import MSE, HalfSSE, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from fnnet.losses_seq import SequenceCrossEntropy
from fnnet.network import (Network, backprop, backward, forward, init, init_state, loss, mlp, out_shape, predict,
                           value_and_grad)
from fnnet.models.cnn import cnn
from fnnet.models.gpt import TiedLM, generate, gpt
from fnnet.models.char_lstm import char_lstm, generate_lstm
from fnnet.checkpoint import Checkpoint, load, restore, save
from fnnet.train.fit import DivergedError, FitResult, History, TrainingInterrupted, fit
from fnnet.train.divergence import LossGrowthWarning
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
    "RNN", "LSTM", "GRU", "RNNParams", "LSTMParams", "GRUParams", "LSTMState",
    "ConvTranspose2D", "ConvTransposeParams", "GroupNorm", "GroupNormParams",
    # losses
    "MSE", "HalfSSE", "SoftmaxCrossEntropy", "SigmoidBinaryCrossEntropy", "SequenceCrossEntropy",
    # networks and models
    "Network", "mlp", "cnn", "gpt", "TiedLM", "generate", "char_lstm", "generate_lstm",
    "init", "init_state", "forward", "loss", "backward", "value_and_grad", "backprop", "predict", "out_shape",
    "initializers", "check", "datasets", "testing",
    # training and checkpoints
    "save", "load", "restore", "Checkpoint",
    "fit", "FitResult", "History", "DivergedError", "TrainingInterrupted", "accuracy", "loss_with_manual_grad",
    # what import did to XLA_FLAGS (fnnet/_xla_cpu.py): "set", "user", "opted out", "too late"
    "XLA_FLAGS_STATUS",
    # what import did to glibc malloc and CPU dispatch (fnnet/_xla_cpu.py): "off" (default), "set", "user", ...
    "MALLOC_STATUS",
    "LossGrowthWarning",
]
