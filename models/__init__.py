"""earshot's models: training, evaluation and batch inference (no I/O beyond loading weights)."""
