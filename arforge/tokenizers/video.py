"""Causal 3D-convolution VQ tokenizer for videos (and images: a single frame is a valid video).

Every convolution is **causal in time**: it pads the past with copies of the first frame and never
looks ahead, so frame ``t``'s codes depend on frames ``<= t`` only. With temporal downsampling by
``s`` the first frame is encoded alone and later frames in groups of ``s`` (MAGVIT-v2 / CV-VAE
layout): a clip of ``1 + k s`` frames gives ``1 + k`` latent frames, and an image (``T = 1``) gives
one, so the same tokenizer serves images and videos. Norms are per frame (GroupNorm over ``C, H, W``),
which keeps causality. The quantizer is the shared l2-normalised :class:`VectorQuantizer`, applied
frame by frame. Tensors: videos are ``(B, T, C, H, W)`` in ``[-1, 1]`` (the dataset layout), codes
``(B, t, h, w)``; images ``(B, C, H, W)`` <-> codes ``(B, h, w)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from arforge.config import ConfigError
from arforge.pretrained import PretrainedMixin, register_model
from arforge.tokenizers.modules import swish
from arforge.tokenizers.quantizer import QuantizerOutput, VectorQuantizer
from arforge.tokenizers.vq import VQOutput


@dataclass
class VideoVQConfig:
    """Architecture of :class:`VideoVQTokenizer`.

    ``ch`` / ``ch_mult``: width per resolution level (spatial downsample ``2 ** (len - 1)``);
    ``temporal_down``: for each of the ``len(ch_mult) - 1`` downsampling steps, whether time is
    halved too (temporal factor ``2 ** sum``). ``temporal_kernel``: per level, the time extent of the
    convolutions (1 = per-frame 2D convolutions, cheap at full resolution; the downsampling steps that
    halve time always use 3). ``num_res_blocks``: residual blocks per level.
    ``z_channels``: encoder output width. ``codebook_*`` / ``commit_loss_beta`` / ``entropy_loss_ratio``:
    as :class:`~arforge.tokenizers.vq.VQConfig`. ``in_channels``: frame channels.
    """

    in_channels: int = 3
    ch: int = 32
    ch_mult: list[int] = field(default_factory=lambda: [1, 2, 2])
    temporal_down: list[bool] = field(default_factory=lambda: [False, True])
    temporal_kernel: list[int] = field(default_factory=lambda: [1, 3, 3])
    num_res_blocks: int = 1
    norm_groups: int = 8
    z_channels: int = 32
    codebook_size: int = 1024
    codebook_embed_dim: int = 8
    codebook_l2_norm: bool = True
    commit_loss_beta: float = 0.25
    entropy_loss_ratio: float = 0.0

    def __post_init__(self) -> None:
        for name in ("in_channels", "ch", "num_res_blocks", "norm_groups", "z_channels", "codebook_size", "codebook_embed_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"VideoVQConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.ch_mult or min(self.ch_mult) < 1:
            raise ConfigError(f"VideoVQConfig.ch_mult must be positive multipliers, got {self.ch_mult}")
        if len(self.temporal_down) != len(self.ch_mult) - 1:
            raise ConfigError(f"VideoVQConfig.temporal_down needs one entry per downsampling step "
                              f"({len(self.ch_mult) - 1} for ch_mult {self.ch_mult}), got {self.temporal_down}")
        if len(self.temporal_kernel) != len(self.ch_mult) or min(self.temporal_kernel) < 1:
            raise ConfigError(f"VideoVQConfig.temporal_kernel needs one size >= 1 per level of ch_mult {self.ch_mult}, "
                              f"got {self.temporal_kernel}")
        for m in self.ch_mult:
            if (self.ch * m) % self.norm_groups:
                raise ConfigError(f"width {self.ch * m} (ch * ch_mult) is not divisible by norm_groups={self.norm_groups}")

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def temporal_factor(self) -> int:
        return 2 ** sum(bool(d) for d in self.temporal_down)


class CausalConv3d(nn.Module):
    """3D convolution over ``(B, C, T, H, W)``, causal in time (past padded with the first frame)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: tuple[int, int, int] = (3, 3, 3), stride: tuple[int, int, int] = (1, 1, 1)):
        super().__init__()
        self.time_pad = kernel[0] - 1
        self.space_pad = kernel[1] // 2
        self.conv = nn.Conv3d(in_ch, out_ch, kernel, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_pad:
            x = torch.cat([x[:, :, :1].expand(-1, -1, self.time_pad, -1, -1), x], dim=2)
        if self.space_pad:
            x = F.pad(x, (self.space_pad,) * 4)
        return self.conv(x)


class FrameNorm(nn.GroupNorm):
    """GroupNorm over ``(C, H, W)`` of each frame separately (no statistics across time)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, T, H, W = x.shape
        y = super().forward(x.transpose(1, 2).reshape(B * T, C, H, W))
        return y.view(B, T, C, H, W).transpose(1, 2)


class ResBlock3d(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, groups: int, kt: int = 3):
        super().__init__()
        self.norm1, self.conv1 = FrameNorm(groups, in_ch, eps=1e-6), CausalConv3d(in_ch, out_ch, (kt, 3, 3))
        self.norm2, self.conv2 = FrameNorm(groups, out_ch, eps=1e-6), CausalConv3d(out_ch, out_ch, (kt, 3, 3))
        self.skip = nn.Conv3d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(swish(self.norm1(x)))
        return self.skip(x) + self.conv2(swish(self.norm2(h)))


class Upsample3d(nn.Module):
    """Nearest x2 in space; with ``temporal``, each latent frame after the first becomes two frames
    (``1 + k`` -> ``1 + 2k``, the inverse of the causal stride-2 downsampling)."""

    def __init__(self, ch: int, temporal: bool, kt: int = 3):
        super().__init__()
        self.temporal = temporal
        self.conv = CausalConv3d(ch, ch * (2 if temporal else 1), (3 if temporal else kt, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, T, H, W = x.shape
        x = F.interpolate(x, size=(T, 2 * H, 2 * W), mode="nearest")
        y = self.conv(x)
        if not self.temporal:
            return y
        y = y.view(B, 2, C, T, 2 * H, 2 * W).permute(0, 2, 3, 1, 4, 5).reshape(B, C, 2 * T, 2 * H, 2 * W)
        return y[:, :, 1:]


def res_blocks(in_ch: int, out_ch: int, count: int, groups: int, kt: int) -> list[nn.Module]:
    """``count`` residual blocks taking ``in_ch`` to ``out_ch`` channels (the first changes the width)."""
    return [ResBlock3d(in_ch if i == 0 else out_ch, out_ch, groups, kt) for i in range(count)]


class VideoEncoder(nn.Module):
    def __init__(self, cfg: VideoVQConfig):
        super().__init__()
        widths, kts = [cfg.ch * m for m in cfg.ch_mult], cfg.temporal_kernel
        self.conv_in = CausalConv3d(cfg.in_channels, widths[0], (kts[0], 3, 3))
        blocks: list[nn.Module] = []
        prev = widths[0]
        for level, width in enumerate(widths):
            blocks += res_blocks(prev, width, cfg.num_res_blocks, cfg.norm_groups, kts[level])
            prev = width
            if level < len(widths) - 1:
                down_t = bool(cfg.temporal_down[level])
                blocks.append(CausalConv3d(width, width, (3 if down_t else kts[level], 3, 3), stride=(2 if down_t else 1, 2, 2)))
        blocks.append(ResBlock3d(prev, prev, cfg.norm_groups, kts[-1]))
        self.blocks = nn.Sequential(*blocks)
        self.norm_out = FrameNorm(cfg.norm_groups, prev, eps=1e-6)
        self.conv_out = CausalConv3d(prev, cfg.z_channels, (kts[-1], 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(swish(self.norm_out(self.blocks(self.conv_in(x)))))


class VideoDecoder(nn.Module):
    def __init__(self, cfg: VideoVQConfig):
        super().__init__()
        widths, kts = [cfg.ch * m for m in cfg.ch_mult][::-1], list(cfg.temporal_kernel)[::-1]
        temporal = list(cfg.temporal_down)[::-1]
        self.conv_in = CausalConv3d(cfg.z_channels, widths[0], (kts[0], 3, 3))
        blocks: list[nn.Module] = [ResBlock3d(widths[0], widths[0], cfg.norm_groups, kts[0])]
        prev = widths[0]
        for level, width in enumerate(widths):
            blocks += res_blocks(prev, width, cfg.num_res_blocks, cfg.norm_groups, kts[level])
            prev = width
            if level < len(widths) - 1:
                blocks.append(Upsample3d(width, bool(temporal[level]), kts[level + 1]))
        self.blocks = nn.Sequential(*blocks)
        self.norm_out = FrameNorm(cfg.norm_groups, prev, eps=1e-6)
        self.conv_out = CausalConv3d(prev, cfg.in_channels, (kts[-1], 3, 3))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.conv_out(swish(self.norm_out(self.blocks(self.conv_in(z)))))


class FrameQuantizer(VectorQuantizer):
    """:class:`VectorQuantizer` over latent frames: ``(B, D, t, h, w)`` -> codes ``(B, t, h, w)``."""

    def forward(self, z_BDthw: torch.Tensor) -> QuantizerOutput:
        B, D, t, h, w = z_BDthw.shape
        q = super().forward(z_BDthw.transpose(1, 2).reshape(B * t, D, h, w))
        q.z_q = q.z_q.view(B, t, D, h, w).transpose(1, 2)
        q.codes = q.codes.view(B, t, h, w)
        return q

    def lookup(self, codes_Bthw: torch.Tensor) -> torch.Tensor:
        B, t, h, w = codes_Bthw.shape
        return super().lookup(codes_Bthw.reshape(B * t, h, w)).view(B, t, -1, h, w).transpose(1, 2)


@register_model
class VideoVQTokenizer(nn.Module, PretrainedMixin):
    """Causal video VQ tokenizer (``tokenizer/video_vq``); see the module docstring."""

    config_class = VideoVQConfig
    model_kind = "tokenizer"
    model_type = "video_vq"
    #: discrete codes (the Tokenizer protocol: continuous tokenizers set True)
    is_continuous = False

    def __init__(self, config: VideoVQConfig):
        super().__init__()
        self.config = config
        self.encoder = VideoEncoder(config)
        self.decoder = VideoDecoder(config)
        self.quant_conv = nn.Conv3d(config.z_channels, config.codebook_embed_dim, 1)
        self.post_quant_conv = nn.Conv3d(config.codebook_embed_dim, config.z_channels, 1)
        self.quantize = FrameQuantizer(config.codebook_size, config.codebook_embed_dim, beta=config.commit_loss_beta,
                                       entropy_loss_ratio=config.entropy_loss_ratio, l2_norm=config.codebook_l2_norm,
                                       show_usage=False)

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def codebook(self) -> torch.Tensor:
        """Code vectors ``(V, D)`` as the decoder sees them, detached."""
        return self.quantize.codebook.detach()

    def latent_frames(self, num_frames: int) -> int:
        """Latent frames ``t`` for ``num_frames`` input frames (``1 + (T - 1) / s``)."""
        s = self.config.temporal_factor
        if num_frames < 1 or (num_frames - 1) % s:
            raise ValueError(f"clips need 1 + k*{s} frames for this tokenizer (temporal factor {s}), got {num_frames}; "
                             f"use e.g. {1 + s * max(1, (num_frames - 1) // s)} frames")
        return 1 + (num_frames - 1) // s

    def grid_shape(self, image_size: int | tuple[int, int], num_frames: int | None = None) -> tuple[int, ...]:
        """Token grid ``(h, w)`` of an image, or ``(t, h, w)`` of a clip of ``num_frames`` frames."""
        H, W = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        f = self.config.spatial_factor
        if H % f or W % f:
            raise ValueError(f"frame size {H}x{W} is not divisible by the tokenizer's spatial factor {f}")
        return (H // f, W // f) if num_frames is None else (self.latent_frames(num_frames), H // f, W // f)

    # ------------------------------------------------------------------ pieces (the VQ task drives these)
    def _as_video(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, C, H, W)`` or ``(B, C, H, W)`` -> ``(B, C, T, H, W)`` (checked)."""
        if x.ndim == 4:
            x = x[:, None]
        if x.ndim != 5 or x.shape[2] != self.config.in_channels:
            raise ValueError(f"expected videos (B, T, {self.config.in_channels}, H, W) or images (B, {self.config.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        self.grid_shape(tuple(x.shape[-2:]), x.shape[1])
        return x.transpose(1, 2)

    def encode_to_latent(self, x: torch.Tensor) -> torch.Tensor:
        """Videos ``(B, T, C, H, W)`` (or images) -> pre-quantization latents ``(B, D, t, h, w)``."""
        return self.quant_conv(self.encoder(self._as_video(x)))

    def decode_latent(self, z_q: torch.Tensor) -> torch.Tensor:
        """Quantized latents ``(B, D, t, h, w)`` -> videos ``(B, T, C, H, W)``, unclamped."""
        return self.decoder(self.post_quant_conv(z_q)).transpose(1, 2)

    # ------------------------------------------------------------------ public API
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Videos ``(B, T, C, H, W)`` -> codes ``(B, t, h, w)``; images ``(B, C, H, W)`` -> ``(B, h, w)``."""
        codes = self.quantize(self.encode_to_latent(x)).codes
        return codes[:, 0] if x.ndim == 4 else codes

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, t, h, w)`` -> videos ``(B, T, C, H, W)``; ``(B, h, w)`` -> images ``(B, C, H, W)``."""
        video = self.decode_latent(self.quantize.lookup(codes[:, None] if codes.ndim == 3 else codes))
        return video[:, 0] if codes.ndim == 3 else video

    def forward(self, x: torch.Tensor) -> VQOutput:
        """Encode, quantize (straight-through), decode. ``recon`` has the input's layout."""
        q = self.quantize(self.encode_to_latent(x))
        recon = self.decode_latent(q.z_q)
        return VQOutput(recon=recon[:, 0] if x.ndim == 4 else recon, codes=q.codes[:, 0] if x.ndim == 4 else q.codes,
                        codebook_loss=q.codebook_loss, commit_loss=q.commit_loss, entropy_loss=q.entropy_loss)

    def reset_usage(self) -> None:
        self.quantize.reset_usage()

    def usage(self) -> tuple[float, float]:
        return self.quantize.usage()
