"""arforge: autoregressive visual generation in PyTorch.

Sub-packages: ``tokenizers`` (images <-> tokens), ``generators`` (backbone, orders, heads, families),
``samplers`` (decoding algorithms), ``kernels``, ``eval``, ``data``, ``train``, ``interop``;
``pretrained`` (save/load mixin, a leaf), ``auto`` (load any saved model), ``commands`` (the CLI).
"""

__version__ = "0.1.0"

__all__ = ["__version__", "load_pretrained"]


def __getattr__(name: str):
    """``arforge.load_pretrained`` without importing every family on ``import arforge`` (so that
    ``import arforge.pretrained`` or ``import arforge.kernels`` stays light)."""
    if name == "load_pretrained":
        from arforge.auto import load_pretrained

        return load_pretrained
    raise AttributeError(f"module 'arforge' has no attribute {name!r}")
