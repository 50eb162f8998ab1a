"""Output heads: what turns the trunk's per-token vectors into tokens.

Discrete tokens use :class:`CategoricalHead` (a linear map to float32 logits); continuous tokens use
:class:`DiffusionHead` (MAR) or :class:`FlowHead` (flow matching; per-token MLP or set transformer),
which offer ``loss(x0, cond)`` and ``sample(cond, ...)``.
"""

from arforge.generators.heads.categorical import TOKEN_HEADS, CategoricalHead, register_token_head

from arforge.generators.heads.diffusion import AdaLNMLP, DiffusionHead, DiffusionHeadConfig, GaussianDiffusion
from arforge.generators.heads.flow import FlowHead, FlowHeadConfig

__all__ = ["AdaLNMLP", "CategoricalHead", "TOKEN_HEADS", "register_token_head", "DiffusionHead", "DiffusionHeadConfig", "FlowHead", "FlowHeadConfig", "GaussianDiffusion"]
