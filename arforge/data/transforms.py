"""PIL image -> model-ready tensor: mode conversion, ADM-style resize + centre crop, scaling to [-1, 1]."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def convert_channels(image: Image.Image, channels: int) -> Image.Image:
    """Convert any PIL mode to ``RGB`` (``channels=3``) or ``L`` (``channels=1``).

    Images with transparency (``RGBA``, ``LA``, palette with a transparent colour) are composited
    onto white first, so transparent regions become white rather than whatever colour the hidden
    pixels happen to store.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB" if channels == 3 else "L")


def center_crop_arr(image: Image.Image, image_size: int) -> np.ndarray:
    """Resize the shorter side to ``image_size`` and centre-crop a square (ADM's recipe).

    While the shorter side is at least twice the target the image is halved with a BOX filter
    (cheap, alias-free), then one BICUBIC resize brings the shorter side to ``image_size``.
    Returns a uint8 array ``(image_size, image_size)`` or ``(image_size, image_size, C)``.
    """
    while min(image.size) >= 2 * image_size:
        image = image.resize(tuple(side // 2 for side in image.size), resample=Image.BOX)
    scale = image_size / min(image.size)
    image = image.resize(tuple(max(image_size, round(side * scale)) for side in image.size), resample=Image.BICUBIC)
    arr = np.array(image)
    top = (arr.shape[0] - image_size) // 2
    left = (arr.shape[1] - image_size) // 2
    return arr[top: top + image_size, left: left + image_size]


def to_tensor(arr_HW_or_HWC: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W)`` or ``(H, W, C)`` -> float32 ``(C, H, W)`` in ``[-1, 1]``."""
    arr = arr_HW_or_HWC if arr_HW_or_HWC.ndim == 3 else arr_HW_or_HWC[..., None]
    x_CHW = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
    return x_CHW.float().div_(127.5).sub_(1.0)


def load_image(path, image_size: int, channels: int) -> torch.Tensor:
    """Open ``path``, convert to ``channels``, resize + centre-crop; float32 ``(C, image_size, image_size)`` in ``[-1, 1]``."""
    with Image.open(path) as image:
        image.load()
        converted = convert_channels(image, channels)
    return to_tensor(center_crop_arr(converted, image_size))
