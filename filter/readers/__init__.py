"""Input readers, one module per format; each yields lazily streamed batches for the engine."""
