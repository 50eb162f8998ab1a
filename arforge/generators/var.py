"""The ``var`` family: the shared backbone in VAR's adaLN configuration + the next-scale order.

VAR (Tian et al. 2024) predicts a multi-scale token pyramid (:class:`~arforge.generators.orders.NextScale`)
one scale per forward pass. Inputs: the class embedding plus ``pos_start`` at the first scale's
positions (the start token), and for every later scale ``word_embed`` of the tokenizer's cumulative
reconstruction downsampled to that scale
(:meth:`~arforge.tokenizers.MultiScaleQuantizer.teacher_forcing_inputs`); learned absolute
positions ``pos_1LC`` plus a level embedding ``lvl_embed``. Blocks are the shared
:class:`~arforge.generators.backbone.TransformerBlock` with affine-free LayerNorm, l2-normalised
attention with a learned per-head scale, a tanh-GELU MLP and adaLN modulated by the class embedding
(per block, or shared with per-block ``ada_gss``). The head is LayerNorm + adaLN (scale, shift) +
Linear. Attention is block-causal over scales, so the KV cache is written one scale at a time.

The trunk is :class:`~arforge.generators.next_scale_trunk.NextScaleTrunk` (shared with FlowAR); the
head is a :class:`~arforge.generators.heads.CategoricalHead` named ``head`` as in VAR.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from arforge.config import ConfigError
from arforge.generators.heads.categorical import CategoricalHead
from arforge.generators.kv_cache import KVCache
from arforge.generators.next_scale_trunk import (VAR_PATCH_NUMS_256, VAR_PATCH_NUMS_512, NextScaleTrunk,
                                                 NextScaleTrunkConfig, var_backbone)
from arforge.pretrained import PretrainedMixin, register_model

__all__ = ["VAR_PATCH_NUMS_256", "VAR_PATCH_NUMS_512", "VARConfig", "VARGenerator", "var_backbone"]


@dataclass
class VARConfig(NextScaleTrunkConfig):
    """Configuration of :class:`VARGenerator` (defaults: VAR-d16, 256 px): the trunk fields of
    :class:`NextScaleTrunkConfig` plus ``vocab_size``, the multi-scale tokenizer's codebook size."""

    vocab_size: int = 4096

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vocab_size < 2:
            raise ConfigError(f"VARConfig.vocab_size must be >= 2, got {self.vocab_size}")


@register_model
class VARGenerator(NextScaleTrunk, PretrainedMixin):
    """Class-conditional next-scale generator over a multi-scale token pyramid (categorical head)."""

    config_class = VARConfig
    model_kind = "generator"
    model_type = "var"
    default_sampler = "var"

    def __init__(self, config: VARConfig):
        super().__init__(config)
        self.head = CategoricalHead(config.backbone.dim, config.vocab_size, bias=True)
        self.init_var_weights()

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    def forward(self, x_BLCv_wo_first_l: torch.Tensor, labels_B: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``(B, L, V)`` (float32) from the tokenizer's teacher-forcing inputs
        ``(B, L - p_1^2, latent_channels)``; ``logits[:, i]`` predicts token ``i``."""
        return self.head(self.hidden(x_BLCv_wo_first_l, self.condition(labels_B)))

    def loss(self, tokens_BL: torch.Tensor, labels_B: torch.Tensor, x_BLCv_wo_first_l: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over all ``L`` tokens (VAR weights every token equally)."""
        logits = self.forward(x_BLCv_wo_first_l, labels_B)
        return F.cross_entropy(logits.flatten(0, 1), tokens_BL.flatten())

    def decode_scale(self, si: int, x_BlCv: torch.Tensor | None, cond_BD: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Logits ``(B, p_si^2, V)`` of scale ``si`` (see :meth:`decode_scale_hidden`; for VAR the
        inputs are the reconstruction so far downsampled to ``p_si``)."""
        return self.head(self.decode_scale_hidden(si, x_BlCv, cond_BD, cache))
