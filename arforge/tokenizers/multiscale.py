"""``MultiScaleVQTokenizer``: VAR's multi-scale residual VQ-VAE (``tokenizer/msvq``).

Images ``(B, C, H, W)`` in ``[-1, 1]`` -> a latent ``(B, c, H/f, W/f)`` (LDM-style convolutional
encoder from ``diffusers`` blocks, then a ``quant_conv``) -> ``K`` token maps of sizes
``patch_nums`` (see :mod:`arforge.tokenizers.multiscale_quantizer`), returned as one int64
sequence ``(B, L)``, coarse to fine. :meth:`MultiScaleVQTokenizer.decode` inverts it through
``post_quant_conv`` and the decoder. The defaults are VAR's released ``vae_ch160v4096z32``
(256 px, ``f = 16``, 4096 codes of 32 dims, 10 scales); :mod:`arforge.interop.var` loads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from arforge.config import ConfigError
from arforge.pretrained import PretrainedMixin, register_model
from arforge.tokenizers.kl import diffusers_block_types
from arforge.tokenizers.multiscale_quantizer import MultiScaleQuantizer


@dataclass
class MultiScaleVQConfig:
    """Architecture of :class:`MultiScaleVQTokenizer`.

    ``patch_nums``: token-map sides, coarse to fine; the last equals the latent side
    (``image_size / downsample_factor``). ``codebook_size`` codes of ``latent_channels`` dims.
    ``block_out_channels``: encoder width per level (``f = 2 ** (levels - 1)``);
    ``layers_per_block``: resnets per encoder level (decoder: one more);
    ``encoder_attn_levels`` / ``decoder_attn_levels``: levels with self-attention (VAR: the lowest
    resolution); ``mid_block_add_attention``; ``norm_num_groups``. ``quant_conv_kernel``: kernel of
    ``quant_conv``/``post_quant_conv`` (VAR: 3). ``phi_ratio``: blend of the ``phi`` convs (0 = none);
    ``phi_count``: 0 = one per scale, 1 = shared, K = K partially shared (VAR: 4). ``commit_beta``:
    commitment weight of the VQ loss. ``in_channels``: image channels.
    """

    patch_nums: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 8, 10, 13, 16])
    codebook_size: int = 4096
    latent_channels: int = 32
    block_out_channels: list[int] = field(default_factory=lambda: [160, 160, 320, 320, 640])
    layers_per_block: int = 2
    encoder_attn_levels: list[int] = field(default_factory=lambda: [4])
    decoder_attn_levels: list[int] = field(default_factory=lambda: [4])
    mid_block_add_attention: bool = True
    norm_num_groups: int = 32
    quant_conv_kernel: int = 3
    phi_ratio: float = 0.5
    phi_count: int = 4
    commit_beta: float = 0.25
    in_channels: int = 3

    def __post_init__(self) -> None:
        if len(self.patch_nums) < 2 or list(self.patch_nums) != sorted(set(self.patch_nums)) or self.patch_nums[0] < 1:
            raise ConfigError(f"MultiScaleVQConfig.patch_nums must be >= 2 strictly increasing sizes, got {self.patch_nums}")
        for name in ("codebook_size", "latent_channels", "layers_per_block", "norm_num_groups", "in_channels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"MultiScaleVQConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.block_out_channels or any(w % self.norm_num_groups for w in self.block_out_channels):
            raise ConfigError(f"MultiScaleVQConfig.block_out_channels {self.block_out_channels} must be non-empty and "
                              f"divisible by norm_num_groups={self.norm_num_groups}")
        levels = len(self.block_out_channels)
        for name in ("encoder_attn_levels", "decoder_attn_levels"):
            if any(not 0 <= lv < levels for lv in getattr(self, name)):
                raise ConfigError(f"MultiScaleVQConfig.{name} {getattr(self, name)} must lie in [0, {levels - 1}]")
        if self.quant_conv_kernel % 2 == 0 or self.phi_count < 0:
            raise ConfigError("MultiScaleVQConfig: quant_conv_kernel must be odd and phi_count >= 0")

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)

    @property
    def seq_len(self) -> int:
        return sum(p * p for p in self.patch_nums)


@register_model
class MultiScaleVQTokenizer(nn.Module, PretrainedMixin):
    """VAR-style multi-scale residual VQ tokenizer; tokens are ``(B, L)`` sequences over all scales."""

    config_class = MultiScaleVQConfig
    model_kind = "tokenizer"
    model_type = "msvq"
    #: discrete codes (the Tokenizer protocol: continuous tokenizers set True)
    is_continuous = False

    def __init__(self, config: MultiScaleVQConfig):
        super().__init__()
        from diffusers.models.autoencoders.vae import Decoder, Encoder

        self.config = config
        down, up = diffusers_block_types(len(config.block_out_channels), config.encoder_attn_levels,
                                         config.decoder_attn_levels)
        common = dict(block_out_channels=tuple(config.block_out_channels), layers_per_block=config.layers_per_block,
                      norm_num_groups=config.norm_num_groups, act_fn="silu",
                      mid_block_add_attention=config.mid_block_add_attention)
        self.encoder = Encoder(in_channels=config.in_channels, out_channels=config.latent_channels,
                               down_block_types=down, double_z=False, **common)
        self.decoder = Decoder(in_channels=config.latent_channels, out_channels=config.in_channels,
                               up_block_types=up, **common)
        k = config.quant_conv_kernel
        self.quant_conv = nn.Conv2d(config.latent_channels, config.latent_channels, k, padding=k // 2)
        self.post_quant_conv = nn.Conv2d(config.latent_channels, config.latent_channels, k, padding=k // 2)
        self.quantize = MultiScaleQuantizer(config.codebook_size, config.latent_channels, config.patch_nums,
                                            phi_count=config.phi_count, phi_ratio=config.phi_ratio, beta=config.commit_beta)

    # ------------------------------------------------------------------ properties
    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def patch_nums(self) -> tuple[int, ...]:
        return self.quantize.patch_nums

    @property
    def seq_len(self) -> int:
        """Tokens per image ``L = sum p_k^2``."""
        return self.config.seq_len

    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    @property
    def downsample_factor(self) -> int:
        return self.config.downsample_factor

    @property
    def codebook(self) -> torch.Tensor:
        """Code vectors ``(V, C)``, detached."""
        return self.quantize.embedding.weight.detach()

    def grid_shape(self, image_size: int | tuple[int, int]) -> tuple[int, int]:
        """Token layout for caches: one row of ``L`` tokens, ``(1, L)``. Raises ``ValueError`` if
        ``image_size`` is not the size these ``patch_nums`` need."""
        H, W = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if (H, W) != (self.image_size(),) * 2:
            raise ValueError(f"image size {H}x{W} does not fit this tokenizer: patch_nums[-1]={self.patch_nums[-1]} x "
                             f"downsample factor {self.downsample_factor} needs {self.image_size()}x{self.image_size()}")
        return 1, self.seq_len

    def image_size(self) -> int:
        """The image side these ``patch_nums`` need: ``patch_nums[-1] * downsample_factor``."""
        return self.patch_nums[-1] * self.downsample_factor

    # ------------------------------------------------------------------ encode / decode
    def encode_to_latent(self, images_BCHW: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` in [-1, 1] -> latents ``f`` ``(B, c, H/f, W/f)`` (after ``quant_conv``)."""
        side = self.image_size()
        if images_BCHW.ndim != 4 or images_BCHW.shape[1] != self.config.in_channels or tuple(images_BCHW.shape[-2:]) != (side, side):
            raise ValueError(f"expected images (B, {self.config.in_channels}, {side}, {side}) in [-1, 1] "
                             f"(patch_nums[-1] x downsample factor {self.downsample_factor}), got {tuple(images_BCHW.shape)}")
        return self.quant_conv(self.encoder(images_BCHW))

    def decode_latent(self, f_hat_BChw: torch.Tensor) -> torch.Tensor:
        """``f_hat`` -> images ``(B, C, H, W)``, unclamped (roughly [-1, 1])."""
        return self.decoder(self.post_quant_conv(f_hat_BChw))

    @torch.no_grad()
    def encode(self, images_BCHW: torch.Tensor) -> torch.Tensor:
        """Images -> tokens ``(B, L)`` int64, scales concatenated coarse to fine."""
        return torch.cat(self.quantize.quantize(self.encode_to_latent(images_BCHW)), dim=1)

    def decode(self, tokens_BL: torch.Tensor) -> torch.Tensor:
        """Tokens ``(B, L)`` (or ``(B, 1, L)`` as cached) -> images ``(B, C, H, W)``, unclamped (roughly [-1, 1])."""
        return self.decode_latent(self.quantize.indices_to_fhat(self.quantize.split(tokens_BL.flatten(1).long())))

    def forward(self, images_BCHW: torch.Tensor):
        """Training pass: ``(reconstructions (unclamped), tokens (B, L), vq_loss)``."""
        q = self.quantize(self.encode_to_latent(images_BCHW))
        return self.decode_latent(q.f_hat), torch.cat(q.indices, dim=1), q.vq_loss

    # ------------------------------------------------------------------ usage
    def reset_usage(self) -> None:
        self.quantize.reset_usage()

    def usage(self) -> tuple[float, float]:
        """``(fraction of codes used in [0, 1], perplexity)`` over codes emitted in training mode since :meth:`reset_usage`."""
        return self.quantize.usage()
