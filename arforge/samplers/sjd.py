"""Speculative Jacobi Decoding (SJD, Teng et al. 2024) for raster-order generators, batched and exact.

Every image keeps a committed prefix of ``n`` tokens and drafts for the rest. One forward pass
feeds the last committed token and the next ``window - 1`` drafts at their grid positions (one
KV-cache write each, at per-row positions) and yields the target distributions ``p`` of the
``window`` positions after the prefix. :func:`~arforge.samplers.speculative.verify` accepts a
prefix of the drafts with probability ``min(1, p/q)`` each and resamples the first rejected one
from ``norm(max(0, p - q))``, so every committed token is distributed exactly as in plain AR
sampling with the same CFG schedule and logits processors. Drafts after the rejection are
refreshed from this pass's ``p`` (the Jacobi update) and keep that ``p`` as their ``q``. The cache
is rolled back by :meth:`KVCache.truncate` per row (validity bits only, no copies); rows accept
different numbers of tokens and proceed independently inside one batch.

Proposal distributions are kept for the window only (``(B, window, V)``, slid along with each row's
prefix), never for the whole image: with LlamaGen's 16384 codes and 576 tokens that is 1 MB instead
of 38 MB per image at ``window = 16``.

With ``window = 1`` nothing is drafted: each pass samples the next token from ``p`` and the
samples equal :class:`ARSampler`'s token for token under the same generator state.

Draft initialisation for positions not reached by any window yet: ``random`` (uniform tokens,
``q`` uniform), ``repeat_left`` (copy of the committed/drafted token to the left, ``q`` = one-hot,
filled as the window reaches them) or ``spatial`` (the token above, one-hot ``q``).
"""

from __future__ import annotations

from typing import Literal

import torch

from arforge.generators.orders import Raster
from arforge.samplers.base import Sampler, SampleResult, register_sampler
from arforge.samplers.context import require_order, start_decoding
from arforge.samplers.cfg import CFGSchedule, guided_window_logits
from arforge.samplers.logits import LogitsPipeline, sample_from_probs
from arforge.samplers.speculative import Relaxation, verify

DraftInit = Literal["random", "repeat_left", "spatial"]


