"""The ``raster_flow`` family: raster order over continuous tokens with a flow-matching head.

The raster generator (:class:`~arforge.generators.raster.RasterGenerator`: causal backbone, class
prefix, 2D RoPE, KV cache) with two pieces swapped, as a composition rather than a new model: token
embeddings become a linear projection of the ``c``-dimensional latent token, and the categorical
output becomes the shared :class:`~arforge.generators.heads.FlowHead`, conditioned on the feature
that predicts each token. Tokens are the latent cells ``(B, c, h, w)`` in raster order. Sampling
(``raster_flow`` sampler): one KV-cached trunk pass per token, each followed by a head integration.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from arforge.config import ConfigError
from arforge.generators.heads.flow import FlowHead, FlowHeadConfig
from arforge.generators.raster import RasterConfig, RasterGenerator
from arforge.pretrained import register_model


@dataclass
class RasterFlowConfig(RasterConfig):
    """:class:`RasterConfig` fields (``vocab_size`` unused) plus ``latent_channels`` (token width
    ``c``) and ``head`` (:class:`FlowHeadConfig`; ``token_dim``/``cond_dim`` are set from
    ``latent_channels`` and the backbone width)."""

    latent_channels: int = 16
    head: FlowHeadConfig = field(default_factory=FlowHeadConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require_class_condition("raster_flow")
        self.require_own_order("raster_flow")
        if self.latent_channels < 1:
            raise ConfigError(f"RasterFlowConfig.latent_channels must be >= 1, got {self.latent_channels}")
        # a copy: never mutate a head config the caller may share between models
        self.head = dataclasses.replace(self.head, token_dim=self.latent_channels, cond_dim=self.backbone.dim)


@register_model
class RasterFlowGenerator(RasterGenerator):
    """Raster-order generator of continuous latent tokens (per-token flow head)."""

    config_class = RasterFlowConfig
    model_type = "raster_flow"
    default_sampler = "raster_flow"

    def __init__(self, config: RasterFlowConfig):
        super().__init__(config)
        self.head = FlowHead(config.head)

    def build_token_embedding(self, config: RasterFlowConfig) -> nn.Module:
        """Continuous tokens ``(..., c)`` are projected to the trunk width."""
        return nn.Linear(config.latent_channels, config.backbone.dim)

    def build_output(self, config: RasterFlowConfig) -> nn.Module:
        """No vocabulary: forward/prefill/decode return the trunk features the flow head is conditioned on."""
        return nn.Identity()

    def head_logits(self, h_BTC: torch.Tensor) -> torch.Tensor:
        """The flow head's condition features ``(..., dim)`` (float32)."""
        return h_BTC.float()

    def tokens(self, latents_BcHW: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, c, h, w)`` -> tokens ``(B, h * w, c)`` in raster order."""
        c, (h, w) = self.config.latent_channels, self.config.grid_size
        if latents_BcHW.ndim != 4 or tuple(latents_BcHW.shape[1:]) != (c, h, w):
            raise ValueError(f"expected latents (B, {c}, {h}, {w}), got {tuple(latents_BcHW.shape)}")
        return latents_BcHW.flatten(2).transpose(1, 2)

    def loss(self, latents_BcHW: torch.Tensor, labels_B: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Flow-matching loss of every token given the tokens before it (teacher forcing)."""
        tokens = self.tokens(latents_BcHW)
        cond_BNC = self.forward(tokens, labels_B)
        return self.head.loss(tokens.reshape(-1, tokens.shape[-1]), cond_BNC.reshape(-1, cond_BNC.shape[-1]),
                              generator=generator)
