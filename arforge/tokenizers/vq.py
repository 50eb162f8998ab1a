"""``VQTokenizer``: the LlamaGen-compatible VQ image tokenizer (conv encoder, nearest-code VQ, conv decoder).

Images ``(B, C, H, W)`` in ``[-1, 1]`` map to an ``(H / f, W / f)`` grid of int64 codes with
``f = 2 ** (len(encoder_ch_mult) - 1)``. Parameter names follow LlamaGen's ``VQModel``, so its
checkpoints load strictly (see :mod:`arforge.interop.llamagen_vq`); the defaults are LlamaGen's
``VQ_16`` (codebook 16384 x 8, l2-normalised codes, ch 128, ch_mult ``[1, 1, 2, 2, 4]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from arforge.config import ConfigError
from arforge.pretrained import PretrainedMixin, register_model
from arforge.tokenizers.modules import Decoder, Encoder
from arforge.tokenizers.quantizer import QuantizerOutput, VectorQuantizer


@dataclass
class VQConfig:
    """Architecture and quantizer settings of :class:`VQTokenizer`.

    ``codebook_size`` (V) codes of ``codebook_embed_dim`` (D) dimensions, l2-normalised if
    ``codebook_l2_norm``. ``commit_loss_beta``: commitment weight. ``entropy_loss_ratio`` /
    ``entropy_temperature``: LlamaGen's codebook entropy loss (0 = off). ``codebook_show_usage``:
    keep LlamaGen's ``quantize.codebook_used`` buffer (must match the checkpoint).
    ``encoder_ch_mult`` / ``decoder_ch_mult``: per-level width multipliers of ``ch`` (same length;
    the downsample factor is ``2 ** (len - 1)``). ``num_res_blocks``: resnet blocks per encoder level
    (the decoder has one more). ``z_channels``: encoder output / decoder input width.
    ``attn_levels``: resolution levels (0 = full resolution) with attention after each resnet
    block; ``None`` = the lowest resolution only, as in LlamaGen. ``norm_groups``: GroupNorm groups
    (LlamaGen: 32; every width must be divisible by it). ``in_channels``: image channels (in and out).
    ``dropout_p``: dropout inside resnet blocks.
    """

    codebook_size: int = 16384
    codebook_embed_dim: int = 8
    codebook_l2_norm: bool = True
    codebook_show_usage: bool = True
    commit_loss_beta: float = 0.25
    entropy_loss_ratio: float = 0.0
    entropy_temperature: float = 0.01
    encoder_ch_mult: list[int] = field(default_factory=lambda: [1, 1, 2, 2, 4])
    decoder_ch_mult: list[int] = field(default_factory=lambda: [1, 1, 2, 2, 4])
    z_channels: int = 256
    ch: int = 128
    num_res_blocks: int = 2
    attn_levels: Optional[list[int]] = None
    norm_groups: int = 32
    in_channels: int = 3
    dropout_p: float = 0.0

    def __post_init__(self) -> None:
        positive = ("codebook_size", "codebook_embed_dim", "z_channels", "ch", "num_res_blocks", "norm_groups", "in_channels")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"VQConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.encoder_ch_mult or not self.decoder_ch_mult:
            raise ConfigError("VQConfig.encoder_ch_mult and decoder_ch_mult must be non-empty lists, e.g. [1, 2, 2]")
        if len(self.encoder_ch_mult) != len(self.decoder_ch_mult):
            raise ConfigError(
                f"VQConfig: encoder_ch_mult {self.encoder_ch_mult} and decoder_ch_mult {self.decoder_ch_mult} must have the "
                "same length (the decoder must upsample as often as the encoder downsamples)"
            )
        if any(m < 1 for m in [*self.encoder_ch_mult, *self.decoder_ch_mult]):
            raise ConfigError("VQConfig: channel multipliers must be >= 1")
        widths = {self.ch * m for m in [*self.encoder_ch_mult, *self.decoder_ch_mult]} | {self.ch}
        bad = sorted(w for w in widths if w % self.norm_groups)
        if bad:
            raise ConfigError(
                f"VQConfig: GroupNorm({self.norm_groups}) needs every width divisible by {self.norm_groups}, but "
                f"ch={self.ch} x ch_mult gives {bad}; use a multiple of {self.norm_groups} for ch or lower norm_groups"
            )
        levels = len(self.encoder_ch_mult)
        if self.attn_levels is not None and any(not 0 <= lv < levels for lv in self.attn_levels):
            raise ConfigError(f"VQConfig.attn_levels {self.attn_levels} must lie in [0, {levels - 1}] (one per ch_mult entry)")
        if self.commit_loss_beta < 0 or self.entropy_loss_ratio < 0 or self.entropy_temperature <= 0:
            raise ConfigError("VQConfig: commit_loss_beta and entropy_loss_ratio must be >= 0, entropy_temperature > 0")
        if not 0.0 <= self.dropout_p < 1.0:
            raise ConfigError(f"VQConfig.dropout_p must lie in [0, 1), got {self.dropout_p}")

    @property
    def resolved_attn_levels(self) -> list[int]:
        """Levels with attention (``attn_levels`` or LlamaGen's lowest-resolution-only default)."""
        return list(self.attn_levels) if self.attn_levels is not None else [len(self.encoder_ch_mult) - 1]


@dataclass
class VQOutput:
    """Result of :meth:`VQTokenizer.forward`.

    ``recon``: reconstructions ``(B, C, H, W)`` (unclamped, roughly [-1, 1]); ``codes``: int64
    ``(B, h, w)``; ``codebook_loss``, ``commit_loss`` (times beta), ``entropy_loss`` (times its
    ratio): scalar float32 tensors whose sum is the quantizer's training loss.
    """

    recon: torch.Tensor
    codes: torch.Tensor
    codebook_loss: torch.Tensor
    commit_loss: torch.Tensor
    entropy_loss: torch.Tensor


@register_model
class VQTokenizer(nn.Module, PretrainedMixin):
    """LlamaGen-compatible VQ tokenizer (``tokenizer/vq``). Build from a :class:`VQConfig`."""

    config_class = VQConfig
    model_kind = "tokenizer"
    model_type = "vq"
    #: discrete codes (the Tokenizer protocol: continuous tokenizers set True)
    is_continuous = False

    def __init__(self, config: VQConfig):
        super().__init__()
        self.config = config
        attn_levels = config.resolved_attn_levels
        self.encoder = Encoder(
            in_channels=config.in_channels, ch=config.ch, ch_mult=config.encoder_ch_mult,
            num_res_blocks=config.num_res_blocks, z_channels=config.z_channels, attn_levels=attn_levels,
            dropout=config.dropout_p, norm_groups=config.norm_groups,
        )
        self.decoder = Decoder(
            out_channels=config.in_channels, ch=config.ch, ch_mult=config.decoder_ch_mult,
            num_res_blocks=config.num_res_blocks, z_channels=config.z_channels, attn_levels=attn_levels,
            dropout=config.dropout_p, norm_groups=config.norm_groups,
        )
        self.quantize = VectorQuantizer(
            config.codebook_size, config.codebook_embed_dim, beta=config.commit_loss_beta,
            entropy_loss_ratio=config.entropy_loss_ratio, l2_norm=config.codebook_l2_norm,
            show_usage=config.codebook_show_usage, entropy_temperature=config.entropy_temperature,
        )
        self.quant_conv = nn.Conv2d(config.z_channels, config.codebook_embed_dim, kernel_size=1)
        self.post_quant_conv = nn.Conv2d(config.codebook_embed_dim, config.z_channels, kernel_size=1)

    # ------------------------------------------------------------------ properties
    @property
    def codebook_size(self) -> int:
        """Number of codes ``V``."""
        return self.config.codebook_size

    @property
    def embed_dim(self) -> int:
        """Code dimension ``D``."""
        return self.config.codebook_embed_dim

    @property
    def codebook(self) -> torch.Tensor:
        """Code vectors ``(V, D)`` as the decoder sees them (l2-normalised if ``codebook_l2_norm``), detached."""
        return self.quantize.codebook.detach()

    @property
    def downsample_factor(self) -> int:
        """Pixels per token along each side: ``2 ** (len(encoder_ch_mult) - 1)``."""
        return 2 ** (len(self.config.encoder_ch_mult) - 1)

    def grid_shape(self, image_size: int | tuple[int, int]) -> tuple[int, int]:
        """Token grid ``(h, w)`` for images of ``image_size`` (int = square, or ``(H, W)``) pixels.

        Raises ``ValueError`` if a side is not divisible by :attr:`downsample_factor`.
        """
        height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        f = self.downsample_factor
        if height % f or width % f:
            raise ValueError(
                f"image size {height}x{width} is not divisible by the tokenizer's downsample factor {f}; "
                f"resize or crop to a multiple of {f}"
            )
        return height // f, width // f

    # ------------------------------------------------------------------ pieces
    def _check_images(self, images_BCHW: torch.Tensor) -> None:
        if images_BCHW.ndim != 4 or images_BCHW.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected images of shape (B, {self.config.in_channels}, H, W) in [-1, 1], got {tuple(images_BCHW.shape)}"
            )
        self.grid_shape(tuple(images_BCHW.shape[-2:]))

    def encode_to_latent(self, images_BCHW: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` in [-1, 1] -> pre-quantization latents ``(B, D, h, w)`` (after ``quant_conv``, not normalised)."""
        self._check_images(images_BCHW)
        return self.quant_conv(self.encoder(images_BCHW))

    def decode_latent(self, z_q_BDhw: torch.Tensor) -> torch.Tensor:
        """Quantized latents ``(B, D, h, w)`` -> images ``(B, C, h*f, w*f)``, unclamped (roughly [-1, 1])."""
        return self.decoder(self.post_quant_conv(z_q_BDhw))

    def codes_to_latent(self, codes_Bhw: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, h, w)`` -> code vectors ``(B, D, h, w)`` (normalised if ``codebook_l2_norm``)."""
        return self.quantize.lookup(codes_Bhw)

    # ------------------------------------------------------------------ public API
    @torch.no_grad()
    def encode(self, images_BCHW: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` float in [-1, 1] -> codes ``(B, H/f, W/f)`` int64 in ``[0, V)``."""
        return self.quantize(self.encode_to_latent(images_BCHW)).codes

    def decode(self, codes_Bhw: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, h, w)`` int -> images ``(B, C, h*f, w*f)`` float, unclamped (roughly [-1, 1])."""
        return self.decode_latent(self.codes_to_latent(codes_Bhw))

    def forward(self, images_BCHW: torch.Tensor) -> VQOutput:
        """Encode, quantize (straight-through) and decode; returns reconstructions, codes and VQ losses."""
        q: QuantizerOutput = self.quantize(self.encode_to_latent(images_BCHW))
        return VQOutput(
            recon=self.decode_latent(q.z_q), codes=q.codes, codebook_loss=q.codebook_loss,
            commit_loss=q.commit_loss, entropy_loss=q.entropy_loss,
        )

    # ------------------------------------------------------------------ usage
    def reset_usage(self) -> None:
        """Start a new codebook-usage window (see :meth:`usage`)."""
        self.quantize.reset_usage()

    def usage(self) -> tuple[float, float]:
        """``(fraction of codes used in [0, 1], perplexity)`` over codes emitted in training mode since :meth:`reset_usage`."""
        return self.quantize.usage()
