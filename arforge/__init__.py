"""arforge: autoregressive visual generation in PyTorch.

Sub-packages: ``tokenizers`` (images <-> tokens), ``generators`` (backbone, orders, heads, families),
``samplers`` (decoding algorithms), ``kernels``, ``eval``, ``data``, ``train``, ``interop``.
"""

__version__ = "0.1.0"

from arforge.pretrained import load_pretrained  # noqa: E402

__all__ = ["__version__", "load_pretrained"]
