"""Pre-extracted token caches: encode a dataset once with a tokenizer, train generators on the codes.

A cache is one safetensors file::

    codes   int16 (N, h, w) if the codebook has <= 32768 entries, else int32
    labels  int64 (N,)

with string metadata: ``format`` (``arforge-token-cache/1``), ``tokenizer_dir``, ``codebook_size``,
``grid_shape`` (JSON list), ``dataset``, ``split``, ``num_items``, ``num_classes``, ``image_size``,
``channels`` and ``fingerprint`` (what the cache was built from, to decide whether it can be reused).
Files are written atomically (temporary file + rename).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Mapping, Protocol

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from arforge.data.errors import DataError
from arforge.utils.io import save_safetensors

log = logging.getLogger(__name__)

CACHE_FORMAT = "arforge-token-cache/1"
_INT16_MAX_CODES = 2**15


class DiscreteTokenizer(Protocol):
    """What :func:`build_token_cache` needs from a tokenizer."""

    codebook_size: int
    grid_shape: tuple[int, int]

    def encode(self, images_BCHW: torch.Tensor) -> torch.Tensor: ...


def codes_dtype(codebook_size: int) -> torch.dtype:
    """Smallest signed integer dtype holding codes ``0 .. codebook_size - 1`` (int16 or int32)."""
    return torch.int16 if codebook_size <= _INT16_MAX_CODES else torch.int32


def _pixels(item: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The tokenizer input of a dataset item or batch: ``"video"`` clips or ``"image"`` images."""
    return item["video"] if "video" in item else item["image"]


def _grid_for(tokenizer: DiscreteTokenizer, dataset: Dataset) -> tuple[int, ...]:
    """The token grid of ``dataset``'s items: ``tokenizer.grid_shape`` is either a fixed ``(h, w)`` or a
    method of the image size (``VQTokenizer.grid_shape(image_size)``), and of the clip length for
    video items (``VideoVQTokenizer.grid_shape(image_size, num_frames) -> (t, h, w)``)."""
    grid = tokenizer.grid_shape
    if callable(grid):
        if len(dataset) == 0:
            raise DataError("cannot build a token cache: the dataset is empty")
        item = dataset[0]
        height, width = _pixels(item).shape[-2:]
        grid = grid((int(height), int(width)), int(item["video"].shape[0])) if "video" in item else grid((int(height), int(width)))
    return tuple(int(s) for s in grid)


