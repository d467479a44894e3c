"""nin: Network In Network (Lin, Chen, Yan 2013) — models, reproduction, explanation and serving."""

__version__ = "0.1.0"

__all__ = ["__version__"]
