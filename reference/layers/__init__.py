"""reference.layers: NumPy float64 twins of fnnet.layers, one file per topic (same stems)."""
