"""Image tensor <-> uint8 array conversions, grids and PNG writing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(images_BCHW: torch.Tensor) -> np.ndarray:
    """Images in ``[-1, 1]`` ``(B, C, H, W)`` -> uint8 ``(B, H, W, 3)`` (grayscale repeated to RGB)."""
    x = ((images_BCHW.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def make_grid(images_NHWC: np.ndarray, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile uint8 images ``(N, H, W, C)`` into one ``(rows*(H+pad)+pad, ...)`` image, ``nrow`` per row."""
    n, h, w, c = images_NHWC.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / nrow))
    grid = np.zeros((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = images_NHWC[i]
    return grid


def save_png(image_HWC: np.ndarray, path: str | Path) -> None:
    """Write a uint8 ``(H, W, 3)`` or ``(H, W)`` array as PNG."""
    Image.fromarray(image_HWC.squeeze(-1) if image_HWC.shape[-1] == 1 else image_HWC).save(path)
