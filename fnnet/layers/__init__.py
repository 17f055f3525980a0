"""fnnet.layers: one file per topic, each a forward with its hand-written backward beside it.

    dense.py        Dense (affine) and DenseParams
    activations.py  Identity, Relu, LeakyRelu, Sigmoid, Tanh, Softmax, ELU, SiLU, Softplus, GELU
    conv.py         Conv2D (NHWC) and ConvParams
    conv_transpose.py  ConvTranspose2D (NHWC) and ConvTransposeParams
    pool.py         MaxPool2D, AvgPool2D
    shape.py        Flatten, Reshape
    dropout.py      Dropout (stochastic: takes a key in train mode)
    batchnorm.py    BatchNorm (stateful: running statistics), BatchNormParams, BatchNormState
    norm.py         LayerNorm, RMSNorm (last axis), GroupNorm (channel groups)
    embedding.py    Embedding, PositionalEmbedding, TokenPositionEmbedding (integer ids in)
    attention.py    CausalSelfAttention
    combinators.py  Sequential, Residual, Positionwise
    recurrent.py    RNN, LSTM, GRU over [B, T, C] (BPTT as a reverse scan), mask_channel
"""
from fnnet.layers.activations import (ELU, GELU, Identity, LeakyRelu, Relu, Sigmoid, SiLU, Softmax, Softplus,
                                      Tanh)
from fnnet.layers.attention import AttentionParams, CausalSelfAttention
from fnnet.layers.batchnorm import BatchNorm, BatchNormParams, BatchNormState
from fnnet.layers.combinators import Positionwise, Residual, Sequential
from fnnet.layers.conv import Conv2D, ConvParams
from fnnet.layers.conv_transpose import ConvTranspose2D, ConvTransposeParams
from fnnet.layers.dense import Dense, DenseParams
from fnnet.layers.dropout import Dropout
from fnnet.layers.embedding import (Embedding, EmbeddingParams, EncoderParams, PositionalEmbedding,
                                    PositionalParams, TokenPositionEmbedding)
from fnnet.layers.norm import GroupNorm, GroupNormParams, LayerNorm, LayerNormParams, RMSNorm, RMSNormParams
from fnnet.layers.pool import AvgPool2D, MaxPool2D
from fnnet.layers.recurrent import GRU, LSTM, RNN, GRUParams, LSTMParams, LSTMState, RNNParams, mask_channel
from fnnet.layers.shape import Flatten, Reshape

__all__ = ["Dense", "DenseParams", "Identity", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Softmax",
           "ELU", "SiLU", "Softplus", "GELU", "Conv2D", "ConvParams", "MaxPool2D", "AvgPool2D", "Flatten",
           "Reshape", "Dropout", "BatchNorm", "BatchNormParams", "BatchNormState",
           "LayerNorm", "LayerNormParams", "RMSNorm", "RMSNormParams",
           "Embedding", "EmbeddingParams", "PositionalEmbedding", "PositionalParams",
           "TokenPositionEmbedding", "EncoderParams", "CausalSelfAttention", "AttentionParams",
           "Sequential", "Residual", "Positionwise",
           "RNN", "LSTM", "GRU", "RNNParams", "LSTMParams", "GRUParams", "LSTMState",
           "ConvTranspose2D", "ConvTransposeParams", "GroupNorm", "GroupNormParams", "mask_channel"]
