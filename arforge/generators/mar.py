"""The ``mar`` family: masked random-order generation of continuous tokens with a diffusion head (MAR).

A bidirectional encoder sees the class "buffer" tokens and the known tokens; a bidirectional
decoder re-inserts a learned mask token at the unknown positions and gives every position a
condition vector for the :class:`~arforge.generators.heads.DiffusionHead`, which models each
masked token's continuous value. Both stacks are the shared :class:`Backbone` in its ViT setting
(LayerNorm, GELU MLP, biased projections, learned absolute positions, no RoPE). MAR's released
weights map onto these modules key by key (:mod:`arforge.interop.mar`).

Shapes: ``tokens_BNd`` are patchified latents (``d = latent_channels * patch_size**2``, ``N`` grid
cells, row-major); ``mask_BN`` is 1 where a token is unknown (to predict).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from arforge.config import ConfigError
from arforge.generators.backbone import Backbone, BackboneConfig
from arforge.generators.heads.diffusion import DiffusionHead, DiffusionHeadConfig
from arforge.generators.orders.masked import MaskedRandomOrder
from arforge.generators.presets import PresetMixin
from arforge.pretrained import PretrainedMixin, register_model


def vit_backbone(dim: int = 768, depth: int = 12, heads: int = 12, dropout: float = 0.1) -> BackboneConfig:
    """A timm-ViT-style block stack (MAR's encoder/decoder): LayerNorm eps 1e-6, GELU MLP x4, biases."""
    return BackboneConfig(dim=dim, n_layer=depth, n_head=heads, norm_type="layer", mlp_type="gelu", mlp_ratio=4.0,
                          qkv_bias=True, proj_bias=True, mlp_bias=True, norm_eps=1e-6,
                          attn_dropout_p=dropout, resid_dropout_p=dropout)


@dataclass
class MARConfig:
    """Configuration of :class:`MARGenerator` (defaults: MAR-B on 16x16 KL-16 latents; MAR's argument names).

    ``latent_channels`` / ``patch_size``: token width ``latent_channels * patch_size**2``;
    ``grid_size``: token grid ``(h, w)`` after patchifying. ``buffer_size``: class-token buffer
    prepended to the sequence. ``label_drop_prob``: probability of replacing the class by the learned
    ``fake_latent`` in training (enables CFG). ``mask_ratio_min``: lower end of the training masking
    ratio. ``encoder_*`` / ``decoder_*``: the two ViT stacks; ``attn_dropout`` / ``proj_dropout``:
    their dropout. ``diffloss_d`` / ``diffloss_w``: head depth / width; ``diffloss_x0_clip``: clamp of
    the head's predicted clean token at sampling (``None`` = MAR; see :class:`DiffusionHeadConfig`); ``num_sampling_steps``:
    respaced head steps at sampling; ``diffusion_batch_mul``: (t, noise) draws per token in training.
    """

    latent_channels: int = 16
    patch_size: int = 1
    grid_size: tuple[int, int] = (16, 16)
    num_classes: int = 1000
    buffer_size: int = 64
    label_drop_prob: float = 0.1
    mask_ratio_min: float = 0.7
    encoder_embed_dim: int = 768
    encoder_depth: int = 12
    encoder_num_heads: int = 12
    decoder_embed_dim: int = 768
    decoder_depth: int = 12
    decoder_num_heads: int = 12
    attn_dropout: float = 0.1
    proj_dropout: float = 0.1
    diffloss_d: int = 6
    diffloss_w: int = 1024
    diffloss_x0_clip: Optional[float] = None
    num_sampling_steps: int = 100
    diffusion_batch_mul: int = 4
    learn_sigma: bool = True

    def __post_init__(self) -> None:
        self.grid_size = tuple(int(s) for s in self.grid_size)
        for name in ("latent_channels", "patch_size", "num_classes", "buffer_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"MARConfig.{name} must be >= 1, got {getattr(self, name)}")
        self.encoder, self.decoder, self.head  # noqa: B018  (validate the derived configs now)

    @property
    def encoder(self) -> BackboneConfig:
        cfg = vit_backbone(self.encoder_embed_dim, self.encoder_depth, self.encoder_num_heads, self.proj_dropout)
        cfg.attn_dropout_p = self.attn_dropout
        return cfg

    @property
    def decoder(self) -> BackboneConfig:
        cfg = vit_backbone(self.decoder_embed_dim, self.decoder_depth, self.decoder_num_heads, self.proj_dropout)
        cfg.attn_dropout_p = self.attn_dropout
        return cfg

    @property
    def head(self) -> DiffusionHeadConfig:
        return DiffusionHeadConfig(token_dim=self.token_dim, cond_dim=self.decoder_embed_dim, width=self.diffloss_w,
                                   depth=self.diffloss_d, sampling_steps=self.num_sampling_steps,
                                   learn_sigma=self.learn_sigma, batch_mul=self.diffusion_batch_mul,
                                   x0_clip=self.diffloss_x0_clip)

    @property
    def token_dim(self) -> int:
        return self.latent_channels * self.patch_size**2

    @property
    def num_tokens(self) -> int:
        return self.grid_size[0] * self.grid_size[1]


@register_model
class MARGenerator(PresetMixin, nn.Module, PretrainedMixin):
    """MAR: bidirectional masked encoder-decoder + per-token diffusion head."""

    preset_family = "mar"

    config_class = MARConfig
    model_kind = "generator"
    model_type = "mar"
    default_sampler = "mar"

    def __init__(self, config: MARConfig):
        super().__init__()
        self.config = config
        enc, dec = config.encoder_embed_dim, config.decoder_embed_dim
        L = config.buffer_size + config.num_tokens
        self.class_emb = nn.Embedding(config.num_classes, enc)
        self.fake_latent = nn.Parameter(torch.zeros(1, enc))
        self.z_proj = nn.Linear(config.token_dim, enc)
        self.z_proj_ln = nn.LayerNorm(enc, eps=1e-6)
        self.encoder_pos_embed_learned = nn.Parameter(torch.zeros(1, L, enc))
        self.encoder = Backbone(config.encoder)
        self.decoder_embed = nn.Linear(enc, dec)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dec))
        self.decoder_pos_embed_learned = nn.Parameter(torch.zeros(1, L, dec))
        self.decoder = Backbone(config.decoder)
        self.diffusion_pos_embed_learned = nn.Parameter(torch.zeros(1, config.num_tokens, dec))
        self.diffloss = DiffusionHead(config.head)
        self.order = MaskedRandomOrder(config.grid_size, config.mask_ratio_min)
        self.init_weights()

    @property
    def head(self) -> DiffusionHead:
        """The per-token diffusion head (stored as ``diffloss``, MAR's parameter name)."""
        return self.diffloss

    def init_weights(self) -> None:
        """MAR's init: N(0, 0.02) embeddings/positions/mask token, Xavier linears, unit LayerNorms."""
        for p in (self.class_emb.weight, self.fake_latent, self.mask_token, self.encoder_pos_embed_learned,
                  self.decoder_pos_embed_learned, self.diffusion_pos_embed_learned):
            nn.init.normal_(p, std=0.02)
        for module in [self.z_proj, self.z_proj_ln, self.encoder, self.decoder_embed, self.decoder]:
            for m in module.modules() if isinstance(module, nn.Module) else []:
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
        self.diffloss.net.init_weights()

    # ------------------------------------------------------------------ shapes
    @property
    def num_tokens(self) -> int:
        return self.config.num_tokens

    def patchify(self, latents_BCHW: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, c, H, W)`` -> tokens ``(B, N, c * p * p)`` (row-major cells; MAR's layout)."""
        B, C, H, W = latents_BCHW.shape
        p = self.config.patch_size
        if (H // p, W // p) != self.config.grid_size or C != self.config.latent_channels:
            raise ValueError(f"expected latents (B, {self.config.latent_channels}, {self.config.grid_size[0] * p}, "
                             f"{self.config.grid_size[1] * p}), got {tuple(latents_BCHW.shape)}")
        x = latents_BCHW.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(B, (H // p) * (W // p), C * p * p)

    def unpatchify(self, tokens_BNd: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`patchify`."""
        B = tokens_BNd.shape[0]
        h, w = self.config.grid_size
        p, C = self.config.patch_size, self.config.latent_channels
        x = tokens_BNd.reshape(B, h, w, C, p, p).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(B, C, h * p, w * p)

    # ------------------------------------------------------------------ conditions
    def class_embedding(self, labels_B: torch.Tensor, drop_prob: float = 0.0,
                        generator: torch.Generator | None = None) -> torch.Tensor:
        """``class_emb(labels)``; rows are replaced by ``fake_latent`` with probability ``drop_prob``."""
        if labels_B.numel() and (labels_B.min() < 0 or labels_B.max() >= self.config.num_classes):
            raise ValueError(f"class labels must lie in [0, {self.config.num_classes - 1}]")
        emb = self.class_emb(labels_B)
        if drop_prob > 0:
            drop = torch.rand(labels_B.shape[0], generator=generator, device=labels_B.device) < drop_prob
            emb = torch.where(drop[:, None], self.fake_latent.to(emb.dtype), emb)
        return emb

    def null_embedding(self, batch: int) -> torch.Tensor:
        """The unconditional (CFG) embedding ``(B, D)``."""
        return self.fake_latent.expand(batch, -1)

    # ------------------------------------------------------------------ trunk
    @staticmethod
    def _full_mask(T: int, device) -> torch.Tensor:
        return torch.ones(1, 1, T, T, dtype=torch.bool, device=device)

    def encode(self, tokens_BNd: torch.Tensor, mask_BN: torch.Tensor, class_emb_BD: torch.Tensor) -> torch.Tensor:
        """Encoder output ``(B, buffer + #known, D)`` over the buffer and the known tokens (every row
        must have the same number of unknown tokens)."""
        B, N, _ = tokens_BNd.shape
        P = self.config.buffer_size
        x = self.z_proj(tokens_BNd)
        x = torch.cat([class_emb_BD[:, None].expand(B, P, -1).to(x.dtype), x], dim=1)
        x = self.z_proj_ln(x + self.encoder_pos_embed_learned)
        known = torch.cat([torch.ones(B, P, dtype=torch.bool, device=x.device), mask_BN < 0.5], dim=1)
        counts = known.sum(1)
        if not bool((counts == counts[0]).all()):
            raise ValueError("every row must have the same number of masked tokens")
        keep_BK = known.nonzero()[:, 1].view(B, -1)
        x = torch.gather(x, 1, keep_BK[..., None].expand(-1, -1, x.shape[-1]))
        return self.encoder.run_layers(x, None, self._full_mask(x.shape[1], x.device))

    def decode(self, enc_BKD: torch.Tensor, mask_BN: torch.Tensor) -> torch.Tensor:
        """Per-position head conditions ``(B, N, D_dec)``: mask tokens re-inserted at unknown positions."""
        B, N = mask_BN.shape
        P = self.config.buffer_size
        x = self.decoder_embed(enc_BKD)
        known = torch.cat([torch.ones(B, P, dtype=torch.bool, device=x.device), mask_BN < 0.5], dim=1)
        full = self.mask_token.to(x.dtype).expand(B, P + N, -1).clone()
        keep_BK = known.nonzero()[:, 1].view(B, -1)
        full.scatter_(1, keep_BK[..., None].expand(-1, -1, x.shape[-1]), x)
        h = self.decoder.run_layers(full + self.decoder_pos_embed_learned, None, self._full_mask(P + N, x.device))
        return h[:, P:] + self.diffusion_pos_embed_learned

    def conditions(self, tokens_BNd, mask_BN, class_emb_BD) -> torch.Tensor:
        """Encoder then decoder: the head condition of every position ``(B, N, D_dec)``."""
        return self.decode(self.encode(tokens_BNd, mask_BN, class_emb_BD), mask_BN)

    # ------------------------------------------------------------------ training
    def loss(self, latents_BCHW: torch.Tensor, labels_B: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """MAR's training loss: random order, random masking ratio, diffusion loss on the masked tokens."""
        tokens = self.patchify(latents_BCHW)
        B = tokens.shape[0]
        orders = self.order.sample_orders(B, generator, tokens.device)
        mask = self.order.training_mask(orders, generator)
        emb = self.class_embedding(labels_B, self.config.label_drop_prob if self.training else 0.0, generator)
        z = self.conditions(tokens, mask, emb)
        return self.diffloss.loss(tokens.reshape(B * self.num_tokens, -1), z.reshape(B * self.num_tokens, -1),
                                  weight_N=mask.reshape(-1), generator=generator)
