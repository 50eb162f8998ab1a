"""Convolutional encoder/decoder of the VQ tokenizer, laid out exactly like LlamaGen's ``VQModel``.

Module and parameter names match ``tokenizer/tokenizer_image/vq_model.py`` of LlamaGen so that
its checkpoints load strictly:

* ``Encoder``: ``conv_in``, ``conv_blocks.N.{res.N, attn.N, downsample.conv}``, ``mid.{0,1,2}``
  (resnet, attention, resnet), ``norm_out``, ``conv_out``. ``conv_blocks[0]`` is the full
  resolution; every level but the last halves the resolution.
* ``Decoder``: ``conv_in``, ``mid.{0,1,2}``, ``conv_blocks.N.{res.N, attn.N, upsample.conv}``,
  ``norm_out``, ``conv_out``. ``conv_blocks[0]`` is the LOWEST resolution; every level but the last
  doubles the resolution. The decoder has ``num_res_blocks + 1`` resnet blocks per level.
* ``ResnetBlock``: ``norm1, conv1, norm2, conv2`` and a 1x1 ``nin_shortcut`` when the width changes.
* ``AttnBlock``: single-head spatial self-attention with 1x1 convs ``q, k, v, proj_out``.

Normalisation is ``GroupNorm(norm_groups, eps=1e-6)`` (LlamaGen: 32 groups), the non-linearity is
swish. Attention levels are configurable; LlamaGen puts attention only at the lowest resolution
(encoder level ``len(ch_mult) - 1``, which is decoder ``conv_blocks[0]``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: LlamaGen's GroupNorm epsilon
NORM_EPS = 1e-6


def swish(x: torch.Tensor) -> torch.Tensor:
    """``x * sigmoid(x)`` (LlamaGen's ``nonlinearity``)."""
    return x * torch.sigmoid(x)


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """Affine ``GroupNorm(groups, channels, eps=1e-6)``; ``channels`` must be divisible by ``groups``."""
    return nn.GroupNorm(num_groups=groups, num_channels=channels, eps=NORM_EPS, affine=True)


class ResnetBlock(nn.Module):
    """Pre-norm residual block: ``x + conv2(drop(swish(norm2(conv1(swish(norm1(x)))))))``.

    Input ``(B, in_channels, H, W)`` -> output ``(B, out_channels, H, W)``; a 1x1 ``nin_shortcut``
    maps the skip path when the widths differ.
    """

    def __init__(self, in_channels: int, out_channels: int, *, dropout: float = 0.0, norm_groups: int = 32):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.norm1 = group_norm(in_channels, norm_groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.norm2 = group_norm(out_channels, norm_groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, padding=0)

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        h_BCHW = self.conv1(swish(self.norm1(x_BCHW)))
        h_BCHW = self.conv2(self.dropout(swish(self.norm2(h_BCHW))))
        if self.in_channels != self.out_channels:
            x_BCHW = self.nin_shortcut(x_BCHW)
        return x_BCHW + h_BCHW


class AttnBlock(nn.Module):
    """Single-head self-attention over the ``H*W`` positions, residual: ``(B, C, H, W) -> (B, C, H, W)``."""

    def __init__(self, channels: int, *, norm_groups: int = 32):
        super().__init__()
        self.norm = group_norm(channels, norm_groups)
        self.q = nn.Conv2d(channels, channels, kernel_size=1)
        self.k = nn.Conv2d(channels, channels, kernel_size=1)
        self.v = nn.Conv2d(channels, channels, kernel_size=1)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x_BCHW.shape
        h_BCHW = self.norm(x_BCHW)
        # (B, C, H, W) -> (B, 1, HW, C): one head of width C, scale C**-0.5 (SDPA's default)
        q_B1LC = self.q(h_BCHW).flatten(2).transpose(1, 2).unsqueeze(1)
        k_B1LC = self.k(h_BCHW).flatten(2).transpose(1, 2).unsqueeze(1)
        v_B1LC = self.v(h_BCHW).flatten(2).transpose(1, 2).unsqueeze(1)
        out_B1LC = F.scaled_dot_product_attention(q_B1LC, k_B1LC, v_B1LC)
        out_BCHW = out_B1LC.squeeze(1).transpose(1, 2).reshape(b, c, h, w)
        return x_BCHW + self.proj_out(out_BCHW)


class Downsample(nn.Module):
    """Halve the resolution: zero-pad right/bottom by one pixel, then a stride-2 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x_BCHW, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour interpolation, then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x_BCHW, scale_factor=2.0, mode="nearest"))


class _Level(nn.Module):
    """One resolution level: ``res`` (ResnetBlocks), ``attn`` (AttnBlocks, empty or one per res block)."""

    def __init__(self, res: list[nn.Module], attn: list[nn.Module]):
        super().__init__()
        self.res = nn.ModuleList(res)
        self.attn = nn.ModuleList(attn)

    def run_blocks(self, h_BCHW: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.res):
            h_BCHW = block(h_BCHW)
            if len(self.attn) > 0:
                h_BCHW = self.attn[i](h_BCHW)
        return h_BCHW


def _mid(channels: int, dropout: float, norm_groups: int) -> nn.ModuleList:
    return nn.ModuleList(
        [
            ResnetBlock(channels, channels, dropout=dropout, norm_groups=norm_groups),
            AttnBlock(channels, norm_groups=norm_groups),
            ResnetBlock(channels, channels, dropout=dropout, norm_groups=norm_groups),
        ]
    )


class Encoder(nn.Module):
    """Images ``(B, in_channels, H, W)`` -> features ``(B, z_channels, H / 2**(L-1), W / 2**(L-1))``, ``L = len(ch_mult)``.

    Level ``i`` has width ``ch * ch_mult[i]`` and ``num_res_blocks`` resnet blocks; levels listed
    in ``attn_levels`` add one attention block after each resnet block.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        ch: int,
        ch_mult: Sequence[int],
        num_res_blocks: int,
        z_channels: int,
        attn_levels: Sequence[int],
        dropout: float = 0.0,
        norm_groups: int = 32,
    ):
        super().__init__()
        self.num_levels = len(ch_mult)
        self.conv_in = nn.Conv2d(in_channels, ch, kernel_size=3, stride=1, padding=1)
        self.conv_blocks = nn.ModuleList()
        block_in = ch
        for level, mult in enumerate(ch_mult):
            block_out = ch * mult
            res, attn = [], []
            for _ in range(num_res_blocks):
                res.append(ResnetBlock(block_in, block_out, dropout=dropout, norm_groups=norm_groups))
                block_in = block_out
                if level in attn_levels:
                    attn.append(AttnBlock(block_in, norm_groups=norm_groups))
            stage = _Level(res, attn)
            if level != self.num_levels - 1:
                stage.downsample = Downsample(block_in)
            self.conv_blocks.append(stage)
        self.mid = _mid(block_in, dropout, norm_groups)
        self.norm_out = group_norm(block_in, norm_groups)
        self.conv_out = nn.Conv2d(block_in, z_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x_BCHW)
        for level, stage in enumerate(self.conv_blocks):
            h = stage.run_blocks(h)
            if level != self.num_levels - 1:
                h = stage.downsample(h)
        for block in self.mid:
            h = block(h)
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    """Features ``(B, z_channels, h, w)`` -> images ``(B, out_channels, h * 2**(L-1), w * 2**(L-1))``, unclamped.

    ``conv_blocks[j]`` is resolution level ``i = L - 1 - j`` (lowest resolution first) with width
    ``ch * ch_mult[i]``, ``num_res_blocks + 1`` resnet blocks, attention if ``i`` is in ``attn_levels``.
    """

    def __init__(
        self,
        *,
        out_channels: int,
        ch: int,
        ch_mult: Sequence[int],
        num_res_blocks: int,
        z_channels: int,
        attn_levels: Sequence[int],
        dropout: float = 0.0,
        norm_groups: int = 32,
    ):
        super().__init__()
        self.num_levels = len(ch_mult)
        block_in = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, block_in, kernel_size=3, stride=1, padding=1)
        self.mid = _mid(block_in, dropout, norm_groups)
        self.conv_blocks = nn.ModuleList()
        for level in reversed(range(self.num_levels)):
            block_out = ch * ch_mult[level]
            res, attn = [], []
            for _ in range(num_res_blocks + 1):
                res.append(ResnetBlock(block_in, block_out, dropout=dropout, norm_groups=norm_groups))
                block_in = block_out
                if level in attn_levels:
                    attn.append(AttnBlock(block_in, norm_groups=norm_groups))
            stage = _Level(res, attn)
            if level != 0:
                stage.upsample = Upsample(block_in)
            self.conv_blocks.append(stage)
        self.norm_out = group_norm(block_in, norm_groups)
        self.conv_out = nn.Conv2d(block_in, out_channels, kernel_size=3, stride=1, padding=1)

    @property
    def last_layer(self) -> torch.Tensor:
        """Weight of the final conv (used for adaptive GAN weighting)."""
        return self.conv_out.weight

    def forward(self, z_BZhw: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z_BZhw)
        for block in self.mid:
            h = block(h)
        for j, stage in enumerate(self.conv_blocks):
            h = stage.run_blocks(h)
            if j != self.num_levels - 1:
                h = stage.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))
