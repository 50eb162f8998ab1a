"""Built-in video data: moving MNIST digits, generated deterministically (no download).

Every clip shows one digit of the built-in MNIST split (:mod:`arforge.data.mnist`) moving in a
straight line across a ``canvas x canvas`` black frame and bouncing off the borders. Clip ``i`` of a
split is a pure function of ``(seed, split, i)``: its digit is the split's ``i``-th digit, and the
start position, direction and speed are drawn from ``numpy.random.default_rng([seed, i])``, so
every run, tool and worker sees the same videos and the validation clips never share a digit with
the training clips. The label is the digit's class (class-conditional video generation).
With ``clips_per_digit = k`` the split holds ``k`` clips of every digit (clip ``i`` shows digit
``i mod n`` on trajectory ``default_rng([seed, i])``; the first ``n`` clips are the ``k = 1`` clips):
more motion per digit for the same digits.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from arforge.data.mnist import NUM_CLASSES, mnist_uint8

DIGIT_SIZE = 28


def bouncing_path(num_frames: int, span: int, rng: np.random.Generator, speed_range: tuple[float, float]) -> np.ndarray:
    """Top-left corners ``(num_frames, 2)`` (int, ``[0, span]``) of a straight path reflected at the borders."""
    start = rng.uniform(0, span, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(*speed_range)
    raw = start[None] + np.arange(num_frames)[:, None] * speed * np.array([np.sin(angle), np.cos(angle)])[None]
    period = 2 * span
    folded = np.mod(raw, period) if span > 0 else np.zeros_like(raw)
    return np.rint(np.where(folded > span, period - folded, folded)).astype(np.int64)


def render_clip(digit_uint8: np.ndarray, path_T2: np.ndarray, canvas: int) -> np.ndarray:
    """Paste ``digit`` (``(28, 28)`` uint8) at each corner of ``path``: uint8 ``(T, canvas, canvas)``."""
    frames = np.zeros((len(path_T2), canvas, canvas), dtype=np.uint8)
    for t, (y, x) in enumerate(path_T2):
        frames[t, y:y + DIGIT_SIZE, x:x + DIGIT_SIZE] = digit_uint8
    return frames


class MovingMNIST(Dataset):
    """Moving-digit clips. Items: ``{"video": float32 (T, C, H, W) in [-1, 1], "label": int64}``.

    Args:
        split: ``train`` / ``val`` / ``all`` digits of the built-in MNIST.
        num_frames: frames per clip ``T``.
        canvas: frame side in pixels (>= 28).
        channels: 1 or 3 (grey repeated).
        seed: changes every trajectory (not the digits).
        speed_range: pixels per frame.
        clips_per_digit: clips (trajectories) of every digit.
    """

    num_classes = NUM_CLASSES
    #: ``data.augment_views`` is served by ``clips_per_digit`` (more trajectories), not by image shifts
    views_built_in = True

    def __init__(self, split: Literal["train", "val", "all"] = "train", num_frames: int = 8, canvas: int = 64,
                 channels: int = 3, seed: int = 0, speed_range: tuple[float, float] = (2.0, 4.0),
                 clips_per_digit: int = 1):
        if canvas < DIGIT_SIZE:
            raise ValueError(f"moving MNIST needs a canvas of at least {DIGIT_SIZE} pixels, got {canvas}")
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if clips_per_digit < 1:
            raise ValueError(f"clips_per_digit must be >= 1, got {clips_per_digit}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        digits, labels = mnist_uint8(split, image_size=DIGIT_SIZE, channels=1)
        self.digits = digits[..., 0]
        self.labels = torch.from_numpy(labels).repeat(clips_per_digit)  # label of every clip
        self.num_frames, self.canvas, self.channels, self.seed = num_frames, canvas, channels, seed
        self.speed_range = speed_range
        self.image_size = canvas

    def __len__(self) -> int:
        return len(self.labels)

    def clip_uint8(self, i: int) -> np.ndarray:
        """Clip ``i`` as uint8 ``(T, canvas, canvas)``."""
        rng = np.random.default_rng([self.seed, i])
        path = bouncing_path(self.num_frames, self.canvas - DIGIT_SIZE, rng, self.speed_range)
        return render_clip(self.digits[i % len(self.digits)], path, self.canvas)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        video = torch.from_numpy(self.clip_uint8(i)).float().div(127.5).sub(1.0)[:, None]
        return {"video": video.expand(-1, self.channels, -1, -1).contiguous(), "label": self.labels[i]}
