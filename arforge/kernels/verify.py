"""Fused speculative verification from explicit per-row seeds.

:func:`verify_drafts` applies the rule of :func:`arforge.samplers.speculative.verify` to a window of
``T`` drafts per row: accept left to right while ``u_t q_t(x_t) < p_t(x_t)``, and at the first
rejection ``j`` draw the replacement from ``max(0, p_j - q_j)`` (falling back to ``p_j`` where that
residual has no mass). Committed tokens are then distributed exactly as ``p`` whatever ``q`` is. The
uniforms come from :func:`arforge.kernels.sampling.row_uniforms` of the row's seed at draw numbers
``offset * (T + 1) + t`` (tests) and ``offset * (T + 1) + T`` (residual draw), so the reference and the
Triton kernel make the same decisions. No ``(B, T, V)`` temporary is made beyond ``p`` and ``q``: the
reference builds one ``(B, V)`` residual, the kernel none.
"""

from __future__ import annotations

import torch

from arforge.kernels.dispatch import kernel_backend
from arforge.kernels.sampling import inverse_cdf, row_uniforms


def verify_drafts(draft_BT: torch.Tensor, q_BTV: torch.Tensor, p_BTV: torch.Tensor, seed_B: torch.Tensor, *,
                  offset: int = 0, valid_BT: torch.Tensor | None = None,
                  backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(num_accepted_B, next_token_B)``: leading drafts accepted per row (``0..T``) and the token
    for position ``num_accepted`` (``-1`` where every valid draft was accepted). ``valid_BT`` marks
    the window positions that exist; invalid ones count as rejected and draw nothing."""
    B, T, V = p_BTV.shape
    if q_BTV.shape != p_BTV.shape or draft_BT.shape != (B, T) or seed_B.shape != (B,):
        raise ValueError(f"expected p, q (B, T, V), drafts (B, T) and seeds (B,), got {tuple(p_BTV.shape)}, "
                         f"{tuple(q_BTV.shape)}, {tuple(draft_BT.shape)}, {tuple(seed_B.shape)}")
    valid_BT = torch.ones(B, T, dtype=torch.bool, device=p_BTV.device) if valid_BT is None else valid_BT
    backend = backend or kernel_backend(p_BTV.device)
    if backend == "triton":
        from arforge.kernels.verify_triton import verify_drafts_triton

        return verify_drafts_triton(draft_BT, q_BTV, p_BTV, seed_B, *draw_numbers(offset, T), valid_BT)
    if backend != "reference":
        raise ValueError(f"unknown kernel backend {backend!r}; use 'reference' or 'triton'")
    return verify_drafts_reference(draft_BT, q_BTV, p_BTV, seed_B, offset, valid_BT)


def draw_numbers(offset: int, T: int) -> tuple[list[int], int]:
    """The uniform draw numbers of the ``T`` acceptance tests and of the residual draw."""
    base = offset * (T + 1)
    return [base + t for t in range(T)], base + T


def verify_drafts_reference(draft_BT, q_BTV, p_BTV, seed_B, offset: int, valid_BT) -> tuple[torch.Tensor, torch.Tensor]:
    """The PyTorch reference of :func:`verify_drafts`."""
    B, T, V = p_BTV.shape
    tests, residual_draw = draw_numbers(offset, T)
    u_BT = torch.stack([row_uniforms(seed_B, n) for n in tests], dim=1).to(p_BTV.device)
    p_x = p_BTV.gather(-1, draft_BT[..., None]).squeeze(-1).float()
    q_x = q_BTV.gather(-1, draft_BT[..., None]).squeeze(-1).float()
    accepted = (u_BT * q_x < p_x) & valid_BT
    num_accepted = accepted.long().cumprod(dim=1).sum(dim=1)
    row = torch.arange(B, device=p_BTV.device)
    j = num_accepted.clamp(max=T - 1)
    p_j = p_BTV[row, j].float()
    residual = (p_j - q_BTV[row, j].float()).clamp_min(0)
    residual = torch.where(residual.sum(-1, keepdim=True) > 1e-12, residual, p_j)
    drawn = inverse_cdf(residual, row_uniforms(seed_B, residual_draw).to(p_BTV.device))
    has_next = (num_accepted < T) & valid_BT[row, j]
    return num_accepted, torch.where(has_next, drawn, torch.full_like(drawn, -1))
