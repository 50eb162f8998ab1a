"""Triton implementation of :func:`arforge.kernels.vq.nearest_code` (imported on first use).

Each program takes ``BLOCK_N`` rows, walks the codebook in ``BLOCK_K`` blocks computing
``|e|^2 - 2 z.e`` (``|z|^2`` is constant per row and does not move the argmin) and keeps the running
minimum and its index; only the ``N`` indices are written.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _nearest_kernel(z_ptr, e_ptr, out_ptr, N, K, D, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    dims = tl.arange(0, BLOCK_D)
    z = tl.load(z_ptr + rows[:, None] * D + dims[None, :], mask=(rows[:, None] < N) & (dims[None, :] < D), other=0.0)
    best = tl.full((BLOCK_N,), float("inf"), tl.float32)
    best_idx = tl.zeros((BLOCK_N,), tl.int32)
    for start in range(0, K, BLOCK_K):
        codes = start + tl.arange(0, BLOCK_K)
        e = tl.load(e_ptr + codes[:, None] * D + dims[None, :], mask=(codes[:, None] < K) & (dims[None, :] < D), other=0.0)
        ee = tl.sum(e * e, axis=1)
        d = ee[None, :] - 2.0 * tl.dot(z, tl.trans(e), input_precision="ieee")
        d = tl.where(codes[None, :] < K, d, float("inf"))
        block_min = tl.min(d, axis=1)
        block_arg = tl.argmin(d, axis=1).to(tl.int32) + start
        better = block_min < best  # strict: an earlier block wins ties, as argmin's lowest index
        best_idx = tl.where(better, block_arg, best_idx)
        best = tl.where(better, block_min, best)
    tl.store(out_ptr + rows, best_idx.to(tl.int64), mask=rows < N)


def nearest_code_triton(z_ND: torch.Tensor, codebook_KD: torch.Tensor) -> torch.Tensor:
    """:func:`arforge.kernels.vq.nearest_code` with the Triton kernel."""
    z = z_ND.float().contiguous()
    e = codebook_KD.float().contiguous()
    N, D = z.shape
    out = torch.empty(N, dtype=torch.int64, device=z.device)
    if N == 0:
        return out
    block_d = max(16, triton.next_power_of_2(D))
    block_n, block_k = 32, 64
    _nearest_kernel[(triton.cdiv(N, block_n),)](z, e, out, N, e.shape[0], D, BLOCK_N=block_n, BLOCK_K=block_k,
                                                 BLOCK_D=block_d)
    return out
