"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD^2 with a cubic polynomial kernel.

``k(x, y) = (x.y / D + 1)^3``; the unbiased MMD^2 estimate is averaged over ``subsets`` random
subsets of ``subset_size`` features per side. Subsets are drawn exactly as torch-fidelity draws
them (``numpy.random.RandomState(seed).choice(n, subset_size, replace=False)``, first set 1 then
set 2, per subset; torch-fidelity's default seed is 2020), so the same features give the same
subsets and the numbers are directly comparable; kernels are evaluated in float64.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

#: torch-fidelity's default ``rng_seed``
DEFAULT_SEED = 2020


def polynomial_kernel(x_ND: np.ndarray, y_MD: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """``(x @ y.T / D + coef0) ** degree`` as ``(N, M)`` float64."""
    return (x_ND @ y_MD.T / x_ND.shape[1] + coef0) ** degree


def mmd2_unbiased(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    """Unbiased MMD^2 from ``(m, m)`` kernel matrices (diagonals of ``k_xx``/``k_yy`` excluded)."""
    m = k_xx.shape[0]
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    features1_ND: np.ndarray,
    features2_MD: np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = DEFAULT_SEED,
) -> dict[str, float]:
    """KID between two feature sets: ``{"kid": mean, "kid_std": std over subsets, "kid_subset_size": m}``.

    ``subset_size`` larger than either set is reduced to the smaller set's size (logged).
    """
    x = np.asarray(features1_ND, dtype=np.float64)
    y = np.asarray(features2_MD, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"feature sets must be (N, D) and (M, D), got {x.shape} and {y.shape}")
    m = min(subset_size, len(x), len(y))
    if m < 2:
        raise ValueError(f"KID needs at least 2 images per side, got {len(x)} and {len(y)}")
    if m < subset_size:
        log.info("KID subset size reduced from %d to %d (the smaller set's size)", subset_size, m)
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        xs = x[rng.choice(len(x), m, replace=False)]
        ys = y[rng.choice(len(y), m, replace=False)]
        values[i] = mmd2_unbiased(polynomial_kernel(xs, xs), polynomial_kernel(xs, ys), polynomial_kernel(ys, ys))
    return {"kid": float(values.mean()), "kid_std": float(values.std()), "kid_subset_size": int(m)}
