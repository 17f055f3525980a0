"""fnnet.models: builders of whole networks from the layers (cnn; gpt lives beside it)."""
from fnnet.models.cnn import cnn

__all__ = ["cnn"]
