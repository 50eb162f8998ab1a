"""Gaussian feature statistics (``mu``, ``sigma``): streamed, saved, loaded (ADM reference-batch format).

:class:`RunningStats` accumulates the mean and covariance of feature batches in float64 with
Chan et al.'s pairwise update (each batch is centred on its own mean before it is merged), so
50k x 2048 features never need to be held and the result equals ``np.cov(all_features)`` to
rounding.

Statistics files are ``.npz`` with the key names of OpenAI's ADM reference batches
(``VIRTUAL_imagenet256_labeled.npz``): ``mu``, ``sigma`` (pool3) and ``mu_s``, ``sigma_s`` (spatial,
for sFID). arforge adds ``num_images`` and ``features`` (which network and preprocessing made them),
and warns when statistics made with another preprocessing are compared.
"""

from __future__ import annotations

import logging
import os
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

#: feature name -> (mean key, covariance key) in a statistics file
STATS_KEYS = {"pool3": ("mu", "sigma"), "spatial": ("mu_s", "sigma_s")}


class RunningStats:
    """Streaming mean and unbiased covariance of ``(N, D)`` feature batches (float64)."""

    def __init__(self, dim: int):
        self.dim = dim
        self.n = 0
        self._mean = np.zeros(dim, dtype=np.float64)
        self._scatter = np.zeros((dim, dim), dtype=np.float64)  # sum of outer products of deviations

    def update(self, features_ND: np.ndarray | torch.Tensor) -> None:
        """Add a batch of features ``(N, D)``."""
        if isinstance(features_ND, torch.Tensor):
            features_ND = features_ND.detach().cpu().numpy()
        x = np.asarray(features_ND, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected features (N, {self.dim}), got {x.shape}")
        m = len(x)
        if m == 0:
            return
        batch_mean = x.mean(axis=0)
        centred = x - batch_mean
        delta = batch_mean - self._mean
        total = self.n + m
        self._scatter += centred.T @ centred + np.outer(delta, delta) * (self.n * m / total)
        self._mean += delta * (m / total)
        self.n = total

    def finalize(self) -> "GaussianStats":
        """The statistics so far; needs at least 2 samples."""
        if self.n < 2:
            raise ValueError(f"need at least 2 images for a covariance, got {self.n}")
        return GaussianStats(self._mean.copy(), self._scatter / (self.n - 1), self.n)


@dataclass
class GaussianStats:
    """Mean ``mu (D,)`` and covariance ``sigma (D, D)`` of ``num_images`` feature vectors (float64)."""

    mu: np.ndarray
    sigma: np.ndarray
    num_images: int = 0

    @classmethod
    def from_features(cls, features_ND: np.ndarray) -> "GaussianStats":
        """Statistics of a full ``(N, D)`` feature array."""
        acc = RunningStats(features_ND.shape[1])
        acc.update(features_ND)
        return acc.finalize()


def save_stats(path: str | Path, stats: dict[str, GaussianStats], features_name: str) -> Path:
    """Write ``{"pool3": ..., "spatial": ...}`` statistics to an ADM-style ``.npz`` (atomically)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"statistics files are .npz; got {path}")
    arrays: dict[str, np.ndarray] = {"features": np.array(features_name)}
    for name, st in stats.items():
        mu_key, sigma_key = STATS_KEYS[name]
        arrays[mu_key], arrays[sigma_key] = st.mu, st.sigma
        arrays["num_images"] = np.array(st.num_images, dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.stem}.tmp-{uuid.uuid4().hex[:8]}.npz"
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def npz_keys(path: str | Path) -> list[str]:
    """Array names in an ``.npz`` file, without reading the arrays."""
    try:
        with zipfile.ZipFile(path) as zf:
            return [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
    except zipfile.BadZipFile as err:
        raise ValueError(f"{path} is not a valid .npz file ({err})") from err


def is_stats_file(path: str | Path) -> bool:
    """True if ``path`` is an ``.npz`` holding ``mu`` and ``sigma``."""
    path = Path(path)
    return path.suffix == ".npz" and path.is_file() and {"mu", "sigma"} <= set(npz_keys(path))


def load_stats(path: str | Path, expected_features: str | None = None) -> dict[str, GaussianStats]:
    """Read statistics from an arforge or ADM ``.npz`` (``mu``/``sigma``, optional ``mu_s``/``sigma_s``).

    ``expected_features``: the :attr:`~arforge.eval.features.InceptionFeatureExtractor.name` the
    caller will compare against; a file made with a different one (e.g. another preprocessing) is
    reported with a warning. ADM files carry no such record (they were made by TF's graph,
    matching the ``"tf"`` mode).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"statistics file not found: {path}")
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        if not {"mu", "sigma"} <= keys:
            raise ValueError(f"{path} holds no statistics: expected arrays 'mu' and 'sigma', found {sorted(keys)}")
        n = int(data["num_images"]) if "num_images" in keys else 0
        made_with = str(data["features"]) if "features" in keys else None
        out = {}
        for name, (mu_key, sigma_key) in STATS_KEYS.items():
            if mu_key in keys and sigma_key in keys:
                mu, sigma = data[mu_key].astype(np.float64), data[sigma_key].astype(np.float64)
                if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
                    raise ValueError(f"{path}: {mu_key} {mu.shape} / {sigma_key} {sigma.shape} are not a (D,) mean "
                                     "and a (D, D) covariance")
                out[name] = GaussianStats(mu, sigma, n)
    if expected_features and made_with and made_with != expected_features:
        log.warning("%s was computed with %s features but they are compared with %s features; the FID is not "
                    "comparable (recompute the statistics with the same --mode)", path, made_with, expected_features)
    return out
