"""Reconstruction metrics of a tokenizer: PSNR, SSIM, rFID, codebook usage and perplexity, streamed.

Each batch of images is encoded and decoded; the reconstruction is clamped to ``[-1, 1]`` and
rounded to uint8, i.e. scored as the image a user would save. PSNR is computed per image and
averaged (the LlamaGen/VAR convention; data range 1 on ``[0, 1]`` images), SSIM is torchmetrics'
Gaussian 11x11 SSIM averaged over images, rFID is the FID between the originals and their
reconstructions (standard Inception, ``"tf"`` preprocessing by default). For discrete tokenizers
the code histogram over the whole set gives the codebook usage (fraction of the ``V`` codes used
at least once) and the perplexity ``exp(H(p))`` of the code distribution (``V`` for uniform use).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure
from tqdm import tqdm

from arforge.eval.features import InceptionFeatureExtractor, build_feature_extractor
from arforge.eval.frechet import fid_from_stats
from arforge.eval.sources import ImageSource, open_source
from arforge.eval.stats import RunningStats
from arforge.utils.device import module_device, resolve_device

log = logging.getLogger(__name__)


def tokenizer_channels(tokenizer: nn.Module) -> int:
    """Image channels the tokenizer expects (``in_channels``/``channels`` on it or its config; default 3)."""
    for obj in (tokenizer, getattr(tokenizer, "config", None)):
        for name in ("in_channels", "channels"):
            value = getattr(obj, name, None)
            if isinstance(value, int):
                return value
    return 3


class CodebookUsage:
    """Histogram of discrete codes over a dataset: usage fraction and perplexity."""

    def __init__(self, codebook_size: int):
        self.codebook_size = codebook_size
        self.counts = torch.zeros(codebook_size, dtype=torch.int64)

    def update(self, codes: torch.Tensor | list | tuple) -> None:
        """Add codes of any shape (or a list of code maps, one per scale)."""
        parts = codes if isinstance(codes, (list, tuple)) else [codes]
        for c in parts:
            flat = c.detach().reshape(-1).long().cpu()
            if len(flat) and (flat.min() < 0 or flat.max() >= self.codebook_size):
                raise ValueError(
                    f"codes out of range [0, {self.codebook_size}): min {int(flat.min())}, max {int(flat.max())}"
                )
            self.counts += torch.bincount(flat, minlength=self.codebook_size)

    def summary(self) -> dict[str, float]:
        total = int(self.counts.sum())
        if total == 0:
            raise ValueError("no codes were counted")
        p = self.counts.double() / total
        nz = p[p > 0]
        return {
            "codebook_size": self.codebook_size,
            "codebook_used": int((self.counts > 0).sum()),
            "codebook_usage": float((self.counts > 0).double().mean()),
            "codebook_perplexity": float(torch.exp(-(nz * nz.log()).sum())),
        }


def _uint8_to_model(images_BHW3: np.ndarray, channels: int, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(images_BHW3).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1
    return x.mean(dim=1, keepdim=True) if channels == 1 else x


def _model_to_uint8(x_BCHW: torch.Tensor) -> torch.Tensor:
    """``[-1, 1]`` floats -> uint8 ``(B, 3, H, W)`` (gray repeated), as saved images."""
    u = ((x_BCHW.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return u.expand(-1, 3, -1, -1) if u.shape[1] == 1 else u


@torch.no_grad()
def evaluate_reconstruction(
    tokenizer: nn.Module,
    source: ImageSource | str | Path | np.ndarray | torch.Tensor,
    *,
    batch_size: int = 32,
    rfid: bool = True,
    extractor: InceptionFeatureExtractor | None = None,
    mode: str = "tf",
    inception_weights: str | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """PSNR/SSIM/rFID/codebook metrics of ``tokenizer`` (``encode``/``decode`` in ``[-1, 1]``) on ``source``.

    ``device``: where the tokenizer runs (default: its own device). All images must share one size.
    Returns a flat dict (``psnr_db``, ``ssim``, ``rfid``, ``codebook_usage``, ``codebook_perplexity``, ...).
    """
    dev = resolve_device(device) if device is not None else module_device(tokenizer)
    tokenizer = tokenizer.to(dev).eval()
    channels = tokenizer_channels(tokenizer)
    src = open_source(source)
    psnr = PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3)).to(dev)
    ssim = StructuralSimilarityIndexMeasure(data_range=1.0).to(dev)
    codebook_size = getattr(tokenizer, "codebook_size", None)
    usage = CodebookUsage(int(codebook_size)) if isinstance(codebook_size, int) else None
    if rfid and extractor is None:
        extractor = build_feature_extractor(mode, ("pool3",), inception_weights, dev)
    real_stats = fake_stats = None
    size, n, start = None, 0, time.perf_counter()
    bar = tqdm(total=len(src), desc=f"reconstruction: {src.description}", unit="img", disable=None if progress else True,
               leave=False)
    for batch in src.iter_batches(batch_size):
        shapes = {im.shape for im in batch} | ({size} if size else set())
        if len(shapes) > 1:
            raise ValueError(f"reconstruction metrics need images of one size; {src.description} mixes {sorted(shapes)}")
        size = batch[0].shape
        images = np.stack(batch)
        x = _uint8_to_model(images, channels, dev)
        codes = tokenizer.encode(x)
        recon_u8 = _model_to_uint8(tokenizer.decode(codes))
        orig_u8 = torch.from_numpy(images).to(dev).permute(0, 3, 1, 2)
        if channels == 1:  # compare what the tokenizer saw: the gray version of the input
            orig_u8 = _model_to_uint8(x)
        psnr.update(recon_u8.float() / 255, orig_u8.float() / 255)
        ssim.update(recon_u8.float() / 255, orig_u8.float() / 255)
        if usage is not None and not codes_are_continuous(codes):
            usage.update(codes)
        if rfid:
            real = extractor(orig_u8)["pool3"]
            fake = extractor(recon_u8)["pool3"]
            if real_stats is None:
                real_stats, fake_stats = RunningStats(real.shape[1]), RunningStats(fake.shape[1])
            real_stats.update(real)
            fake_stats.update(fake)
        n += len(batch)
        bar.update(len(batch))
    bar.close()
    result: dict[str, Any] = {
        "num_images": n, "skipped": src.skipped, "data": src.description,
        "psnr_db": float(psnr.compute()), "ssim": float(ssim.compute()),
        "seconds": time.perf_counter() - start,
    }
    if rfid:
        result["rfid"] = fid_from_stats(fake_stats.finalize(), real_stats.finalize())
        result["features"] = extractor.name
    if usage is not None and int(usage.counts.sum()) > 0:
        result.update(usage.summary())
    return result


def codes_are_continuous(codes: torch.Tensor | list | tuple) -> bool:
    """True if the tokenizer returned latents (floats) rather than discrete codes."""
    first = codes[0] if isinstance(codes, (list, tuple)) else codes
    return bool(torch.is_floating_point(first))
