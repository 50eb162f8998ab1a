"""Fused token sampling: CFG mix, temperature, top-k / top-p and the categorical draw in one op.

:func:`sample_tokens` draws one token per row of logits ``(..., V)`` from explicit per-row seeds, so a
result is reproducible and the reference and the Triton kernel draw the same token from the same
uniform. The distribution is that of :class:`arforge.samplers.logits.LogitsPipeline` (temperature ->
top-k -> top-p, HF / LlamaGen order) applied to the guided logits ``uncond + s (cond - uncond)``:

* top-k keeps the logits ``>= `` the ``k``-th largest (ties at the ``k``-th value are kept);
* top-p keeps the tokens whose probability is ``>= tau``, the largest threshold whose kept mass
  reaches ``p`` (the smallest nucleus; the most likely token is always kept);
* the draw is an inverse-CDF lookup of one uniform ``u`` in ``(0, 1)`` over the kept probabilities in
  vocabulary order (no ``torch.multinomial``, no sort over ``V``).

The reference is itself fast on CPU: with ``top_k`` it works on ``torch.topk``'s ``k`` values (no full
sort), top-p alone finds ``tau`` by bisection over the vocabulary (sort-free), and the draw is one
cumulative sum. The Triton kernel (one program per row, blocked passes over ``V``) finds both
thresholds by bisection. Uniforms come from a counter-based hash of ``(seed, offset)``
(:func:`row_uniforms`), identical in both.
"""

from __future__ import annotations

import torch

from arforge.kernels.dispatch import kernel_backend

