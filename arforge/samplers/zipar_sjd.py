"""ZipAR rows whose tokens are drafted and verified SJD-style (``"zipar_sjd"``).

ZipAR (:mod:`arforge.samplers.zipar`) advances every row in flight by one token per forward pass;
SJD (:mod:`arforge.samplers.sjd`) advances one sequence by several verified drafts per pass. Here
every row in flight gets its own SJD window of up to ``draft`` targets per pass, so an image
advances by (rows in flight) x (accepted tokens per row) tokens per pass.

Per image and row ``r`` with ``c_r`` committed tokens:

* **Locality rule** (ZipAR's window ``s``): token ``(r, j)`` may be generated once row ``r - 1``
  holds ``min(W, j + s)`` tokens. Row ``r`` therefore starts when row ``r - 1`` has ``s`` tokens,
  and its window stops at column ``c_{r-1} - s`` while row ``r - 1`` is unfinished.
* **One segment per active row** is fed: the last committed token of the row (or, for a row's
  first token, the last slot of row ``r - 1``: its real token, or while that row is unfinished a
  proxy token, :func:`~arforge.generators.orders.zipar.proxy_source`) followed by the row's drafts. Query ``t`` of the
  segment yields the target distribution ``p`` of column ``c_r + t``.
* **Visibility inside a pass**: a query sees the cache's committed slots, the committed tokens fed
  in this pass, and the earlier entries of its own segment. It never sees another row's drafts
  (which may be rejected) or a proxy other than itself; everything is still causal by raster index
  and ungenerated slots stay masked. A K/V entry kept after the pass was therefore computed from
  committed tokens only. On top of that every fed slot sees exactly the context ZipAR's fixed
  schedule gives it (:class:`~arforge.generators.orders.ZipAR`): token ``g`` sees token ``t`` iff ZipAR
  emits ``t`` no later than ``g``, and a row start's proxy (always the one ZipAR's schedule feeds, also
  when drafting let the row above finish first) sees the tokens ZipAR emitted before that row start.
  Rows that run ahead thanks to accepted drafts therefore never show a token more context than
  ZipAR would, and the samples follow ZipAR's own joint distribution (the oracle in
  ``tests/samplers/test_zipar_sjd.py`` enumerates it through the exact ZipAR teacher-forcing layout).
* **Verification** is :func:`~arforge.samplers.speculative.verify`, batched over all segments of
  all images: accept drafts while ``u < p/q``, resample the first rejected one from
  ``norm(max(0, p - q))``, refresh the later drafts from this pass's ``p`` (Jacobi), invalidate the
  slots of rejected drafts and of proxies. Each committed token is distributed exactly as ZipAR's
  conditional of that token; the approximation is ZipAR's (row ``r - 1`` is only partly visible),
  never the verifier's.

``draft = 1`` drafts nothing and reproduces :class:`~arforge.samplers.zipar.ZipARSampler` bit for
bit under the same generator state; ``window = W`` (a row starts only after the previous one is
complete) makes it an exact sampler of the raster model, like SJD. Images of a batch follow their
own, content-dependent schedules: each pass feeds every image's segments padded to the longest
image by repeating an entry (identical input, identical K/V write).
"""

from __future__ import annotations

import torch

from arforge.generators.orders import check_proxy
from arforge.generators.orders.zipar import emit_passes
from arforge.samplers.base import Sampler, SampleResult, register_sampler
from arforge.samplers.cfg import CFGSchedule, guided_window_logits
from arforge.samplers.context import start_decoding
from arforge.samplers.logits import LogitsPipeline, sample_from_probs
from arforge.samplers.speculative import Relaxation, verify
from arforge.samplers.zipar import zipar_order

COMMITTED, DRAFT, PROXY = 0, 1, 2


