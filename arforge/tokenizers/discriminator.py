"""PatchGAN discriminator (pix2pix / taming ``NLayerDiscriminator`` layout) for tokenizer training.

``(B, C, H, W)`` images in [-1, 1] -> ``(B, 1, H', W')`` patch logits. ``n_layers`` stride-2 convs
(4x4 kernels, LeakyReLU 0.2), one stride-1 conv, then a 1-channel stride-1 conv. The receptive
field is 70x70 pixels for ``n_layers=3``. Normalisation is ``group`` (GroupNorm, batch-independent:
safe when the same module scores real, fake and generator batches in one step), ``batch``
(taming's choice) or ``none``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from arforge.config import ConfigError


@dataclass
class DiscriminatorConfig:
    """``ndf``: width of the first conv (doubling per layer, at most ``8 * ndf``). ``n_layers``:
    stride-2 convs (each halves the resolution). ``norm``: ``group`` | ``batch`` | ``none``."""

    ndf: int = 64
    n_layers: int = 3
    norm: Literal["group", "batch", "none"] = "group"

    def __post_init__(self) -> None:
        if self.ndf < 1 or self.n_layers < 1:
            raise ConfigError(f"discriminator ndf and n_layers must be >= 1, got ndf={self.ndf}, n_layers={self.n_layers}")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(num_groups=math.gcd(32, channels), num_channels=channels, eps=1e-6)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


class PatchGANDiscriminator(nn.Module):
    """NLayer PatchGAN: ``(B, in_channels, H, W)`` -> logits ``(B, 1, H', W')``, higher = more real.

    The logit map has side ``H / 2 ** n_layers - 2``, so images need ``H, W >= 3 * 2 ** n_layers``
    pixels (24 for the default ``n_layers=3``; a 32x32 image gives 2x2 patch logits).
    """

    def __init__(self, in_channels: int = 3, config: DiscriminatorConfig | None = None):
        super().__init__()
        self.config = config = config or DiscriminatorConfig()
        use_bias = config.norm == "none"
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, config.ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        width = config.ndf
        for n in range(1, config.n_layers + 1):
            out = config.ndf * min(2**n, 8)
            stride = 2 if n < config.n_layers else 1
            layers += [
                nn.Conv2d(width, out, kernel_size=4, stride=stride, padding=1, bias=use_bias),
                _norm(config.norm, out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width = out
        layers.append(nn.Conv2d(width, 1, kernel_size=4, stride=1, padding=1))
        self.main = nn.Sequential(*layers)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, 0.0, 0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(module.weight, 1.0, 0.02)
            nn.init.zeros_(module.bias)

    def forward(self, images_BCHW: torch.Tensor) -> torch.Tensor:
        """Patch logits ``(B, 1, H', W')`` for images ``(B, C, H, W)`` in [-1, 1]."""
        min_size = self.min_image_size(self.config.n_layers)
        if min(images_BCHW.shape[-2:]) < min_size:
            raise ValueError(
                f"images of size {tuple(images_BCHW.shape[-2:])} are too small for a {self.config.n_layers}-layer PatchGAN "
                f"(needs >= {min_size} pixels per side); lower n_layers"
            )
        return self.main(images_BCHW)

    @staticmethod
    def min_image_size(n_layers: int) -> int:
        """Smallest image side that leaves a non-empty logit map: ``3 * 2 ** n_layers``."""
        return 3 * 2**n_layers
