"""Teacher adapters: one module per teacher (pose heatmaps, dense-pose embeddings), one common protocol."""
