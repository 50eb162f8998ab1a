"""Triton implementation of :func:`arforge.kernels.verify.verify_drafts` (imported on first use).

One program per row: the acceptance tests walk the window (one gather of ``p`` and ``q`` per
position), then two blocked passes over the vocabulary at the first rejected position compute the
residual mass and draw from it; nothing of size ``V`` is written.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from arforge.kernels.sampling_triton import _lowbias32


@triton.jit
def _uniform(seed, draw_mix):
    h = _lowbias32((seed & 0xFFFFFFFF).to(tl.uint32))
    h = _lowbias32(h + draw_mix.to(tl.uint32))
    return ((h >> 8).to(tl.float32) + 0.5) * (1.0 / 16777216.0)


@triton.jit
def _verify_kernel(draft_ptr, q_ptr, p_ptr, seed_ptr, valid_ptr, mix_ptr, n_out_ptr, tok_out_ptr, T, V,
                   BLOCK: tl.constexpr):
    row = tl.program_id(0)
    seed = tl.load(seed_ptr + row).to(tl.int64)
    base = row.to(tl.int64) * T
    n = tl.zeros((), tl.int32)
    going = tl.full((), 1, tl.int32)
    for t in range(0, T):
        x = tl.load(draft_ptr + base + t)
        p_x = tl.load(p_ptr + (base + t) * V + x).to(tl.float32)
        q_x = tl.load(q_ptr + (base + t) * V + x).to(tl.float32)
        u = _uniform(seed, tl.load(mix_ptr + t))
        ok = (u * q_x < p_x) & (tl.load(valid_ptr + base + t) != 0)
        going = going * ok.to(tl.int32)
        n += going
    j = tl.minimum(n, T - 1)
    off = (base + j) * V
    mass = tl.zeros((), tl.float32)
    for start in range(0, V, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        m = cols < V
        r = tl.maximum(tl.load(p_ptr + off + cols, mask=m, other=0.0).to(tl.float32)
                       - tl.load(q_ptr + off + cols, mask=m, other=0.0).to(tl.float32), 0.0)
        mass += tl.sum(r, axis=0)
    use_p = mass <= 1e-12
    total = tl.zeros((), tl.float32)
    for start in range(0, V, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        m = cols < V
        p = tl.load(p_ptr + off + cols, mask=m, other=0.0).to(tl.float32)
        r = tl.where(use_p, p, tl.maximum(p - tl.load(q_ptr + off + cols, mask=m, other=0.0).to(tl.float32), 0.0))
        total += tl.sum(r, axis=0)
    goal = _uniform(seed, tl.load(mix_ptr + T)) * total
    running = tl.zeros((), tl.float32)
    token = tl.full((), V - 1, tl.int32)
    for start in range(0, V, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        m = cols < V
        p = tl.load(p_ptr + off + cols, mask=m, other=0.0).to(tl.float32)
        r = tl.where(use_p, p, tl.maximum(p - tl.load(q_ptr + off + cols, mask=m, other=0.0).to(tl.float32), 0.0))
        r = tl.where(m, r, 0.0)
        cdf = running + tl.cumsum(r, axis=0)
        token = tl.minimum(token, tl.min(tl.where(m & (cdf > goal), cols, V - 1), axis=0))
        running += tl.sum(r, axis=0)
    has_next = (n < T) & (tl.load(valid_ptr + base + j) != 0)
    tl.store(n_out_ptr + row, n.to(tl.int64))
    tl.store(tok_out_ptr + row, tl.where(has_next, token, -1).to(tl.int64))


def verify_drafts_triton(draft_BT, q_BTV, p_BTV, seed_B, tests: list[int], residual_draw: int,
                         valid_BT) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`arforge.kernels.verify.verify_drafts` with the Triton kernel (``tests``, ``residual_draw``:
    the uniforms' draw numbers)."""
    B, T, V = p_BTV.shape
    mixes = torch.tensor([(n & 0xFFFFFFFF) * 0x9E3779B9 & 0xFFFFFFFF for n in tests + [residual_draw]],
                         dtype=torch.int64, device=p_BTV.device)
    n_out = torch.empty(B, dtype=torch.int64, device=p_BTV.device)
    tok_out = torch.empty(B, dtype=torch.int64, device=p_BTV.device)
    if B:
        _verify_kernel[(B,)](draft_BT.contiguous(), q_BTV.contiguous(), p_BTV.contiguous(), seed_B.contiguous().long(),
                             valid_BT.contiguous().to(torch.int8), mixes, n_out, tok_out, T, V,
                             BLOCK=min(1024, triton.next_power_of_2(V)))
    return n_out, tok_out
