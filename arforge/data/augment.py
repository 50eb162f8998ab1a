"""Deterministic augmented views of an image dataset (for small datasets such as the built-in MNIST).

``ShiftedViews(dataset, views=V, max_shift=m)`` has ``V * len(dataset)`` items: item ``i * V`` is
image ``i`` unchanged and items ``i * V + 1 .. i * V + V - 1`` are translations of it by up to ``m``
pixels along each axis (edges replicated). The shifts are a fixed function of ``seed``, so a token
cache built from the views is reproducible and the trainer's exact resume is unaffected.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset


def shift_image(x_CHW: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate ``x_CHW`` by ``dy`` rows (down) and ``dx`` columns (right); vacated pixels copy the edge."""
    if dy == 0 and dx == 0:
        return x_CHW
    H, W = x_CHW.shape[-2:]
    pad = max(abs(dy), abs(dx))
    padded = F.pad(x_CHW[None], (pad, pad, pad, pad), mode="replicate")[0]
    return padded[..., pad - dy: pad - dy + H, pad - dx: pad - dx + W]


class ShiftedViews(Dataset):
    """``views`` copies of every item of ``dataset`` (``{"image": (C,H,W), "label"}``): the original + shifted ones.

    Attributes of the wrapped dataset (``num_classes``, ``image_size``, ``channels``) are forwarded.
    """

    def __init__(self, dataset: Dataset, views: int, max_shift: int, seed: int = 0):
        if views < 1:
            raise ValueError(f"augment_views must be >= 1 (1 = no augmentation), got {views}")
        if max_shift < 1 and views > 1:
            raise ValueError(f"augment_max_shift must be >= 1 pixel when augment_views > 1, got {max_shift}")
        self.dataset, self.views, self.max_shift = dataset, views, max_shift
        rng = torch.Generator().manual_seed(seed)
        shifts_NV2 = torch.randint(-max_shift, max_shift + 1, (len(dataset), views, 2), generator=rng)
        shifts_NV2[:, 0] = 0
        self.shifts_NV2 = shifts_NV2
        for attr in ("num_classes", "image_size", "channels"):
            if hasattr(dataset, attr):
                setattr(self, attr, getattr(dataset, attr))

    def __len__(self) -> int:
        return len(self.dataset) * self.views

    def __getitem__(self, j: int) -> dict[str, torch.Tensor]:
        i, v = divmod(int(j), self.views)
        item = dict(self.dataset[i])
        dy, dx = (int(s) for s in self.shifts_NV2[i, v])
        item["image"] = shift_image(item["image"], dy, dx)
        return item
