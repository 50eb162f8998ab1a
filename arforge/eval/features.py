"""Inception feature extraction: uint8 images in, ``pool3`` / ``spatial`` / ``logits_unbiased`` out, streamed.

:class:`InceptionFeatureExtractor` is an ``nn.Module`` = preprocessing protocol
(:mod:`arforge.eval.preprocess`) + :class:`~arforge.eval.inception.InceptionV3`. It runs the
network in channels-last layout (faster than NCHW on CPU; timings in docs/eval.md) and, on CUDA,
with TF32 disabled so GPU and CPU features agree to float32 precision.

:func:`iter_features` streams a source through it one batch at a time: peak memory is set by the
batch size (images of a batch, the 299x299 inputs and the activations), never by the number of
images.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from arforge.eval.inception import FEATURE_NAMES, InceptionV3
from arforge.eval.inception_weights import load_inception
from arforge.eval.preprocess import get_preprocess
from arforge.eval.sources import ImageSource, open_source
from arforge.utils.device import resolve_device

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 50


@contextlib.contextmanager
def _exact_float32(device: torch.device) -> Iterator[None]:
    """Disable TF32 on CUDA for the duration of the block (restored afterwards)."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class InceptionFeatureExtractor(nn.Module):
    """uint8 RGB images -> Inception features, with a fixed preprocessing ``mode`` (``"tf"``/``"pytorch-fid"``).

    ``features`` is the subset of :data:`~arforge.eval.inception.FEATURE_NAMES` computed by
    :meth:`forward` and :meth:`extract`.
    """

    def __init__(self, network: InceptionV3, mode: str = "tf", features: Sequence[str] = ("pool3",)):
        super().__init__()
        unknown = [f for f in features if f not in FEATURE_NAMES]
        if unknown or not features:
            raise ValueError(f"unknown or empty feature list {list(features)}; choose from {list(FEATURE_NAMES)}")
        self.preprocess = get_preprocess(mode)
        self.mode = mode
        self.features = tuple(features)
        self.network = network.eval().requires_grad_(False).to(memory_format=torch.channels_last)

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @property
    def name(self) -> str:
        """Identifies the features (network and preprocessing), stored beside cached statistics."""
        return f"tf-inception-2015-12-05/{self.mode}"

    @torch.inference_mode()
    def forward(self, images_B3HW: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 ``(B, 3, H, W)`` images (any size) -> ``{name: float32 (B, D)}`` on the network's device."""
        if images_B3HW.dtype != torch.uint8 or images_B3HW.ndim != 4 or images_B3HW.shape[1] != 3:
            raise ValueError(f"expected uint8 images (B, 3, H, W), got {images_B3HW.dtype} {tuple(images_B3HW.shape)}")
        x = self.preprocess(images_B3HW.to(self.device)).contiguous(memory_format=torch.channels_last)
        with _exact_float32(self.device):
            return self.network(x, features=self.features)

    def extract(self, images: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        """A batch of uint8 ``(H, W, 3)`` arrays, sizes possibly mixed -> ``{name: float32 (B, D)}`` on CPU.

        Images are grouped by size; each group is resized to 299x299 on its own and the results are
        put back in input order.
        """
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, im in enumerate(images):
            groups.setdefault(im.shape, []).append(i)
        out: dict[str, torch.Tensor] = {}
        for shape, idx in groups.items():
            batch = torch.from_numpy(np.stack([images[i] for i in idx])).permute(0, 3, 1, 2)
            feats = self(batch)
            for name, value_BD in feats.items():
                if name not in out:
                    out[name] = torch.empty(len(images), value_BD.shape[1])
                out[name][idx] = value_BD.cpu()
        return out


def build_feature_extractor(
    mode: str = "tf",
    features: Sequence[str] = ("pool3",),
    inception_weights: str | None = None,
    device: str | torch.device | None = "auto",
) -> InceptionFeatureExtractor:
    """The standard FID Inception on ``device`` with preprocessing ``mode``.

    Asking for ``"logits_unbiased"`` needs a full weights file (``inception_weights`` or one in the
    torch hub cache); without one a ``ValueError`` says which file to supply.
    """
    network = load_inception(inception_weights, need_logits="logits_unbiased" in features)
    return InceptionFeatureExtractor(network, mode=mode, features=features).to(resolve_device(device))


def iter_features(
    source: ImageSource | str | np.ndarray | torch.Tensor,
    extractor: InceptionFeatureExtractor,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    desc: str | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Stream ``source`` through ``extractor``: yields ``{name: float32 (b, D)}`` per batch (CPU)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    src = open_source(source)
    bar = tqdm(total=len(src), desc=desc or f"Inception features: {src.description}", unit="img",
               disable=None if progress else True, leave=False)
    try:
        for batch in src.iter_batches(batch_size):
            yield extractor.extract(batch)
            bar.update(len(batch))
    finally:
        bar.close()


def extract_features(
    source: ImageSource | str | np.ndarray | torch.Tensor,
    extractor: InceptionFeatureExtractor,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """All features of ``source`` as ``{name: float32 (N, D)}`` numpy arrays (N x D floats in memory)."""
    parts: dict[str, list[torch.Tensor]] = {}
    for feats in iter_features(source, extractor, batch_size, progress):
        for name, value in feats.items():
            parts.setdefault(name, []).append(value)
    if not parts:
        raise ValueError("the image source yielded no readable images")
    return {name: torch.cat(values).numpy() for name, values in parts.items()}
