"""Image preprocessing for the FID Inception: the two published protocols, resize included.

The network sees ``(B, 3, 299, 299)`` floats. How uint8 images get there changes FID measurably on
small images (docs/eval.md), so arforge offers the two conventions the published numbers use:

``"tf"`` (default) -- TensorFlow 1.x ``resize_bilinear(align_corners=False)`` of the uint8 values
    (as floats in ``[0, 255]``) to 299x299, then ``(x - 128) / 128``. This is what the original TF
    FID code (TTUR), the ADM evaluator (``VIRTUAL_imagenet256_labeled.npz`` numbers), StyleGAN's
    metrics and torch-fidelity compute (the measured agreement with torch-fidelity: docs/eval.md).
``"pytorch-fid"`` -- ``x / 255``, ``torch.nn.functional.interpolate(bilinear, align_corners=False,
    antialias=False)`` to 299x299, then ``2x - 1``: pytorch-fid's ``InceptionV3(resize_input=True,
    normalize_input=True)``. Use it to compare with numbers produced by pytorch-fid.

The TF resize samples source pixel ``dst * in / out`` (no half-pixel offset) and clamps the upper
neighbour at the border; it is implemented as two separable gathers with
``a + (b - a) * frac``, the operation order of TF's kernel.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
import torch.nn.functional as F

INCEPTION_SIZE = 299


@functools.lru_cache(maxsize=64)
def _tf_axis_weights(in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lo, hi, frac) of TF1 bilinear resize along one axis: ``out[i] = in[lo] + (in[hi] - in[lo]) * frac``."""
    scale = in_size / out_size
    src = torch.arange(out_size, dtype=torch.float32) * torch.tensor(scale, dtype=torch.float32)
    lo = src.floor().long()
    hi = (lo + 1).clamp(max=in_size - 1)
    return lo, hi, src - lo.float()


def resize_bilinear_tf(x_BCHW: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TensorFlow 1.x ``resize_bilinear(align_corners=False, half_pixel_centers=False)`` of float images.

    ``x_BCHW``: float tensor; returns ``(B, C, size[0], size[1])`` of the same dtype.
    """
    if not x_BCHW.is_floating_point():
        raise TypeError(f"resize_bilinear_tf needs a float tensor, got {x_BCHW.dtype}")
    (out_h, out_w), (in_h, in_w) = size, x_BCHW.shape[-2:]
    dev = x_BCHW.device
    lo, hi, frac = (t.to(dev) for t in _tf_axis_weights(in_w, out_w))
    left, right = x_BCHW.index_select(3, lo), x_BCHW.index_select(3, hi)
    x = left + (right - left) * frac.to(x_BCHW.dtype)
    lo, hi, frac = (t.to(dev) for t in _tf_axis_weights(in_h, out_h))
    top, bottom = x.index_select(2, lo), x.index_select(2, hi)
    return top + (bottom - top) * frac.to(x_BCHW.dtype)[:, None]


def preprocess_tf(images_B3HW: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` -> network input ``(B, 3, 299, 299)`` float32, TF/torch-fidelity protocol."""
    x = resize_bilinear_tf(images_B3HW.float(), (INCEPTION_SIZE, INCEPTION_SIZE))
    return (x - 128) / 128


def preprocess_pytorch_fid(images_B3HW: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` -> network input ``(B, 3, 299, 299)`` float32, pytorch-fid protocol."""
    x = images_B3HW.float() / 255
    x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
    return 2 * x - 1


#: preprocessing mode name -> function of uint8 ``(B, 3, H, W)`` images
PREPROCESS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tf": preprocess_tf,
    "pytorch-fid": preprocess_pytorch_fid,
}


def get_preprocess(mode: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The preprocessing function for ``mode`` (``"tf"`` or ``"pytorch-fid"``)."""
    try:
        return PREPROCESS[mode]
    except KeyError:
        raise ValueError(f"unknown preprocessing mode '{mode}'; choose one of {sorted(PREPROCESS)}") from None
