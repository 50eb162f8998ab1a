"""The ``flowar`` family: FlowAR-style continuous next-scale generation.

A continuous latent ``z`` ``(B, c, H, W)`` (e.g. from :class:`~arforge.tokenizers.KLTokenizer`)
gives a pyramid of scales ``z_k = area_downsample(z, p_k)`` (``z_K = z``). The trunk is the next-
scale transformer shared with VAR (:class:`~arforge.generators.var.NextScaleTrunk`: block-causal
over scales, class adaLN); scale ``k``'s inputs are the previous scale upsampled (bicubic) to
``p_k``; the start token stands for the first scale. A flow-matching head
(:class:`~arforge.generators.heads.FlowHead`, shared with the continuous-token family) generates
every token of scale ``k`` conditioned on the trunk feature at its position. Sampling: one trunk
pass per scale, then one batched head integration over all ``p_k^2`` tokens of the scale.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from arforge.config import ConfigError
from arforge.generators.heads.flow import FlowHead, FlowHeadConfig
from arforge.generators.next_scale_trunk import NextScaleTrunk, NextScaleTrunkConfig
from arforge.pretrained import PretrainedMixin, register_model


@dataclass
class FlowARConfig(NextScaleTrunkConfig):
    """Trunk fields of :class:`NextScaleTrunkConfig` plus ``grid_size`` (the latent grid; must be
    ``(p_K, p_K)``) and ``head`` (:class:`FlowHeadConfig`; ``token_dim`` / ``cond_dim`` are set
    from ``latent_channels`` / the trunk width)."""

    grid_size: tuple[int, int] = (16, 16)
    head: FlowHeadConfig = field(default_factory=FlowHeadConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.grid_size = tuple(int(s) for s in self.grid_size)
        if self.grid_size != (self.patch_nums[-1], self.patch_nums[-1]):
            raise ConfigError(f"FlowARConfig: the last patch size {self.patch_nums[-1]} must equal the latent grid "
                              f"{self.grid_size}; change patch_nums")
        # a copy: never mutate a head config the caller may share between models
        self.head = dataclasses.replace(self.head, token_dim=self.latent_channels, cond_dim=self.backbone.dim)


@register_model
class FlowARGenerator(NextScaleTrunk, PretrainedMixin):
    """Next-scale trunk + per-token flow-matching head over continuous latents."""

    config_class = FlowARConfig
    model_kind = "generator"
    model_type = "flowar"
    default_sampler = "flowar"

    def __init__(self, config: FlowARConfig):
        super().__init__(config)
        self.init_var_weights()
        self.head = FlowHead(config.head)

    # ------------------------------------------------------------------ pyramid
    def scales(self, latents_BcHW: torch.Tensor) -> list[torch.Tensor]:
        """``[z_1, ..., z_K]``: the latent area-downsampled to every patch size (``z_K`` = the latent)."""
        c, side = self.config.latent_channels, self.order.patch_nums[-1]
        if latents_BcHW.ndim != 4 or tuple(latents_BcHW.shape[1:]) != (c, side, side):
            raise ValueError(f"expected latents (B, {c}, {side}, {side}), got {tuple(latents_BcHW.shape)}")
        return [F.interpolate(latents_BcHW, size=(p, p), mode="area") if p != side else latents_BcHW
                for p in self.order.patch_nums]

    def next_input(self, si: int, z_Bcpp: torch.Tensor) -> torch.Tensor:
        """Inputs of scale ``si + 1``: scale ``si`` bicubic-upsampled, flattened ``(B, p^2, c)``."""
        p = self.order.patch_nums[si + 1]
        return F.interpolate(z_Bcpp, size=(p, p), mode="bicubic").flatten(2).transpose(1, 2)

    def teacher_forcing_inputs(self, scales: list[torch.Tensor]) -> torch.Tensor:
        """Inputs of scales ``2..K`` from the ground-truth pyramid, ``(B, L - p_1^2, c)``."""
        return torch.cat([self.next_input(si, z) for si, z in enumerate(scales[:-1])], dim=1)

    # ------------------------------------------------------------------ training
    def loss(self, latents_BcHW: torch.Tensor, labels_B: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Flow-matching loss of every token of every scale (mean over tokens)."""
        scales = self.scales(latents_BcHW)
        h_BLC = self.hidden(self.teacher_forcing_inputs(scales), self.condition(labels_B))
        targets_BLc = torch.cat([z.flatten(2).transpose(1, 2) for z in scales], dim=1)
        return self.head.loss(targets_BLc.reshape(-1, targets_BLc.shape[-1]), h_BLC.reshape(-1, h_BLC.shape[-1]),
                              generator=generator)
