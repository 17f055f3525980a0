"""fnnet.models: ready-made networks built from fnnet layers.

    gpt.py   fnnet.gpt(vocab, context, layers, heads, dim): a character/token GPT with a tied head
"""
from fnnet.models.gpt import TiedLM, generate, gpt

__all__ = ["TiedLM", "generate", "gpt"]
