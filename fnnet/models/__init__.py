"""fnnet.models: ready-made networks built from fnnet layers.

    cnn.py   fnnet.cnn(...): Conv2D -> ReLU -> MaxPool ... -> Dense, e.g. for the 8x8 digits
    gpt.py   fnnet.gpt(vocab, context, layers, heads, dim): a character/token GPT with a tied head
"""
from fnnet.models.cnn import cnn
from fnnet.models.gpt import TiedLM, generate, gpt

__all__ = ["cnn", "TiedLM", "generate", "gpt"]
