"""enot: one-shot neural architecture search for PyTorch (pretrain, search, tune)."""

__version__ = "0.1.0"
