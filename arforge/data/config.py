"""``DataConfig``: the YAML ``data:`` section that picks and shapes a dataset.

Example (built-in MNIST)::

    data: {name: mnist, image_size: 32, channels: 1, batch_size: 64}

An image folder (``root/<class>/*.png``; a flat folder means one class)::

    data: {name: folder, path: /data/imagenet/train, val_path: /data/imagenet/val, image_size: 256}

Pre-extracted tokens, from an existing cache or built next to the run from a tokenizer::

    data: {name: tokens, path: runs/tok/tokens_train.safetensors}
    data: {name: tokens, tokenizer: runs/tok/model, source: {name: mnist, channels: 1}}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional


@dataclass
class DataConfig:
    """Which dataset to read and how.

    ``name``: registered dataset (``mnist``, ``folder``, ``tokens`` or a user-registered one).
    ``path`` / ``val_path``: data location for the training split and the evaluation split (folder
    root or token-cache file). ``split`` / ``val_split``: split names used for training and for
    periodic evaluation (``val_split: null`` turns evaluation data off). ``image_size`` (pixels) and
    ``channels`` (1 or 3) shape every image; ``batch_size`` is per process and per micro-batch.
    ``num_workers`` > 0 loads in worker processes (the order stays a function of seed and step).
    ``limit`` > 0 keeps ``limit`` evenly spaced items (tiny CPU runs). ``verify``: how image
    folders are checked once when indexed (``fast``: header/CRC check, ``full``: decode every image,
    ``none``). ``tokenizer`` + ``source``: build a token cache of ``source`` with that tokenizer.
    ``augment_views`` > 1 turns every training image into that many deterministic views (the
    original + copies shifted by up to ``augment_max_shift`` pixels); evaluation data is never
    augmented. Used on a token cache's ``source`` it multiplies the cached codes. On ``moving_mnist``
    the views are extra clips of every training digit on other trajectories. ``num_frames``:
    frames per clip of video datasets (``moving_mnist``, ``video_folder``).
    """

    name: str = "mnist"
    path: Optional[str] = None
    val_path: Optional[str] = None
    split: str = "train"
    val_split: Optional[str] = "val"
    image_size: int = 32
    channels: int = 3
    batch_size: int = 32
    num_workers: int = 0
    limit: int = 0
    verify: Literal["fast", "full", "none"] = "fast"
    tokenizer: Optional[str] = None
    source: Optional["DataConfig"] = None
    augment_views: int = 1
    augment_max_shift: int = 2
    num_frames: int = 8

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {self.channels}")
        if self.image_size < 1:
            raise ValueError(f"image_size must be a positive number of pixels, got {self.image_size}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.augment_views < 1:
            raise ValueError(f"augment_views must be >= 1 (1 = no augmentation), got {self.augment_views}")
        if self.augment_max_shift < 0:
            raise ValueError(f"augment_max_shift must be >= 0 pixels, got {self.augment_max_shift}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.limit < 0:
            raise ValueError(f"limit must be >= 0 (0 = every item), got {self.limit}")