MASK32 = 0xFFFFFFFF
#: bisection steps of the sort-free thresholds (each halves a float interval; 32 reach float spacing)
BISECTION_STEPS = 32


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """``(x * c) mod 2^32`` for int64 ``x`` in ``[0, 2^32)`` without int64 overflow."""
    lo, hi = x & 0xFFFF, x >> 16
    return (((hi * c) & 0xFFFF) << 16) + lo * c & MASK32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer finaliser (lowbias32): a bijection of ``[0, 2^32)`` with good avalanche."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def row_uniforms(seed_R: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """One uniform in ``(0, 1)`` (float32, 24 random bits) per seed, for draw number ``offset``:
    ``lowbias32(lowbias32(seed) + offset * 0x9E3779B9)`` (hashing the seed first keeps consecutive
    seeds' uniforms independent-looking).

    ``seed_R``: int64 seeds (any shape; values are taken modulo ``2^32``)."""
    seed = seed_R.long()
    x = (_mix32(seed & MASK32) + _mul32(torch.full_like(seed, offset & MASK32), 0x9E3779B9)) & MASK32
    return ((_mix32(x) >> 8).float() + 0.5) * (1.0 / 16777216.0)


def _check(logits: torch.Tensor, uncond: torch.Tensor | None, seeds: torch.Tensor, temperature: float, top_k: int,
           top_p: float) -> None:
    if logits.ndim < 1 or logits.shape[-1] < 1:
        raise ValueError(f"logits must be (..., V) with V >= 1, got {tuple(logits.shape)}")
    if uncond is not None and uncond.shape != logits.shape:
        raise ValueError(f"uncond logits {tuple(uncond.shape)} must match cond logits {tuple(logits.shape)}")
    if tuple(seeds.shape) != tuple(logits.shape[:-1]):
        raise ValueError(f"seeds must have the logits' row shape {tuple(logits.shape[:-1])}, got {tuple(seeds.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_k < 0 or not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_k must be >= 0 and top_p in (0, 1], got top_k={top_k}, top_p={top_p}")


def sample_tokens(logits: torch.Tensor, seeds: torch.Tensor, *, uncond: torch.Tensor | None = None,
                  cfg_scale: float = 1.0, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                  offset: int = 0, backend: str | None = None) -> torch.Tensor:
    """Draw one token per row of ``logits`` ``(..., V)``: int64 ``logits.shape[:-1]``.

    ``uncond`` (same shape) turns on classifier-free guidance with ``cfg_scale``; ``seeds`` (int64,
    ``logits.shape[:-1]``) and ``offset`` fix the uniforms (:func:`row_uniforms`). ``backend``:
    ``"reference"`` / ``"triton"``, default :func:`~arforge.kernels.dispatch.kernel_backend`."""
    _check(logits, uncond, seeds, temperature, top_k, top_p)
    backend = backend or kernel_backend(logits.device)
    V = logits.shape[-1]
    rows = logits.reshape(-1, V)
    unc = None if uncond is None else uncond.reshape(-1, V)
    seed_R = seeds.reshape(-1).to(logits.device)
    if backend == "triton":
        from arforge.kernels.sampling_triton import sample_tokens_triton

        out = sample_tokens_triton(rows, unc, seed_R, cfg_scale, temperature, top_k, top_p, offset, BISECTION_STEPS)
    elif backend == "reference":
        out = sample_tokens_reference(rows, unc, seed_R, cfg_scale, temperature, top_k, top_p, offset)
    else:
        raise ValueError(f"unknown kernel backend {backend!r}; use 'reference' or 'triton'")
    return out.view(logits.shape[:-1])


def guided_scaled_logits(rows_RV: torch.Tensor, uncond_RV: torch.Tensor | None, cfg_scale: float,
                         temperature: float) -> torch.Tensor:
    """float32 ``(uncond + s (cond - uncond)) / T`` (``cond / T`` without ``uncond``), the CFG mix
    computed as ``torch.lerp`` does (``cond - (cond - uncond) (1 - s)`` for ``s >= 0.5``), which the
    Triton kernel repeats operation for operation."""
    x = rows_RV.float()
    if uncond_RV is not None and cfg_scale != 1.0:
        x = torch.lerp(uncond_RV.float(), x, cfg_scale)
    return x if temperature == 1.0 else x / temperature


def top_candidates(x_RV: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest logits of each row and their vocabulary indices, both ``(R, k)``, in
    vocabulary order: a selection over ``V`` and a sort of ``k`` indices, never a sort over ``V``
    (NumPy's introselect and sort on CPU, where they are several times faster than torch's)."""
    if x_RV.device.type == "cpu":
        import numpy as np

        idx = torch.from_numpy(np.sort(np.argpartition(x_RV.numpy(), x_RV.shape[-1] - k, axis=-1)[:, -k:], axis=-1))
    else:
        idx = torch.topk(x_RV, k, dim=-1, sorted=False).indices.sort(-1).values
    return x_RV.gather(-1, idx), idx


def sorted_descending(w_RC: torch.Tensor) -> torch.Tensor:
    """Each row of ``w_RC`` sorted in descending order (NumPy on CPU)."""
    if w_RC.device.type == "cpu":
        import numpy as np

        return torch.from_numpy(np.ascontiguousarray(np.sort(w_RC.numpy(), axis=-1)[:, ::-1]))
    return w_RC.sort(-1, descending=True).values


def kept_weights(x_RV: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Unnormalised probabilities ``exp(x - max)`` of the tokens top-k / top-p keep (0 elsewhere)."""
    V = x_RV.shape[-1]
    m = x_RV.max(dim=-1, keepdim=True).values
    e = torch.exp(x_RV - m)
    if 0 < top_k < V:
        vals = sorted_descending(top_candidates(x_RV, top_k)[0])
        e = torch.where(x_RV >= vals[:, -1:], e, torch.zeros_like(e))
        if top_p < 1.0:  # exact nucleus on the k candidates
            e = torch.where(e >= nucleus_cutoff(torch.exp(vals - m), top_p), e, torch.zeros_like(e))
    elif top_p < 1.0:
        e = torch.where(e >= nucleus_threshold(e, top_p), e, torch.zeros_like(e))
    return e


def nucleus_cutoff(sorted_RC: torch.Tensor, top_p: float) -> torch.Tensor:
    """``(R, 1)``: in weights sorted in descending order, the first one whose prefix mass reaches
    ``top_p`` of the row's total (the smallest weight the nucleus keeps)."""
    cum = sorted_RC.cumsum(-1)
    crossing = (cum < top_p * cum[:, -1:]).sum(-1, keepdim=True).clamp(max=sorted_RC.shape[-1] - 1)
    return sorted_RC.gather(-1, crossing)


def nucleus_threshold(e_RV: torch.Tensor, top_p: float) -> torch.Tensor:
    """Sort-free: per row the largest ``tau`` with ``sum(e[e >= tau]) >= top_p * sum(e)`` (bisection; ``(R, 1)``)."""
    target = top_p * e_RV.sum(-1, keepdim=True)
    lo = torch.zeros_like(target)
    hi = e_RV.max(dim=-1, keepdim=True).values * (1 + 1e-6) + 1e-30
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) * 0.5
        enough = torch.where(e_RV >= mid, e_RV, torch.zeros_like(e_RV)).sum(-1, keepdim=True) >= target
        lo, hi = torch.where(enough, mid, lo), torch.where(enough, hi, mid)
    return lo


def seeds_from(rng: torch.Generator | None, shape: tuple[int, ...], device: torch.device | str) -> torch.Tensor:
    """int64 seeds in ``[0, 2^31)`` of ``shape`` drawn from ``rng`` (torch's default generator if
    ``None``), on ``device``: how samplers turn their explicit generator into per-row seeds."""
    gen_device = rng.device if rng is not None else "cpu"
    return torch.randint(0, 2**31 - 1, shape, generator=rng, device=gen_device).to(device)


def sample_from_weights(w: torch.Tensor, seeds: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """One inverse-CDF draw per row of non-negative weights ``w`` ``(..., V)`` (any positive total)
    with the uniforms of :func:`row_uniforms`: int64 ``w.shape[:-1]``. What replaces
    ``torch.multinomial`` for probabilities a sampler already holds (Jacobi refreshes, residuals)."""
    if tuple(seeds.shape) != tuple(w.shape[:-1]):
        raise ValueError(f"seeds must have the weights' row shape {tuple(w.shape[:-1])}, got {tuple(seeds.shape)}")
    V = w.shape[-1]
    flat = w.reshape(-1, V).float()
    return inverse_cdf(flat, row_uniforms(seeds.reshape(-1).to(w.device), offset)).view(w.shape[:-1])


def inverse_cdf(w_RC: torch.Tensor, u_R: torch.Tensor) -> torch.Tensor:
    """Per row the first column whose cumulative weight exceeds ``u * total`` (int64 ``(R,)``)."""
    cdf = w_RC.cumsum(-1)
    return torch.searchsorted(cdf, u_R[:, None] * cdf[:, -1:], right=True).squeeze(-1).clamp(max=w_RC.shape[-1] - 1)


def sample_tokens_reference(rows_RV: torch.Tensor, uncond_RV: torch.Tensor | None, seed_R: torch.Tensor,
                            cfg_scale: float, temperature: float, top_k: int, top_p: float, offset: int) -> torch.Tensor:
    """The PyTorch reference of :func:`sample_tokens` on flat rows ``(R, V)``: int64 ``(R,)``.

    With ``top_k`` the work after the selection is on the ``k`` candidates only (kept in vocabulary
    order, so the draw walks the same CDF as the full-vocabulary one); rows with a tie at the ``k``-th
    value take the full-vocabulary path, which keeps every tied logit."""
    x = guided_scaled_logits(rows_RV, uncond_RV, cfg_scale, temperature)
    u_R = row_uniforms(seed_R, offset)
    V = x.shape[-1]
    if not 0 < top_k < V:
        return inverse_cdf(kept_weights(x, top_k, top_p), u_R)
    vals, idx = top_candidates(x, top_k)
    tied = (x >= vals.min(-1, keepdim=True).values).sum(-1) > top_k
    e = torch.exp(vals - vals.max(-1, keepdim=True).values)
    if top_p < 1.0:
        e = torch.where(e >= nucleus_cutoff(sorted_descending(e), top_p), e, torch.zeros_like(e))
    tokens = idx.gather(-1, inverse_cdf(e, u_R)[:, None]).squeeze(-1)
    if bool(tied.any()):
        full = inverse_cdf(kept_weights(x[tied], top_k, top_p), u_R[tied])
        tokens = tokens.masked_scatter(tied, full)
    return tokens