@register_sampler("sjd")
class SJDSampler(Sampler):
    """Args: ``window`` (draft length L, default 16), ``init`` (draft initialisation), ``cfg``,
    ``logits`` (shared :class:`LogitsPipeline`), ``relax`` (e.g. a LANTERN relaxation; ``None`` =
    exact), ``max_iters`` (safety bound on forward passes; default ``N + 1``)."""

    def __init__(self, window: int = 16, init: DraftInit = "random", cfg: CFGSchedule | float = 1.0,
                 logits: LogitsPipeline | None = None, relax: Relaxation | None = None, max_iters: int | None = None):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if init not in ("random", "repeat_left", "spatial"):
            raise ValueError(f"unknown draft init '{init}'; use random, repeat_left or spatial")
        self.window, self.init, self.relax, self.max_iters = window, init, relax, max_iters
        self.cfg = cfg if isinstance(cfg, CFGSchedule) else CFGSchedule(scale=float(cfg))
        self.logits = logits or LogitsPipeline()

    def _initial_drafts(self, B: int, N: int, V: int, device, rng) -> tuple[torch.Tensor, torch.Tensor]:
        """Draft tokens ``(B, N)`` before any verification and which positions hold a draft already
        (``random``: all, with a uniform proposal; structured inits draft as the window arrives)."""
        if self.init == "random" and self.window > 1:
            return torch.randint(0, V, (B, N), device=device, generator=rng), torch.ones(B, N, dtype=torch.bool, device=device)
        return torch.zeros(B, N, dtype=torch.long, device=device), torch.zeros(B, N, dtype=torch.bool, device=device)

    def _fill_structured(self, tokens_BN, drafted_BN, start_B, idx_BT, width: int) -> None:
        """``repeat_left``/``spatial`` drafts for positions entering the window for the first time,
        as if filled left to right (a copy may read the copy just made), in tensor ops: each position
        to fill takes the token of the first position up its copy chain (left neighbour, or the
        token above) that needs no filling in this pass."""
        if self.init == "random":
            return
        B, T = idx_BT.shape
        first_BT = torch.ones_like(idx_BT, dtype=torch.bool)
        first_BT[:, 1:] = idx_BT[:, 1:] != idx_BT[:, :-1]  # the window is clamped at N - 1: fill once
        need_BT = ~drafted_BN.gather(1, idx_BT) & (idx_BT >= start_B[:, None]) & first_BT
        if self.init == "repeat_left":
            # the nearest position to the left that is not filled now: the window is consecutive from start
            known_BT = torch.where(need_BT, torch.full_like(idx_BT, -1), idx_BT)
            before_BT = torch.cat([torch.full_like(idx_BT[:, :1], -1), known_BT[:, :-1]], dim=1).cummax(dim=1).values
            src_BT = torch.maximum(before_BT, (start_B - 1).clamp(min=0)[:, None])
        else:
            def source(pos):  # the token above; on the first row the left neighbour
                up = pos - width
                return torch.where(up < 0, pos - 1, up).clamp(min=0)

            src_BT = source(idx_BT)
            for _ in range(T):  # follow the chain while it points at a position filled in this pass
                off = src_BT - idx_BT[:, :1]
                inside = (off >= 0) & (off < T)
                chained = inside & need_BT.gather(1, off.clamp(0, T - 1))
                src_BT = torch.where(chained, source(src_BT), src_BT)
        # repeated (clamped) window slots write what their first occurrence writes
        steps_BT = torch.arange(T, device=idx_BT.device).expand(B, T)
        first_of_BT = torch.where(first_BT, steps_BT, torch.zeros_like(steps_BT)).cummax(dim=1).values
        values_BT = torch.where(need_BT, tokens_BN.gather(1, src_BT), tokens_BN.gather(1, idx_BT)).gather(1, first_of_BT)
        done_BT = (drafted_BN.gather(1, idx_BT) | need_BT).gather(1, first_of_BT)
        tokens_BN.scatter_(1, idx_BT, values_BT)
        drafted_BN.scatter_(1, idx_BT, done_BT)

    def _proposals(self, drafts_BT: torch.Tensor, q_win_BTV: torch.Tensor, q_set_BT: torch.Tensor, V: int) -> torch.Tensor:
        """``q`` of the window's drafts: this sampler's earlier ``p`` where a Jacobi update set it,
        else the initial proposal (uniform for ``random``, one-hot on the copied token otherwise)."""
        if self.init == "random":
            init = torch.full_like(q_win_BTV, 1.0 / V)
        else:
            init = torch.nn.functional.one_hot(drafts_BT, V).to(q_win_BTV.dtype)
        return torch.where(q_set_BT[..., None], q_win_BTV, init)

    @torch.no_grad()
    def sample(self, generator, condition, *, generator_rng=None, tokenizer=None, cond_mask=None) -> SampleResult:
        model = generator
        require_order(self.name, model, Raster)
        ctx = start_decoding(model, condition, self.cfg, cond_mask)
        B, N, V = ctx.batch, model.num_tokens, model.vocab_size
        width = model.order.grid_hw[1]
        device, cache, cond_all, mask_all, stats = ctx.device, ctx.cache, ctx.cond_all, ctx.mask_all, ctx.stats
        rng = generator_rng
        P = model.num_prefix

        # token 0 comes from the prefill pass, exactly as in plain AR sampling (and before any draft is drawn)
        first = guided_window_logits(model.prefill(cond_all, cache, mask_all)[:, None], B, self.cfg,
                                     torch.zeros(B, 1, dtype=torch.long), N)
        token0_B = self.logits.sample(first, rng)[:, 0]
        tokens_BN, drafted_BN = self._initial_drafts(B, N, V, device, rng)
        tokens_BN[:, 0] = token0_B
        stats.forward_passes += 1
        stats.accepted_per_step.append(1.0)
        n_B = torch.ones(B, dtype=torch.long, device=device)  # committed tokens per row
        max_iters = self.max_iters or N + 1
        T = min(self.window, N - 1)
        steps = torch.arange(T, device=device)
        # proposals live only for the window (B, T, V), not the image: offset t <-> position n + t
        q_win_BTV = torch.zeros(B, T, V, device=device)
        q_set_BT = torch.zeros(B, T, dtype=torch.bool, device=device)
        while bool((n_B < N).any()):
            if stats.forward_passes >= max_iters:
                raise RuntimeError(f"SJD did not finish within {max_iters} forward passes (max_iters)")
            # feed the last committed token and T-1 drafts; outputs are p for positions n .. n+T-1
            fed_idx = (n_B[:, None] - 1 + steps[None]).clamp(max=N - 1)
            target_idx = n_B[:, None] + steps[None]
            valid_BT = target_idx < N
            target_idx = target_idx.clamp(max=N - 1)
            self._fill_structured(tokens_BN, drafted_BN, n_B, target_idx, width)
            fed = tokens_BN.gather(1, fed_idx)
            if self.cfg.enabled:
                fed, fed_idx2 = torch.cat([fed, fed]), torch.cat([fed_idx, fed_idx])
            else:
                fed_idx2 = fed_idx
            logits = model.decode(fed, fed_idx2, cache)
            guided_BTV = guided_window_logits(logits, B, self.cfg, target_idx, N)
            stats.forward_passes += 1

            if T == 1:  # no speculation left: sample the next token, as plain AR does
                tokens_BN[:, n_B.clamp(max=N - 1)[0]] = self.logits.sample(guided_BTV[:, :1], rng)[:, 0]
                stats.accepted_per_step.append(1.0)
                n_B = n_B + 1
                continue
            p_BTV = self.logits.probs(guided_BTV)
            drafts = tokens_BN.gather(1, target_idx)
            q = self._proposals(drafts, q_win_BTV, q_set_BT, V)
            verdict = verify(drafts, q, p_BTV, rng, relax=self.relax, valid_BT=valid_BT)
            active = n_B < N
            a = torch.where(active, verdict.num_accepted_B, torch.zeros_like(n_B))
            row = torch.arange(B, device=device)
            has_next = active & (verdict.next_token_B >= 0)
            # commit the resampled token at the first rejected position
            j = (n_B + a).clamp(max=N - 1)
            tokens_BN[row[has_next], j[has_next]] = verdict.next_token_B[has_next]
            # Jacobi update: positions after the rejection get fresh drafts from this pass's p
            after = (steps[None] > a[:, None]) & valid_BT & active[:, None]
            fresh = sample_from_probs(p_BTV, rng)
            r, t = after.nonzero(as_tuple=True)
            tokens_BN[r, target_idx[r, t]] = fresh[r, t]
            drafted_BN[r, target_idx[r, t]] = True
            committed = a + has_next.long()
            # slide each row's window by its committed count; refreshed drafts keep this pass's p as q
            src = (steps[None] + committed[:, None]).clamp(max=T - 1)
            q_set_BT = (steps[None] + committed[:, None] < T) & after.gather(1, src)
            q_win_BTV = p_BTV.gather(1, src[..., None].expand(-1, -1, V))
            stats.accepted_per_step.append(float(committed[active].float().mean()))
            n_B = torch.minimum(n_B + committed, torch.full_like(n_B, N))
            # slots of positions >= n-1 hold K/V of drafts (or of a rejected token): roll them back
            keep = P + n_B - 1
            cache.truncate(torch.cat([keep, keep]) if self.cfg.enabled else keep)
        ctx.finish_timing()
        return self.finish(tokens_BN, model, stats, tokenizer)