def _plan_image(count: list[int], filled_last: list[bool], rows: int, width: int, window: int, draft: int,
                feeds: list[tuple[int, int, int, int]], segments: list[tuple[int, int, int, int]], image: int,
                proxy_src: dict[int, int]) -> None:
    """Append one image's feeds ``(grid index, source index, segment id, kind)`` and segments
    ``(image, grid index of the first target, number of targets, first feed offset)`` for one pass.
    ``proxy_src[r]``: the token ZipAR's schedule feeds as row ``r``'s start proxy (rows absent: no proxy)."""
    fed_slots: set[int] = set()
    for r in range(rows):
        c = count[r]
        if c >= width or (r > 0 and count[r - 1] < window):
            continue
        limit = width if r == 0 or count[r - 1] == width else min(width, count[r - 1] - window + 1)
        n_targets = min(draft, limit - c)
        if n_targets <= 0:
            continue
        seg = len(segments)
        start = len(feeds)
        if c > 0:
            feeds.append((r * width + c - 1, r * width + c - 1, seg, COMMITTED))
        elif r not in proxy_src:
            feeds.append((r * width - 1, r * width - 1, seg, COMMITTED))
            filled_last[r - 1] = True
        else:
            feeds.append((r * width - 1, proxy_src[r], seg, PROXY))
        for t in range(1, n_targets):
            feeds.append((r * width + c + t - 1, r * width + c + t - 1, seg, DRAFT))
        fed_slots.update(f[0] for f in feeds[start:])
        segments.append((image, r * width + c, n_targets, start))
    for r in range(rows - 1):  # a finished row whose last slot only ever held a proxy
        last = (r + 1) * width - 1
        if count[r] == width and not filled_last[r] and last not in fed_slots:
            feeds.append((last, last, -1, COMMITTED))
            filled_last[r] = True


