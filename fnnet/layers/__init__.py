"""fnnet.layers: one file per topic, each a forward with its hand-written backward beside it.

    dense.py        Dense (affine) and DenseParams
    activations.py  Identity, Relu, LeakyRelu, Sigmoid, Tanh, Softmax, GELU
    norm.py         LayerNorm, RMSNorm (last axis)
    embedding.py    Embedding, PositionalEmbedding, TokenPositionEmbedding (integer ids in)
    attention.py    CausalSelfAttention
    combinators.py  Sequential, Residual, Positionwise
"""
from fnnet.layers.activations import Identity, LeakyRelu, Relu, Sigmoid, Softmax, Tanh
from fnnet.layers.dense import Dense, DenseParams

from fnnet.layers.activations import GELU
from fnnet.layers.attention import AttentionParams, CausalSelfAttention
from fnnet.layers.combinators import Positionwise, Residual, Sequential
from fnnet.layers.embedding import (Embedding, EmbeddingParams, EncoderParams, PositionalEmbedding,
                                    PositionalParams, TokenPositionEmbedding)
from fnnet.layers.norm import LayerNorm, LayerNormParams, RMSNorm, RMSNormParams

__all__ = ["Dense", "DenseParams", "Identity", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Softmax",
           "GELU", "LayerNorm", "LayerNormParams", "RMSNorm", "RMSNormParams",
           "Embedding", "EmbeddingParams", "PositionalEmbedding", "PositionalParams",
           "TokenPositionEmbedding", "EncoderParams", "CausalSelfAttention", "AttentionParams",
           "Sequential", "Residual", "Positionwise"]
