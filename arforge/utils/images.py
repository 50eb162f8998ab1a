"""Image tensor <-> uint8 array conversions, grids and PNG writing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(images_BCHW: torch.Tensor) -> np.ndarray:
    """Images in ``[-1, 1]`` ``(B, C, H, W)`` -> uint8 ``(B, H, W, 3)`` (grayscale repeated to RGB);
    videos ``(B, T, C, H, W)`` -> ``(B, T, H, W, 3)``."""
    if images_BCHW.ndim == 5:
        B, T = images_BCHW.shape[:2]
        frames = to_uint8(images_BCHW.flatten(0, 1))
        return frames.reshape(B, T, *frames.shape[1:])
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


def save_gif(frames_THWC: np.ndarray, path: str | Path, frame_ms: int = 200) -> None:
    """Write uint8 frames ``(T, H, W, 3)`` as a looping animated GIF (``frame_ms`` per frame)."""
    images = [Image.fromarray(f) for f in frames_THWC]
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0)


def make_video_grid(videos_NTHWC: np.ndarray, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile videos ``(N, T, H, W, C)`` frame by frame: ``(T, grid_h, grid_w, C)`` (see :func:`make_grid`)."""
    return np.stack([make_grid(videos_NTHWC[:, t], nrow=nrow, pad=pad) for t in range(videos_NTHWC.shape[1])])
