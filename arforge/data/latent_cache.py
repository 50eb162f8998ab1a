"""Pre-extracted continuous latents: encode a dataset once with a continuous tokenizer (e.g. KL).

A cache is one safetensors file::

    latents  float32 (N, c, h, w)   scaled as the tokenizer's ``encode`` returns them
    labels   int64 (N,)

with string metadata ``format`` (``arforge-latent-cache/1``), ``tokenizer_dir``, ``latent_channels``,
``grid_shape`` (JSON), ``num_classes``, ``fingerprint`` and the source's ``image_size``/``channels``.
Latents are the posterior *means* (deterministic; MAR samples the posterior per epoch, which a
cache cannot reproduce exactly). Written atomically.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from arforge.data.errors import DataError
from arforge.data.token_cache import CacheDataset, read_format_metadata
from arforge.utils.io import save_safetensors

log = logging.getLogger(__name__)

LATENT_CACHE_FORMAT = "arforge-latent-cache/1"


@torch.no_grad()
def build_latent_cache(tokenizer, dataset: Dataset, out_path: str | Path, batch_size: int = 64,
                       device: str | torch.device | None = None, metadata: Mapping[str, Any] | None = None) -> Path:
    """Encode every item of ``dataset`` (``{"image": (C,H,W) in [-1,1], "label"}``) into ``out_path``.

    ``tokenizer.encode(images)`` must return float latents ``(B, c, h, w)``. Returns ``out_path``; the
    file appears only once complete.
    """
    out_path = Path(out_path)
    if len(dataset) == 0:
        raise DataError(f"cannot build a latent cache at {out_path}: the dataset is empty")
    device = torch.device(device) if device is not None else next(tokenizer.parameters()).device
    was_training = tokenizer.training
    tokenizer.eval()
    chunks, labels = [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    try:
        for batch in tqdm(loader, desc=f"encoding {out_path.name}", unit="batch", disable=len(loader) < 5):
            z = tokenizer.encode(batch["image"].to(device))
            if not torch.is_tensor(z) or not z.is_floating_point() or z.ndim != 4:
                raise DataError(f"tokenizer.encode returned {getattr(z, 'shape', type(z))}; a latent cache needs float (B, c, h, w)")
            chunks.append(z.float().cpu())
            labels.append(batch["label"].to(torch.int64).reshape(-1))
    finally:
        tokenizer.train(was_training)
    latents = torch.cat(chunks)
    labels_N = torch.cat(labels)
    meta = {
        "format": LATENT_CACHE_FORMAT,
        "latent_channels": str(latents.shape[1]),
        "grid_shape": json.dumps(list(latents.shape[2:])),
        "num_items": str(len(latents)),
        "num_classes": str(getattr(dataset, "num_classes", int(labels_N.max()) + 1)),
        "latent_std": f"{latents.std().item():.6f}",
    }
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    save_safetensors({"latents": latents.contiguous(), "labels": labels_N}, out_path, metadata=meta)
    log.info("wrote %d latents %s to %s (std %.3f)", len(latents), tuple(latents.shape[1:]), out_path, latents.std().item())
    return out_path


def read_latent_cache_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a latent cache; raises :class:`DataError` if ``path`` is not one."""
    return read_format_metadata(path, LATENT_CACHE_FORMAT, "latent cache")


class LatentDataset(CacheDataset):
    """A latent cache. Items: ``{"latents": float32 (c, h, w), "label": int64 scalar}``;
    ``latent_channels`` and the :class:`CacheDataset` attributes describe the data."""

    fmt, what, data_key = LATENT_CACHE_FORMAT, "latent cache", "latents"

    def __init__(self, path: str | Path):
        super().__init__(path)
        self.latents = self.data
        self.latent_channels = int(self.metadata["latent_channels"])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"latents": self.latents[i], "label": self.labels[i]}
