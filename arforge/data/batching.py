"""Deterministic, resumable batch order: micro-batch ``b`` is a pure function of ``(seed, b)``.

Each epoch is a fresh permutation of the dataset drawn from ``numpy.random.default_rng([seed,
epoch])``; micro-batch ``b`` belongs to epoch ``b // batches_per_epoch``. Resuming at any step
therefore needs only the index of the next micro-batch, and never touches a global RNG. With
several processes every global batch of ``batch_size * num_replicas`` items is dealt out
round-robin, so process ``rank`` sees a disjoint share of it.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from arforge.data.errors import DataError


class EpochBatchSampler:
    """Index lists for micro-batches ``start, start + 1, ...`` (an infinite stream, last partial batch dropped).

    ``num_items``: dataset length. ``batch_size``: items per micro-batch per process. ``seed``: a
    non-negative integer. Use :meth:`batch` for random access and :meth:`iter_from` as a
    ``DataLoader`` ``batch_sampler``.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, *, num_replicas: int = 1, rank: int = 0):
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.global_batch = batch_size * num_replicas
        if num_items < self.global_batch:
            raise DataError(
                f"the dataset has {num_items} items, fewer than one batch of {self.global_batch} "
                f"(data.batch_size={batch_size} x {num_replicas} process(es)); lower data.batch_size or raise data.limit"
            )
        self.batches_per_epoch = num_items // self.global_batch
        self._epoch = -1
        self._perm = np.empty(0, dtype=np.int64)

    def permutation(self, epoch: int) -> np.ndarray:
        """The item order of ``epoch`` (int64 array of length ``num_items``)."""
        if epoch != self._epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_items)
            self._epoch = epoch
        return self._perm

    def batch(self, index: int) -> list[int]:
        """Dataset indices of micro-batch ``index`` (>= 0) for this process."""
        epoch, pos = divmod(index, self.batches_per_epoch)
        chunk = self.permutation(epoch)[pos * self.global_batch: (pos + 1) * self.global_batch]
        return chunk[self.rank:: self.num_replicas].tolist()

    def iter_from(self, start: int) -> "_BatchStream":
        """An endless iterable of micro-batches starting at index ``start``."""
        return _BatchStream(self, start)

    def state_dict(self, next_batch: int) -> dict[str, int]:
        """What a checkpoint stores to continue the same order at micro-batch ``next_batch``."""
        return {"next_batch": next_batch, "seed": self.seed, "num_items": self.num_items,
                "batch_size": self.batch_size, "num_replicas": self.num_replicas}


class _BatchStream:
    def __init__(self, sampler: EpochBatchSampler, start: int):
        self.sampler = sampler
        self.start = start

    def __iter__(self) -> Iterator[list[int]]:
        index = self.start
        while True:
            yield self.sampler.batch(index)
            index += 1
