"""Reconstruction metrics with a small hand-written tokenizer whose outputs are known exactly."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from arforge.eval.recon import CodebookUsage, evaluate_reconstruction, tokenizer_channels
from arforge.eval.sources import ImageSource

LEVELS = 8


class BlockTokenizer(nn.Module):
    """Codes: the gray level of each 2x2 block quantised to 8 levels; decode paints the blocks back."""

    codebook_size = LEVELS

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.config = SimpleNamespace(in_channels=in_channels)
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the module a device

    def encode(self, images_BCHW: torch.Tensor) -> torch.Tensor:
        gray = images_BCHW.mean(dim=1, keepdim=True)
        return ((F.avg_pool2d(gray, 2)[:, 0] + 1) / 2 * (LEVELS - 1)).round().long()

    def decode(self, codes_Bhw: torch.Tensor) -> torch.Tensor:
        values = codes_Bhw.float() / (LEVELS - 1) * 2 - 1
        up = values.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)[:, None]
        return up.expand(-1, self.config.in_channels, -1, -1) * 1.1  # slightly out of range: clamped by the metric


def _expected(images: np.ndarray, tok: BlockTokenizer) -> tuple[float, np.ndarray]:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    codes = tok.encode(x)
    recon = ((tok.decode(codes).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    mse = ((recon.astype(np.float64) - images) / 255) ** 2
    psnr = np.mean([10 * np.log10(1 / m.mean()) for m in mse])
    return float(psnr), codes.numpy()


def test_psnr_ssim_and_codebook_metrics_are_exact(mnist_small):
    images = np.concatenate(mnist_small)
    tok = BlockTokenizer()
    res = evaluate_reconstruction(tok, images, batch_size=5, rfid=False, progress=False)
    psnr, codes = _expected(images, tok)
    assert res["num_images"] == 16 and res["psnr_db"] == pytest.approx(psnr, rel=1e-5)
    assert 0.3 < res["ssim"] < 1.0
    counts = np.bincount(codes.ravel(), minlength=LEVELS)
    p = counts[counts > 0] / counts.sum()
    assert res["codebook_used"] == int((counts > 0).sum()) and res["codebook_usage"] == (counts > 0).mean()
    assert res["codebook_perplexity"] == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-9)
    json.dumps(res)  # metrics.json-ready


def test_gray_tokenizer_and_rfid(mnist_small, tf_extractor):
    tok = BlockTokenizer(in_channels=1)
    assert tokenizer_channels(tok) == 1
    res = evaluate_reconstruction(tok, mnist_small[0][:3], batch_size=3, rfid=True, extractor=tf_extractor,
                                  progress=False)
    assert res["rfid"] > 0 and math.isfinite(res["rfid"]) and res["features"].endswith("/tf")
    assert res["psnr_db"] > 5


def test_mixed_sizes_are_refused_and_codes_checked(tmp_path):
    tok = BlockTokenizer()
    mixed = [np.zeros((8, 8, 3), np.uint8), np.zeros((6, 6, 3), np.uint8)]

    class Mixed(ImageSource):
        description = "mixed"

        def __len__(self):
            return 2

        def iter_batches(self, batch_size):
            yield mixed

    with pytest.raises(ValueError, match="one size"):
        evaluate_reconstruction(tok, Mixed(), rfid=False, progress=False)
    usage = CodebookUsage(4)
    usage.update([torch.tensor([[0, 1]]), torch.tensor([1, 1, 2])])  # multi-scale: a list of code maps
    assert usage.summary()["codebook_used"] == 3
    with pytest.raises(ValueError, match="out of range"):
        usage.update(torch.tensor([4]))
