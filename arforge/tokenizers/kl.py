"""``KLTokenizer``: continuous latents from a KL-regularised autoencoder (``diffusers.AutoencoderKL``).

Images ``(B, C, H, W)`` in ``[-1, 1]`` map to latents ``(B, latent_channels, H / f, W / f)`` with
``f = 2 ** (len(block_out_channels) - 1)``, multiplied by ``scaling_factor`` so that they have
roughly unit variance (MAR's KL-16: 0.2325). :meth:`KLTokenizer.decode` divides it back out. The
network itself is ``diffusers.AutoencoderKL`` (stored under ``vae.``), not a re-implementation;
:mod:`arforge.interop.mar_vae` converts MAR's LDM-layout ``kl16.ckpt`` into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from arforge.config import ConfigError
from arforge.pretrained import PretrainedMixin, register_model


@dataclass
class KLConfig:
    """Architecture of :class:`KLTokenizer` (defaults: MAR's KL-16, 256 px -> 16 x 16 x 16).

    ``block_out_channels``: width per resolution level (level 0 = full resolution; the encoder
    downsamples between levels). ``layers_per_block``: resnet blocks per encoder level (the
    diffusers decoder uses one more). ``encoder_attn_levels`` / ``decoder_attn_levels``: levels whose
    blocks end with self-attention (MAR KL-16: the encoder's lowest-resolution level only, none in the
    decoder). ``mid_block_add_attention``: attention in both mid blocks. ``norm_num_groups``: GroupNorm
    groups (every width must be divisible by it). ``latent_channels``: channels of the latent grid.
    ``scaling_factor``: multiplies latents on encode (divides on decode). ``in_channels``: image channels.
    """

    in_channels: int = 3
    latent_channels: int = 16
    block_out_channels: list[int] = field(default_factory=lambda: [128, 128, 256, 256, 512])
    layers_per_block: int = 2
    encoder_attn_levels: list[int] = field(default_factory=lambda: [4])
    decoder_attn_levels: list[int] = field(default_factory=list)
    mid_block_add_attention: bool = True
    norm_num_groups: int = 32
    scaling_factor: float = 0.2325

    def __post_init__(self) -> None:
        for name in ("in_channels", "latent_channels", "layers_per_block", "norm_num_groups"):
            if getattr(self, name) < 1:
                raise ConfigError(f"KLConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.block_out_channels:
            raise ConfigError("KLConfig.block_out_channels must be a non-empty list of widths, e.g. [32, 64]")
        bad = [w for w in self.block_out_channels if w < 1 or w % self.norm_num_groups]
        if bad:
            raise ConfigError(
                f"KLConfig: GroupNorm({self.norm_num_groups}) needs every width in block_out_channels divisible by "
                f"{self.norm_num_groups}; {bad} are not (lower norm_num_groups or change the widths)"
            )
        levels = len(self.block_out_channels)
        for name in ("encoder_attn_levels", "decoder_attn_levels"):
            if any(not 0 <= lv < levels for lv in getattr(self, name)):
                raise ConfigError(f"KLConfig.{name} {getattr(self, name)} must lie in [0, {levels - 1}] (one per width)")
        if not self.scaling_factor > 0:
            raise ConfigError(f"KLConfig.scaling_factor must be > 0, got {self.scaling_factor}")

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)


def diffusers_block_types(levels: int, encoder_attn_levels, decoder_attn_levels) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``diffusers`` encoder/decoder block type names for ``levels`` resolution levels (level 0 =
    full resolution), with self-attention at the given levels."""
    down = tuple("AttnDownEncoderBlock2D" if lv in encoder_attn_levels else "DownEncoderBlock2D" for lv in range(levels))
    # diffusers lists decoder blocks from the lowest resolution up: block i is level L-1-i
    up = tuple("AttnUpDecoderBlock2D" if (levels - 1 - i) in decoder_attn_levels else "UpDecoderBlock2D"
               for i in range(levels))
    return down, up


@dataclass
class KLOutput:
    """Result of :meth:`KLTokenizer.forward`: reconstructions ``(B, C, H, W)`` (unclamped), the
    scaled latents that were decoded ``(B, c, h, w)``, and the posterior's KL to N(0, I) summed over
    latent elements and averaged over the batch (a scalar, in nats)."""

    recon: torch.Tensor
    latents: torch.Tensor
    kl: torch.Tensor


@register_model
class KLTokenizer(nn.Module, PretrainedMixin):
    """Continuous tokenizer (``tokenizer/kl``) around ``diffusers.AutoencoderKL``."""

    config_class = KLConfig
    model_kind = "tokenizer"
    model_type = "kl"
    is_continuous = True

    def __init__(self, config: KLConfig):
        super().__init__()
        from diffusers import AutoencoderKL

        self.config = config
        down, up = diffusers_block_types(len(config.block_out_channels), config.encoder_attn_levels,
                                         config.decoder_attn_levels)
        self.vae = AutoencoderKL(
            in_channels=config.in_channels, out_channels=config.in_channels, down_block_types=down, up_block_types=up,
            block_out_channels=tuple(config.block_out_channels), layers_per_block=config.layers_per_block,
            latent_channels=config.latent_channels, norm_num_groups=config.norm_num_groups,
            scaling_factor=config.scaling_factor, mid_block_add_attention=config.mid_block_add_attention,
        )

    # ------------------------------------------------------------------ properties
    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    @property
    def scaling_factor(self) -> float:
        return self.config.scaling_factor

    def grid_shape(self, image_size: int | tuple[int, int]) -> tuple[int, int]:
        """Latent grid ``(h, w)`` for images of ``image_size`` pixels (int or ``(H, W)``)."""
        H, W = (image_size, image_size) if isinstance(image_size, int) else image_size
        f = self.config.downsample_factor
        if H % f or W % f:
            raise ValueError(f"image size {H}x{W} is not divisible by the downsample factor {f}")
        return H // f, W // f

    # ------------------------------------------------------------------ encode / decode
    def posterior(self, images_BCHW: torch.Tensor):
        """The diagonal Gaussian posterior over *unscaled* latents (diffusers ``DiagonalGaussianDistribution``)."""
        if images_BCHW.ndim != 4 or images_BCHW.shape[1] != self.config.in_channels:
            raise ValueError(f"expected images (B, {self.config.in_channels}, H, W) in [-1, 1], got {tuple(images_BCHW.shape)}")
        return self.vae.encode(images_BCHW).latent_dist

    def encode(self, images_BCHW: torch.Tensor, *, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Scaled latents ``(B, c, H/f, W/f)``: the posterior mean, or a draw from it if ``sample``."""
        dist = self.posterior(images_BCHW)
        z = dist.sample(generator=generator) if sample else dist.mode()
        return z * self.scaling_factor

    def decode(self, latents_BcHW: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` (unclamped, roughly ``[-1, 1]``) from scaled latents."""
        if latents_BcHW.ndim != 4 or latents_BcHW.shape[1] != self.latent_channels:
            raise ValueError(f"expected latents (B, {self.latent_channels}, h, w), got {tuple(latents_BcHW.shape)}")
        return self.vae.decode(latents_BcHW / self.scaling_factor).sample

    def forward(self, images_BCHW: torch.Tensor, generator: torch.Generator | None = None) -> KLOutput:
        """Encode (sampling the posterior in training mode, its mean in eval mode) and decode."""
        dist = self.posterior(images_BCHW)
        z = dist.sample(generator=generator) if self.training else dist.mode()
        kl = dist.kl().mean()
        latents = z * self.scaling_factor
        return KLOutput(recon=self.vae.decode(z).sample, latents=latents, kl=kl)
