"""Output heads: what turns the trunk's per-token vectors into tokens.

The categorical head of the raster family is its ``output`` linear layer; continuous tokens use
:class:`DiffusionHead` (MAR). Every head offers ``loss(x0, cond)`` and ``sample(cond, ...)``.
"""

from arforge.generators.heads.diffusion import AdaLNMLP, DiffusionHead, DiffusionHeadConfig, GaussianDiffusion

__all__ = ["AdaLNMLP", "DiffusionHead", "DiffusionHeadConfig", "GaussianDiffusion"]
