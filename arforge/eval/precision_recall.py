"""Improved precision and recall (Kynkäänniemi et al. 2019) on Inception pool3 features.

Each set's manifold is the union of balls around its points with radius = distance to the point's
``k``-th nearest neighbour in the same set (``k = 3``; the point itself does not count). Precision
= fraction of generated samples inside the real manifold; recall = fraction of real samples inside
the generated manifold. Distances are computed in row blocks (``block`` rows at a time, float64),
so memory is ``block x N`` rather than ``N x N``.
"""

from __future__ import annotations

import numpy as np
import torch


def _pairwise_distances(a_ND: torch.Tensor, b_MD: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``(N, M)`` in float64 (squared norms expanded, clamped at 0)."""
    sq = (a_ND * a_ND).sum(1, keepdim=True) - 2 * a_ND @ b_MD.T + (b_MD * b_MD).sum(1)[None]
    return sq.clamp_min(0).sqrt()


def knn_radii(features_ND: torch.Tensor, k: int = 3, block: int = 1024) -> torch.Tensor:
    """Distance of each point to its ``k``-th nearest other point, ``(N,)``."""
    if len(features_ND) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} images per set, got {len(features_ND)}")
    radii = []
    for start in range(0, len(features_ND), block):
        d = _pairwise_distances(features_ND[start: start + block], features_ND)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # the smallest distance is the point itself
    return torch.cat(radii)


def _coverage(queries_ND: torch.Tensor, points_MD: torch.Tensor, radii_M: torch.Tensor, block: int) -> float:
    """Fraction of ``queries`` within ``radii`` of at least one of ``points``."""
    inside = []
    for start in range(0, len(queries_ND), block):
        d = _pairwise_distances(queries_ND[start: start + block], points_MD)
        inside.append((d <= radii_M[None]).any(dim=1))
    return float(torch.cat(inside).double().mean())


def precision_recall(real_ND: np.ndarray, fake_MD: np.ndarray, k: int = 3, block: int = 1024) -> dict[str, float]:
    """``{"precision", "recall"}`` of generated features ``fake`` against ``real`` features."""
    real = torch.as_tensor(np.asarray(real_ND), dtype=torch.float64)
    fake = torch.as_tensor(np.asarray(fake_MD), dtype=torch.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sets must be (N, D) and (M, D), got {tuple(real.shape)} and {tuple(fake.shape)}")
    precision = _coverage(fake, real, knn_radii(real, k, block), block)
    recall = _coverage(real, fake, knn_radii(fake, k, block), block)
    return {"precision": precision, "recall": recall}