def zipar_context(order, device) -> tuple[torch.Tensor, dict[int, int]]:
    """From ZipAR's fixed schedule: the pass that emits each token (int64 ``(N,)``) and, per row
    whose start ZipAR predicts from a proxy, the grid index of the proxy token it feeds."""
    steps = order.zipar_steps()
    width = order.grid_shape[1]
    proxy_src = {slot // width + 1: step.feed_src[step.feed_idx.index(slot)] for step in steps for slot in step.proxies}
    return emit_passes(steps, order.num_tokens).to(device), proxy_src


def zipar_visibility(emit_pass_N: torch.Tensor, idx_BT: torch.Tensor, proxy_BT: torch.Tensor, num_prefix: int) -> torch.Tensor:
    """``(B, T, P + N)``: the slots each fed entry may see under ZipAR's schedule. A real token ``g``
    sees token ``t`` iff ``emit_pass[t] <= emit_pass[g]``; the proxy at slot ``g`` (predicting the row
    start ``g + 1``) sees ``t < g`` emitted before ``g + 1``, and itself. Prefix slots are always visible."""
    B, T = idx_BT.shape
    N = emit_pass_N.numel()
    t_N = torch.arange(N, device=idx_BT.device)
    own = emit_pass_N[idx_BT]
    start = emit_pass_N[(idx_BT + 1).clamp(max=N - 1)]
    real_BTN = emit_pass_N[None, None] <= own[..., None]
    proxy_BTN = (emit_pass_N[None, None] < start[..., None]) & (t_N[None, None] < idx_BT[..., None])
    proxy_BTN |= t_N[None, None] == idx_BT[..., None]
    allowed = torch.where(proxy_BT[..., None], proxy_BTN, real_BTN)
    return torch.cat([torch.ones(B, T, num_prefix, dtype=torch.bool, device=idx_BT.device), allowed], dim=-1)


@register_sampler("zipar_sjd")
class ZipARSJDSampler(Sampler):
    """Args: ``window`` (ZipAR's ``s``, default 4, clipped to the row width), ``draft`` (targets
    verified per row and pass, default 4; 1 = plain ZipAR), ``cfg``, ``logits``, ``relax`` (e.g.
    LANTERN; ``None`` = exact verification), ``max_iters`` (bound on forward passes; default ``N + 1``),
    ``proxy`` (row-start stand-in, as :class:`~arforge.samplers.zipar.ZipARSampler`)."""

    def __init__(self, window: int = 4, draft: int = 4, cfg: CFGSchedule | float = 1.0,
                 logits: LogitsPipeline | None = None, relax: Relaxation | None = None, max_iters: int | None = None,
                 proxy: str = "above"):
        if window < 1 or draft < 1:
            raise ValueError(f"window and draft must be >= 1, got window={window}, draft={draft}")
        check_proxy(proxy)
        self.window, self.draft, self.relax, self.max_iters, self.proxy = window, draft, relax, max_iters, proxy
        self.cfg = cfg if isinstance(cfg, CFGSchedule) else CFGSchedule(scale=float(cfg))
        self.logits = logits or LogitsPipeline()

    @torch.no_grad()
    def sample(self, generator, condition, *, generator_rng=None, tokenizer=None, cond_mask=None) -> SampleResult:
        model = generator
        order = zipar_order(self.name, model, self.window, self.proxy)
        rows, width = order.grid_shape
        window = order.window
        ctx = start_decoding(model, condition, self.cfg, cond_mask)
        B, N, V = ctx.batch, model.num_tokens, model.vocab_size
        device, cache, cond_all, mask_all, stats = ctx.device, ctx.cache, ctx.cond_all, ctx.mask_all, ctx.stats
        rng = generator_rng
        BB = cond_all.shape[0]
        P, S = model.num_prefix, cache.max_len
        emit_pass_N, proxy_src = zipar_context(order, device)

        first = guided_window_logits(model.prefill(cond_all, cache, mask_all)[:, None], B, self.cfg,
                                     torch.zeros(B, 1, dtype=torch.long, device=device), N)
        token0_B = self.logits.sample(first, rng)[:, 0]
        if self.draft > 1:  # random drafts, proposal q uniform (drawn after token 0, as in SJD)
            tokens_BN = torch.randint(0, V, (B, N), device=device, generator=rng)
            q_BNV = torch.full((B, N, V), 1.0 / V, device=device)
        else:
            tokens_BN, q_BNV = torch.zeros(B, N, dtype=torch.long, device=device), None
        tokens_BN[:, 0] = token0_B
        stats.forward_passes += 1
        stats.accepted_per_step.append(1.0)
        count = [[1] + [0] * (rows - 1) for _ in range(B)]
        filled_last = [[False] * rows for _ in range(B)]
        max_iters = self.max_iters or N + 1

        while any(c[-1] < width for c in count):
            if stats.forward_passes >= max_iters:
                raise RuntimeError(f"zipar_sjd did not finish within {max_iters} forward passes (max_iters)")
            per_image: list[list[tuple[int, int, int, int]]] = []
            segments: list[tuple[int, int, int, int]] = []
            for b in range(B):
                feeds: list[tuple[int, int, int, int]] = []
                _plan_image(count[b], filled_last[b], rows, width, window, self.draft, feeds, segments, b, proxy_src)
                per_image.append(feeds or [(N - 1, N - 1, -1, COMMITTED)])  # finished image: a harmless re-feed
            T = max(len(f) for f in per_image)
            plan = torch.tensor([f + [f[-1]] * (T - len(f)) for f in per_image], dtype=torch.long, device=device)
            plan = torch.cat([plan, plan]) if self.cfg.enabled else plan  # the unconditional half mirrors it
            idx_BT, src_BT, seg_BT, kind_BT = plan.unbind(-1)
            visible_BTS = self._visibility(cache.valid_BL, idx_BT + P, seg_BT, kind_BT, S)
            visible_BTS &= zipar_visibility(emit_pass_N, idx_BT, kind_BT == PROXY, P)
            fed = tokens_BN.repeat(BB // B, 1).gather(1, src_BT)
            logits = model.decode(fed, idx_BT, cache, visible_BTS=visible_BTS)
            stats.forward_passes += 1

            seg = torch.tensor(segments, dtype=torch.long, device=device)  # (G, 4)
            image_G, first_G, ntar_G, start_G = seg.unbind(-1)
            steps = torch.arange(int(ntar_G.max()), device=device)
            valid_GT = steps[None] < ntar_G[:, None]
            t_GT = torch.minimum(steps[None], ntar_G[:, None] - 1)
            target_GT, query_GT = first_G[:, None] + t_GT, start_G[:, None] + t_GT
            gathered = logits[image_G[:, None], query_GT]
            if self.cfg.enabled:
                gathered = torch.cat([gathered, logits[B + image_G[:, None], query_GT]])
            guided = guided_window_logits(gathered, len(segments), self.cfg, target_GT, N)

            if self.draft == 1:  # nothing drafted: sample each row's next token, as ZipAR does
                tokens_BN[image_G, target_GT[:, 0]] = self.logits.sample(guided, rng)[:, 0]
                committed_G = torch.ones_like(image_G)
                accepted_G = torch.zeros_like(image_G)
            else:
                p_GTV = self.logits.probs(guided)
                drafts = tokens_BN[image_G[:, None], target_GT]
                verdict = verify(drafts, q_BNV[image_G[:, None], target_GT], p_GTV, rng, relax=self.relax, valid_BT=valid_GT)
                accepted_G = verdict.num_accepted_B
                has_next = verdict.next_token_B >= 0
                j = accepted_G.clamp(max=target_GT.shape[1] - 1)
                rows_G = torch.arange(len(segments), device=device)
                tokens_BN[image_G[has_next], target_GT[rows_G, j][has_next]] = verdict.next_token_B[has_next]
                after = (steps[None] > accepted_G[:, None]) & valid_GT  # Jacobi refresh of later drafts
                fresh = sample_from_probs(p_GTV, rng)
                g, t = after.nonzero(as_tuple=True)
                tokens_BN[image_G[g], target_GT[g, t]] = fresh[g, t]
                q_BNV[image_G[g], target_GT[g, t]] = p_GTV[g, t]
                committed_G = accepted_G + has_next.long()

            # roll back: proxies and the slots of rejected drafts (feed offset > accepted count)
            seg_safe = seg_BT.clamp(min=0)  # feeds without a segment (flushes, pads) are COMMITTED
            offset_BT = torch.arange(T, device=device)[None] - start_G[seg_safe]
            drop_BT = self._rolled_back(kind_BT, offset_BT, accepted_G[seg_safe])
            drop_BS = torch.zeros(BB, S, device=device).scatter_add_(1, idx_BT + P, drop_BT.float()) > 0
            cache.valid_BL &= ~drop_BS

            per_image_commits = [0] * B
            for (b, first, _, _), n in zip(segments, committed_G.tolist()):
                count[b][first // width] += n
                per_image_commits[b] += n
            active = [n for n, f in zip(per_image_commits, per_image) if any(x[2] >= 0 for x in f)]
            stats.accepted_per_step.append(sum(active) / max(len(active), 1))
        return self.finish(tokens_BN, model, ctx.finish_timing(), tokenizer)

    @staticmethod
    def _rolled_back(kind_BT: torch.Tensor, offset_BT: torch.Tensor, accepted_BT: torch.Tensor) -> torch.Tensor:
        """The fed entries whose K/V are invalidated after the pass: proxies, and drafts past the
        accepted ones of their segment (feed offset > accepted count)."""
        return (kind_BT == PROXY) | ((kind_BT == DRAFT) & (offset_BT > accepted_BT))

    @staticmethod
    def _visibility(valid_BS: torch.Tensor, slot_BT: torch.Tensor, seg_BT: torch.Tensor, kind_BT: torch.Tensor,
                    slots: int) -> torch.Tensor:
        """``(B, T, S)``: committed slots, this pass's committed feeds, and the query's own segment
        up to itself (a proxy only to itself)."""
        B, T = slot_BT.shape
        committed_BS = torch.zeros(B, slots, device=slot_BT.device).scatter_add_(
            1, slot_BT, (kind_BT == COMMITTED).float()) > 0
        base_BS = valid_BS | committed_BS
        t = torch.arange(T, device=slot_BT.device)
        own_BTT = (seg_BT[:, :, None] == seg_BT[:, None, :]) & (seg_BT[:, :, None] >= 0) & (t[None, None] <= t[None, :, None])
        own_BTT &= (kind_BT[:, None, :] != PROXY) | (t[None, None] == t[None, :, None])
        own_BTS = torch.zeros(B, T, slots, device=slot_BT.device).scatter_add_(
            2, slot_BT[:, None, :].expand(B, T, T), own_BTT.float()) > 0
        return base_BS[:, None, :] | own_BTS
