"""arforge.data: built-in datasets, image folders, token caches and a resumable batch order.

Items are dicts: image data ``{"image": float32 (C, H, W) in [-1, 1], "label": int64}``, token data
``{"codes": int64 (h, w), "label": int64}``. Build a dataset from a :class:`DataConfig` with
:func:`build_dataset`; :func:`data_info` tells a training task what the data looks like.
"""

from arforge.data.batching import EpochBatchSampler
from arforge.data.config import DataConfig
from arforge.data.errors import DataError
from arforge.data.folder import ImageFolder
from arforge.data.mnist import MNIST
from arforge.data.registry import DATASETS, build_dataset, data_info
from arforge.data.token_cache import TokenDataset, build_token_cache
from arforge.data.transforms import center_crop_arr, convert_channels

__all__ = [
    "DATASETS",
    "DataConfig",
    "DataError",
    "EpochBatchSampler",
    "ImageFolder",
    "MNIST",
    "TokenDataset",
    "build_dataset",
    "build_token_cache",
    "center_crop_arr",
    "convert_channels",
    "data_info",
]
