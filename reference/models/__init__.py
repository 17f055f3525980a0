"""reference.models: whole models in NumPy float64 (reference.models.gpt)."""
