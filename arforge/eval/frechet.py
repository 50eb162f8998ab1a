"""Fréchet distance between two Gaussians: the number behind FID and sFID.

``FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``.

The trace term is ``sum(sqrt(eig(S1 S2)))``. Instead of the non-symmetric ``sqrtm``/``eigvals``
of the reference code (slow, and prone to imaginary round-off), one covariance is factored with a
rank-revealing pivoted Cholesky, ``P^T S2 P = L L^T`` with ``L`` of shape ``(D, r)``, and the
non-zero eigenvalues of ``S1 S2`` are those of the symmetric PSD ``(r, r)`` matrix
``L^T (P^T S1 P) L``. With fewer images than dimensions (``r = N - 1 < 2048``) this is a small
eigenproblem, and it stays exact for the self-distance (no noise eigenvalues to clip). Everything
is float64. The measured agreement with the ``eigvals``-based formula of TTUR/torch-fidelity is in
docs/eval.md.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch
from scipy.linalg import lapack

from arforge.eval.stats import GaussianStats


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Run torch single-threaded inside the block: the symmetric eigensolver is latency-bound, and
    its multi-threaded version is slower on small or busy CPUs (timings: docs/eval.md)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def pivoted_cholesky(sigma_DD: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(perm, L)`` with ``sigma[perm][:, perm] = L @ L.T``, ``L`` ``(D, r)``, ``r`` the numerical rank."""
    c, piv, rank, info = lapack.dpstrf(np.asarray(sigma_DD, np.float64), lower=1)
    if info < 0:
        raise ValueError(f"pivoted Cholesky failed (LAPACK dpstrf info={info})")
    return piv - 1, np.tril(c)[:, :rank]


def trace_sqrt_product(sigma1_DD: np.ndarray, sigma2_DD: np.ndarray) -> float:
    """``tr((S1 S2)^(1/2))`` for symmetric PSD ``S1``, ``S2`` (the lower-rank one is factored)."""
    perm1, l1 = pivoted_cholesky(sigma1_DD)
    perm2, l2 = pivoted_cholesky(sigma2_DD)
    if l1.shape[1] < l2.shape[1]:
        sigma1_DD, sigma2_DD, perm2, l2 = sigma2_DD, sigma1_DD, perm1, l1
    m = l2.T @ sigma1_DD[np.ix_(perm2, perm2)] @ l2
    m = (m + m.T) / 2
    with _single_thread():
        ev = torch.linalg.eigvalsh(torch.from_numpy(m)).numpy()
    return float(np.sqrt(np.clip(ev, 0, None)).sum())


def frechet_distance(mu1_D: np.ndarray, sigma1_DD: np.ndarray, mu2_D: np.ndarray, sigma2_DD: np.ndarray) -> float:
    """Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)`` (float64, symmetric in its arguments)."""
    mu1, mu2 = np.asarray(mu1_D, np.float64), np.asarray(mu2_D, np.float64)
    s1, s2 = np.asarray(sigma1_DD, np.float64), np.asarray(sigma2_DD, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise ValueError(
            f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape} "
            "(were they computed from different feature layers?)"
        )
    if not (np.isfinite(mu1).all() and np.isfinite(mu2).all() and np.isfinite(s1).all() and np.isfinite(s2).all()):
        raise ValueError("statistics contain NaN or inf values")
    if (np.trace(s2), np.abs(s2).sum()) > (np.trace(s1), np.abs(s1).sum()):
        # a canonical argument order makes the floating-point result exactly symmetric
        mu1, s1, mu2, s2 = mu2, s2, mu1, s1
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt_product(s1, s2))


def fid_from_stats(stats1: GaussianStats, stats2: GaussianStats) -> float:
    """FID between two :class:`~arforge.eval.stats.GaussianStats`."""
    return frechet_distance(stats1.mu, stats1.sigma, stats2.mu, stats2.sigma)
