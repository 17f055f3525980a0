"""fnnet.models: ready-made networks built from fnnet layers.

    cnn.py   fnnet.cnn(...): Conv2D -> ReLU -> MaxPool ... -> Dense, e.g. for the 8x8 digits
    gpt.py   fnnet.gpt(vocab, context, layers, heads, dim): a character/token GPT with a tied head
    char_lstm.py  fnnet.char_lstm(vocab, context, hidden, embed, layers): Embedding -> LSTM -> Dense
"""
from fnnet.models.cnn import cnn
from fnnet.models.char_lstm import char_lstm, generate_lstm
from fnnet.models.gpt import TiedLM, generate, gpt

__all__ = ["cnn", "TiedLM", "generate", "gpt", "char_lstm", "generate_lstm"]
