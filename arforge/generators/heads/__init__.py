"""Output heads: what turns the trunk's per-token vectors into tokens.

The categorical head of the raster family is its ``output`` linear layer; continuous tokens use
:class:`DiffusionHead` (MAR) or :class:`FlowHead` (flow matching; per-token MLP or set transformer). Every head offers ``loss(x0, cond)`` and ``sample(cond, ...)``.
"""

from arforge.generators.heads.diffusion import AdaLNMLP, DiffusionHead, DiffusionHeadConfig, GaussianDiffusion
from arforge.generators.heads.flow import FlowHead, FlowHeadConfig, annealed_steps

__all__ = ["AdaLNMLP", "DiffusionHead", "DiffusionHeadConfig", "FlowHead", "FlowHeadConfig", "GaussianDiffusion",
           "annealed_steps"]
