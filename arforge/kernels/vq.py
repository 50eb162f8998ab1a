"""Nearest codebook entry without the ``N x K`` distance matrix.

:func:`nearest_code` returns, for each row of ``z_ND``, the index of the code minimising the squared
Euclidean distance ``|z|^2 + |e|^2 - 2 z.e`` (ties: the lowest index, as ``argmin``). Pass unit-norm
rows and codes for an l2-normalised codebook (the distance is then ``2 - 2 z.e``). The reference works
on blocks of rows, so its peak memory is one ``(block, K)`` slice (``max_block_bytes``); the Triton
kernel keeps a running minimum over code blocks in registers and writes only the ``N`` indices.
"""

from __future__ import annotations

import torch

from arforge.kernels.dispatch import kernel_backend

#: default cap on the distance slice the reference materialises at once
MAX_BLOCK_BYTES = 32 * 2**20


def nearest_code(z_ND: torch.Tensor, codebook_KD: torch.Tensor, *, max_block_bytes: int = MAX_BLOCK_BYTES,
                 backend: str | None = None) -> torch.Tensor:
    """int64 ``(N,)``: the nearest row of ``codebook_KD`` (float, ``(K, D)``) to each row of ``z_ND``."""
    if z_ND.ndim != 2 or codebook_KD.ndim != 2 or z_ND.shape[1] != codebook_KD.shape[1]:
        raise ValueError(f"expected z (N, D) and codebook (K, D) with the same D, got {tuple(z_ND.shape)} and "
                         f"{tuple(codebook_KD.shape)}")
    backend = backend or kernel_backend(z_ND.device)
    if backend == "triton":
        from arforge.kernels.vq_triton import nearest_code_triton

        return nearest_code_triton(z_ND, codebook_KD)
    if backend != "reference":
        raise ValueError(f"unknown kernel backend {backend!r}; use 'reference' or 'triton'")
    return nearest_code_reference(z_ND, codebook_KD, max_block_bytes)


@torch.no_grad()
def nearest_code_reference(z_ND: torch.Tensor, codebook_KD: torch.Tensor, max_block_bytes: int = MAX_BLOCK_BYTES) -> torch.Tensor:
    """The blocked PyTorch reference of :func:`nearest_code` (float32 distances, ``max_block_bytes`` at a time)."""
    z_ND, codebook_KD = z_ND.float(), codebook_KD.float()
    N, K = z_ND.shape[0], codebook_KD.shape[0]
    block = max(1, min(N, max_block_bytes // (4 * max(K, 1))))
    ee_K = codebook_KD.square().sum(1)
    out = torch.empty(N, dtype=torch.long, device=z_ND.device)
    for start in range(0, N, block):
        out[start:start + block] = block_distances(z_ND[start:start + block], codebook_KD, ee_K).argmin(dim=1)
    return out


def block_distances(z_nD: torch.Tensor, codebook_KD: torch.Tensor, ee_K: torch.Tensor) -> torch.Tensor:
    """Squared distances ``(n, K)`` of a block of rows (``ee_K``: the codes' squared norms)."""
    return (z_nD.square().sum(1, keepdim=True) + ee_K).addmm_(z_nD, codebook_KD.t(), alpha=-2.0, beta=1.0)
