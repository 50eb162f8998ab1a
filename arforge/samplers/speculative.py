"""Speculative verification: the one accept/resample rule every speculative sampler shares.

Given drafts ``x_i`` drawn from proposal distributions ``q_i`` and the target distributions ``p_i``
of the same positions, accept left to right while ``u_i < p_i(x_i) / q_i(x_i)``; at the first
rejection draw the replacement from ``norm(max(0, p - q))``. Whatever ``q`` is, the committed token
at each position is then distributed exactly as ``p`` (Leviathan et al. 2023; SJD applies it to
Jacobi drafts whose ``q`` came from an earlier iteration). An optional ``relax`` callable replaces
``p`` by a relaxed target (LANTERN) before the test; without it the rule is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from arforge.samplers.logits import sample_from_probs

#: ``relax(p_BTV, draft_BT) -> p_relaxed_BTV`` (rows sum to 1)
Relaxation = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Verdict:
    """Result of :func:`verify` for a batch of windows.

    ``num_accepted_B``: leading drafts accepted per row (0..T). ``next_token_B``: the token for
    position ``num_accepted`` (the residual draw after a rejection; ``-1`` where every draft was
    accepted). ``accepted_BT``: the per-position test outcomes (before the left-to-right cut).
    """

    num_accepted_B: torch.Tensor
    next_token_B: torch.Tensor
    accepted_BT: torch.Tensor


def verify(draft_BT: torch.Tensor, q_BTV: torch.Tensor, p_BTV: torch.Tensor, rng: torch.Generator | None = None,
           relax: Optional[Relaxation] = None, valid_BT: torch.Tensor | None = None) -> Verdict:
    """Speculative acceptance of drafts ``draft_BT`` (int64) with proposals ``q`` and targets ``p`` ``(B, T, V)``.

    ``valid_BT`` (bool) marks the window positions that exist (rows near the end of the image have
    shorter windows); invalid positions count as rejected but draw nothing. Batched over rows and
    positions: one uniform per position, one residual draw per row.
    """
    B, T, V = p_BTV.shape
    target = relax(p_BTV, draft_BT) if relax is not None else p_BTV
    p_x = target.gather(-1, draft_BT[..., None]).squeeze(-1)
    q_x = q_BTV.gather(-1, draft_BT[..., None]).squeeze(-1)
    u = torch.rand(B, T, generator=rng, device=p_BTV.device)
    accepted = u * q_x < p_x  # u < p/q without dividing by a zero q
    if valid_BT is not None:
        accepted &= valid_BT
    num_accepted = accepted.long().cumprod(dim=1).sum(dim=1)
    row = torch.arange(B, device=p_BTV.device)
    j = num_accepted.clamp(max=T - 1)
    residual = (target[row, j] - q_BTV[row, j]).clamp_min(0)
    mass = residual.sum(-1, keepdim=True)
    # p == q at the rejected position can only happen with probability 0 except through float
    # noise; fall back to p itself then (still exact: the rejection had probability 0)
    residual = torch.where(mass > 1e-12, residual / mass.clamp_min(1e-30), target[row, j])
    drawn = sample_from_probs(residual, rng)
    has_next = num_accepted < T
    if valid_BT is not None:
        has_next &= valid_BT[row, j]
    next_token = torch.where(has_next, drawn, torch.full_like(drawn, -1))
    return Verdict(num_accepted_B=num_accepted, next_token_B=next_token, accepted_BT=accepted)
