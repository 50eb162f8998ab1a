"""Triton implementation of :func:`arforge.kernels.sampling.sample_tokens` (imported on first use).

One program per row, blocked passes over the vocabulary, nothing of size ``V`` written back:

1. max / min of the guided, temperature-scaled logits ``x``;
2. top-k: bisection on a logit threshold (the largest ``t`` with ``count(x >= t) >= k``);
3. ``Z = sum exp(x - max)`` over the kept logits;
4. top-p: bisection on a probability threshold (the largest ``tau`` whose kept mass reaches ``p Z``);
5. the inverse-CDF draw of the row's uniform over the kept weights, in vocabulary order.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _logits_block(cond_ptr, uncond_ptr, row_off, cols, V, cfg_scale, inv_temp, HAS_UNCOND: tl.constexpr):
    valid = cols < V
    x = tl.load(cond_ptr + row_off + cols, mask=valid, other=0.0).to(tl.float32)
    if HAS_UNCOND:  # torch.lerp(u, x, s), operation for operation
        u = tl.load(uncond_ptr + row_off + cols, mask=valid, other=0.0).to(tl.float32)
        diff = x - u
        if cfg_scale < 0.5:
            x = u + cfg_scale * diff
        else:
            x = x - diff * (1.0 - cfg_scale)
    return x * inv_temp, valid


@triton.jit
def _kept_block(cond_ptr, uncond_ptr, row_off, cols, V, cfg_scale, inv_temp, m, tau_x, tau_e, HAS_UNCOND: tl.constexpr):
    """Weights ``exp(x - m)`` of a block where ``x >= tau_x`` and the weight ``>= tau_e`` (0 elsewhere)."""
    x, valid = _logits_block(cond_ptr, uncond_ptr, row_off, cols, V, cfg_scale, inv_temp, HAS_UNCOND)
    e = tl.exp(x - m)
    return tl.where(valid & (x >= tau_x) & (e >= tau_e), e, 0.0), valid


@triton.jit
def _lowbias32(h):
    h = h ^ (h >> 16)
    h = h * tl.full((), 0x7FEB352D, tl.uint32)
    h = h ^ (h >> 15)
    h = h * tl.full((), 0x846CA68B, tl.uint32)
    return h ^ (h >> 16)


@triton.jit
def _sample_kernel(cond_ptr, uncond_ptr, seed_ptr, out_ptr, V, stride, offset_mix, cfg_scale, inv_temp, top_k, top_p,
                   HAS_UNCOND: tl.constexpr, TOP_K: tl.constexpr, TOP_P: tl.constexpr, STEPS: tl.constexpr,
                   BLOCK: tl.constexpr):
    row = tl.program_id(0)
    row_off = row.to(tl.int64) * stride
    neg_inf = float("-inf")

    m = tl.full((), neg_inf, tl.float32)
    lo_x = tl.full((), float("inf"), tl.float32)
    for start in range(0, V, BLOCK):
        x, valid = _logits_block(cond_ptr, uncond_ptr, row_off, start + tl.arange(0, BLOCK), V, cfg_scale, inv_temp, HAS_UNCOND)
        m = tl.maximum(m, tl.max(tl.where(valid, x, neg_inf), axis=0))
        lo_x = tl.minimum(lo_x, tl.min(tl.where(valid, x, float("inf")), axis=0))

    tau_x = tl.full((), neg_inf, tl.float32)
    if TOP_K:  # largest t with count(x >= t) >= k; invariant: count(x >= lo) >= k > count(x >= hi)
        lo = lo_x
        hi = m + 1.0
        for _ in range(STEPS):
            mid = (lo + hi) * 0.5
            count = tl.zeros((), tl.int32)
            for start in range(0, V, BLOCK):
                x, valid = _logits_block(cond_ptr, uncond_ptr, row_off, start + tl.arange(0, BLOCK), V, cfg_scale,
                                         inv_temp, HAS_UNCOND)
                count += tl.sum((valid & (x >= mid)).to(tl.int32), axis=0)
            enough = count >= top_k
            lo = tl.where(enough, mid, lo)
            hi = tl.where(enough, hi, mid)
        tau_x = lo

    z = tl.zeros((), tl.float32)
    for start in range(0, V, BLOCK):
        w, _ = _kept_block(cond_ptr, uncond_ptr, row_off, start + tl.arange(0, BLOCK), V, cfg_scale, inv_temp, m, tau_x,
                           0.0, HAS_UNCOND)
        z += tl.sum(w, axis=0)

    tau_e = tl.zeros((), tl.float32)
    if TOP_P:  # largest tau with sum(e[e >= tau]) >= p Z over the top-k survivors
        target = top_p * z
        lo_e = tl.zeros((), tl.float32)
        hi_e = tl.full((), 1.0 + 1e-6, tl.float32)
        for _ in range(STEPS):
            mid = (lo_e + hi_e) * 0.5
            mass = tl.zeros((), tl.float32)
            for start in range(0, V, BLOCK):
                w, _ = _kept_block(cond_ptr, uncond_ptr, row_off, start + tl.arange(0, BLOCK), V, cfg_scale, inv_temp, m,
                                   tau_x, mid, HAS_UNCOND)
                mass += tl.sum(w, axis=0)
            enough = mass >= target
            lo_e = tl.where(enough, mid, lo_e)
            hi_e = tl.where(enough, hi_e, mid)
        tau_e = lo_e

    total = tl.zeros((), tl.float32)
    for start in range(0, V, BLOCK):
        w, _ = _kept_block(cond_ptr, uncond_ptr, row_off, start + tl.arange(0, BLOCK), V, cfg_scale, inv_temp, m, tau_x,
                           tau_e, HAS_UNCOND)
        total += tl.sum(w, axis=0)

    # the row's uniform, as arforge.kernels.sampling.row_uniforms: lowbias32(lowbias32(seed) + offset * golden)
    seed = tl.load(seed_ptr + row).to(tl.int64)
    h = _lowbias32((seed & 0xFFFFFFFF).to(tl.uint32))
    h = _lowbias32(h + tl.full((), offset_mix, tl.uint32))
    u = ((h >> 8).to(tl.float32) + 0.5) * (1.0 / 16777216.0)
    goal = u * total

    running = tl.zeros((), tl.float32)
    token = tl.full((), V - 1, tl.int32)
    for start in range(0, V, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        w, valid = _kept_block(cond_ptr, uncond_ptr, row_off, cols, V, cfg_scale, inv_temp, m, tau_x, tau_e, HAS_UNCOND)
        cdf = running + tl.cumsum(w, axis=0)
        hit = tl.min(tl.where(valid & (cdf > goal), cols, V - 1), axis=0)
        token = tl.minimum(token, hit)
        running += tl.sum(w, axis=0)
    tl.store(out_ptr + row, token.to(tl.int64))


def sample_tokens_triton(rows_RV: torch.Tensor, uncond_RV: torch.Tensor | None, seed_R: torch.Tensor, cfg_scale: float,
                         temperature: float, top_k: int, top_p: float, offset: int, steps: int) -> torch.Tensor:
    """:func:`arforge.kernels.sampling.sample_tokens` on flat rows ``(R, V)`` with the Triton kernel
    (``steps``: bisection steps of the thresholds)."""
    R, V = rows_RV.shape
    rows_RV = rows_RV.contiguous()
    uncond = uncond_RV.contiguous() if uncond_RV is not None else rows_RV
    out = torch.empty(R, dtype=torch.int64, device=rows_RV.device)
    if R == 0:
        return out
    offset_mix = (offset & 0xFFFFFFFF) * 0x9E3779B9 & 0xFFFFFFFF
    use_k = 0 < top_k < V
    block = min(1024, triton.next_power_of_2(V))
    _sample_kernel[(R,)](
        rows_RV, uncond, seed_R.contiguous().to(torch.int64), out, V, rows_RV.stride(0), offset_mix, float(cfg_scale),
        1.0 / float(temperature), int(top_k), float(top_p),
        HAS_UNCOND=uncond_RV is not None and cfg_scale != 1.0, TOP_K=use_k, TOP_P=top_p < 1.0,
        STEPS=steps, BLOCK=block,
    )
    return out