@torch.no_grad()
def build_token_cache(
    tokenizer: DiscreteTokenizer,
    dataset: Dataset,
    out_path: str | Path,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Encode every item of ``dataset`` (``{"image": (C,H,W) in [-1,1], "label"}``, or ``"video":
    (T,C,H,W)`` clips whose codes are ``(t, h, w)``) into ``out_path``.

    ``tokenizer.encode(images_BCHW)`` must return int codes ``(B, h, w)`` with ``(h, w) ==
    tokenizer.grid_shape`` (a sequence tokenizer may return ``(B, L)`` with ``grid_shape == (1, L)``) and values in ``[0, tokenizer.codebook_size)``. Items are encoded in
    dataset order on ``device`` (default: where the tokenizer's parameters are, else CPU).
    ``metadata`` adds string-valued facts (e.g. ``dataset``, ``split``, ``tokenizer_dir``).
    Returns ``out_path``; the file appears only once complete.
    """
    out_path = Path(out_path)
    codebook_size = int(tokenizer.codebook_size)
    grid_shape = _grid_for(tokenizer, dataset)
    if len(grid_shape) not in (2, 3):
        raise DataError(f"token caches hold one (h, w) code map per image or (t, h, w) per clip; this tokenizer's "
                        f"grid_shape is {grid_shape}")
    if device is None:
        params = list(tokenizer.parameters()) if isinstance(tokenizer, torch.nn.Module) else []
        device = params[0].device if params else torch.device("cpu")
    device = torch.device(device)
    was_training = isinstance(tokenizer, torch.nn.Module) and tokenizer.training
    if isinstance(tokenizer, torch.nn.Module):
        tokenizer.eval()
    num_items = len(dataset)
    if num_items == 0:
        raise DataError(f"cannot build a token cache at {out_path}: the dataset is empty")
    codes_Nhw = torch.empty((num_items, *grid_shape), dtype=codes_dtype(codebook_size))
    labels_N = torch.empty(num_items, dtype=torch.int64)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    start = 0
    try:
        for batch in tqdm(loader, desc=f"encoding {out_path.name}", unit="batch", disable=len(loader) < 5):
            images_BCHW = _pixels(batch).to(device)
            codes = tokenizer.encode(images_BCHW)
            if not isinstance(codes, torch.Tensor):
                raise DataError(
                    f"tokenizer.encode returned {type(codes).__name__}, not one code tensor (B, h, w): "
                    "continuous tokenizers cannot be cached as a token grid"
                )
            batch_size_now = images_BCHW.shape[0]
            if codes.ndim == 2 and grid_shape[0] == 1:  # sequence tokenizers (multi-scale VQ): (B, L), grid (1, L)
                codes = codes[:, None]
            if tuple(codes.shape) != (batch_size_now, *grid_shape) or codes.is_floating_point():
                raise DataError(
                    f"tokenizer.encode returned {tuple(codes.shape)} {codes.dtype}; expected integer codes "
                    f"{(batch_size_now, *grid_shape)} matching its grid_shape"
                )
            lo, hi = int(codes.min()), int(codes.max())
            if lo < 0 or hi >= codebook_size:
                raise DataError(f"tokenizer.encode returned codes in [{lo}, {hi}], outside [0, {codebook_size})")
            codes_Nhw[start: start + batch_size_now] = codes.to("cpu", codes_Nhw.dtype)
            labels_N[start: start + batch_size_now] = batch["label"].to(torch.int64).reshape(-1)
            start += batch_size_now
    finally:
        if was_training:
            tokenizer.train()
    meta = {
        "format": CACHE_FORMAT,
        "codebook_size": str(codebook_size),
        "grid_shape": json.dumps(list(grid_shape)),
        "num_items": str(num_items),
        "num_classes": str(getattr(dataset, "num_classes", int(labels_N.max()) + 1)),
    }
    for key in ("image_size", "channels", "num_frames"):
        if getattr(dataset, key, None) is not None:
            meta[key] = str(getattr(dataset, key))
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    save_safetensors({"codes": codes_Nhw, "labels": labels_N}, out_path, metadata=meta)
    log.info("wrote %d token maps %s to %s", num_items, grid_shape, out_path)
    return out_path


def read_format_metadata(path: str | Path, fmt: str, what: str) -> dict[str, str]:
    """The string metadata of a cache file whose ``format`` entry must be ``fmt`` (``what`` names it in errors)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} (check data.path, or build it with data.tokenizer + data.source)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except Exception as err:
        raise DataError(f"{path} is not a readable safetensors {what} ({err})") from err
    if meta.get("format") != fmt:
        raise DataError(f"{path} is not an arforge {what} (metadata format={meta.get('format')!r}, expected {fmt!r})")
    return meta


def read_cache_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a token cache; raises :class:`DataError` if ``path`` is not one."""
    return read_format_metadata(path, CACHE_FORMAT, "token cache")


class CacheDataset(Dataset):
    """A cache file of per-item tensors ``data_key`` plus ``labels``, with the describing metadata.

    Checks that both tensors exist and have one entry per item; sets ``grid_shape``,
    ``tokenizer_dir``, ``num_classes``, ``image_size`` and ``channels`` (the last two from the
    source images, ``None`` if unknown). Subclasses name the format and the item key.
    """

    fmt: str
    what: str
    data_key: str

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.metadata = read_format_metadata(self.path, self.fmt, self.what)
        tensors = load_file(str(self.path))
        missing = {self.data_key, "labels"} - set(tensors)
        if missing:
            raise DataError(f"{self.what} {self.path} lacks tensor(s) {sorted(missing)}; rebuild it")
        self.data = tensors[self.data_key]
        self.labels = tensors["labels"].to(torch.int64)
        if self.data.shape[0] != self.labels.shape[0]:
            raise DataError(f"{self.what} {self.path}: {self.data.shape[0]} {self.data_key} entries but "
                            f"{self.labels.shape[0]} labels; rebuild it")
        self.grid_shape = tuple(json.loads(self.metadata["grid_shape"]))
        self.tokenizer_dir = self.metadata.get("tokenizer_dir")
        self.num_classes = int(self.metadata.get("num_classes", int(self.labels.max()) + 1))
        self.image_size = int(self.metadata["image_size"]) if "image_size" in self.metadata else None
        self.channels = int(self.metadata["channels"]) if "channels" in self.metadata else None

    def __len__(self) -> int:
        return self.data.shape[0]


class TokenDataset(CacheDataset):
    """A token cache. Items: ``{"codes": int64 (h, w), "label": int64 scalar}``; ``codebook_size``
    and the :class:`CacheDataset` attributes describe the data."""

    fmt, what, data_key = CACHE_FORMAT, "token cache", "codes"

    def __init__(self, path: str | Path):
        super().__init__(path)
        self.codes = self.data
        self.codebook_size = int(self.metadata["codebook_size"])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"codes": self.codes[i].to(torch.int64), "label": self.labels[i]}


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def cache_fingerprint(tokenizer_dir: str | Path, source: Mapping[str, Any], split: str) -> str:
    """Hash of what a cache is built from: the tokenizer's weights and the source dataset config + split."""
    tokenizer_dir = Path(tokenizer_dir).resolve()
    weights = tokenizer_dir / "model.safetensors"
    weights_hash = file_sha256(weights) if weights.is_file() else "no-weights"
    blob = json.dumps({"tokenizer": str(tokenizer_dir), "weights": weights_hash, "source": dict(source), "split": split},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()
