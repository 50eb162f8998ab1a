"""LANTERN relaxed acceptance (Jang et al. 2024): accept drafts that are *latent neighbours* of
likely tokens, within a total-variation budget.

For a draft ``x`` with target ``p``: take ``x``'s ``k`` nearest codes in the tokenizer's codebook
(precomputed once, l2 distance, ``x`` itself excluded), in distance order, and the running sum
``c_j`` of their probabilities. The largest prefix with ``c_j <= delta`` (LANTERN) or
``c_j <= (lam - 1) p(x)`` (LANTERN++ relative bound) has its mass moved onto ``x``:
``p~(x) = p(x) + c_j`` and the absorbed neighbours get 0. ``p~`` is a distribution with
``TV(p~, p) = c_j <= delta``; the verifier then runs exact speculative sampling *of p~* (acceptance
and residual), so each committed token follows a distribution within ``delta`` of the model's.
``delta = 0`` moves no mass: ``p~ == p`` bit for bit and SJD stays exact.
"""

from __future__ import annotations

import torch

from arforge.samplers.cfg import CFGSchedule
from arforge.samplers.logits import LogitsPipeline
from arforge.samplers.base import register_sampler
from arforge.samplers.sjd import DraftInit, SJDSampler


def nearest_codes(codebook_VD: torch.Tensor, k: int, chunk: int = 4096) -> torch.Tensor:
    """Indices ``(V, k)`` of each code's ``k`` nearest other codes (l2), nearest first."""
    V = codebook_VD.shape[0]
    if not 1 <= k < V:
        raise ValueError(f"LANTERN neighbourhood size k must lie in [1, {V - 1}] for a {V}-code codebook, got {k}")
    cb = codebook_VD.float()
    out = []
    for start in range(0, V, chunk):
        d = torch.cdist(cb[start: start + chunk], cb)
        d[torch.arange(d.shape[0]), torch.arange(start, start + d.shape[0])] = float("inf")
        out.append(d.topk(k, dim=1, largest=False).indices)
    return torch.cat(out)


class LanternRelaxation:
    """Callable ``relax(p_BTV, draft_BT) -> p~_BTV`` for :func:`~arforge.samplers.speculative.verify`.

    Args: ``neighbours_VK`` (from :func:`nearest_codes`), ``delta`` (absolute TV budget) or, with
    ``lam`` > 1, the LANTERN++ relative bound ``(lam - 1) p(x)``.
    """

    def __init__(self, neighbours_VK: torch.Tensor, delta: float = 0.1, lam: float | None = None):
        if delta < 0:
            raise ValueError(f"delta must be >= 0, got {delta}")
        if lam is not None and lam < 1:
            raise ValueError(f"lam must be >= 1, got {lam}")
        self.neighbours_VK, self.delta, self.lam = neighbours_VK.long(), delta, lam

    @classmethod
    def from_codebook(cls, codebook_VD: torch.Tensor, k: int, delta: float = 0.1, lam: float | None = None):
        return cls(nearest_codes(codebook_VD, k), delta, lam)

    def __call__(self, p_BTV: torch.Tensor, draft_BT: torch.Tensor) -> torch.Tensor:
        nb = self.neighbours_VK.to(draft_BT.device)[draft_BT]  # (B, T, K)
        p_nb = p_BTV.gather(-1, nb)
        running = p_nb.cumsum(-1)
        if self.lam is not None:
            bound = (self.lam - 1.0) * p_BTV.gather(-1, draft_BT[..., None])
        else:
            bound = torch.full_like(running[..., :1], self.delta)
        absorbed = running <= bound
        mass = (p_nb * absorbed).sum(-1)
        relaxed = p_BTV.scatter(-1, nb, torch.where(absorbed, torch.zeros_like(p_nb), p_nb))
        return relaxed.scatter_add(-1, draft_BT[..., None], mass[..., None])


@register_sampler("sjd_lantern")
class SJDLanternSampler(SJDSampler):
    """SJD with LANTERN relaxation. ``k`` neighbours per code (from the tokenizer's codebook, given
    at construction as ``codebook`` or taken from the ``tokenizer`` passed to :meth:`sample`),
    ``delta`` / ``lam`` as in :class:`LanternRelaxation`; other arguments as :class:`SJDSampler`."""

    def __init__(self, window: int = 16, init: DraftInit = "random", cfg: CFGSchedule | float = 1.0,
                 logits: LogitsPipeline | None = None, k: int = 5, delta: float = 0.1, lam: float | None = None,
                 codebook: torch.Tensor | None = None, max_iters: int | None = None):
        super().__init__(window=window, init=init, cfg=cfg, logits=logits, max_iters=max_iters)
        self.k, self.delta, self.lam = k, delta, lam
        self.relax = LanternRelaxation.from_codebook(codebook, k, delta, lam) if codebook is not None else None
        self._from_tokenizer = codebook is None
        self._tokenizer_id: int | None = None

    def sample(self, generator, condition, *, generator_rng=None, tokenizer=None, cond_mask=None):
        if self._from_tokenizer and (self.relax is None or (tokenizer is not None and id(tokenizer) != self._tokenizer_id)):
            if tokenizer is None or not hasattr(tokenizer, "codebook"):
                raise ValueError("sjd_lantern needs the tokenizer's codebook: pass codebook= or tokenizer= to sample()")
            self.relax = LanternRelaxation.from_codebook(tokenizer.codebook.detach(), self.k, self.delta, self.lam)
            self._tokenizer_id = id(tokenizer)
        return super().sample(generator, condition, generator_rng=generator_rng, tokenizer=tokenizer, cond_mask=cond_mask)
