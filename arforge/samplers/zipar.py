"""ZipAR (He et al. 2024): row-parallel decoding of a raster-trained model.

Row ``r + 1`` starts once row ``r`` holds ``s`` tokens (``window``); every started row then emits one
token per forward pass, so up to ``ceil(W / s)`` rows are in flight and an ``R x W`` grid takes
``(R - 1) * s + W`` passes instead of ``R * W``. Each token is fed at its raster index into the
position-indexed KV cache with its own 2D RoPE angle; the attention mask is the cache's validity
bitmap AND causal-by-index, so the not-yet-generated right part of earlier rows is *masked*, never
read as zero keys (the LlamaGen ZipAR code attends to those empty slots).

The first token of row ``r + 1`` is predicted, as in raster order, by the query at the last slot of
row ``r``. If row ``r`` is complete, that slot holds its real last token (plain AR). If not, a proxy
token is fed there (see :func:`proxy_source`); no other query of that pass attends to it and its
slot is invalidated right after the pass, so no later query does either. When row ``r``
finishes, its real last token is fed (logits unused) to fill the slot. With ``s = W`` the schedule
is exactly raster order and the samples equal :class:`ARSampler`'s bit for bit under the same
generator state. :class:`~arforge.samplers.zipar_sjd.ZipARSJDSampler` drafts several tokens per
row and verifies them SJD-style.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from arforge.generators.raster import SideQueries
from arforge.samplers.ar import with_null_condition
from arforge.samplers.base import Sampler, SamplerStats, SampleResult, register_sampler
from arforge.samplers.cfg import CFGSchedule, guided_window_logits
from arforge.samplers.logits import LogitsPipeline


@dataclass(frozen=True)
class ZipARStep:
    """One forward pass. ``feed_idx``: raster indices written this pass; ``feed_src``: index whose
    token is fed there (differs for proxies); ``emit``: indices sampled this pass, predicted by the
    queries at ``feed`` positions ``emit_from`` (positions into ``feed_idx``); ``proxies``: slots to
    invalidate after the pass. The first pass (``feed_idx`` empty) is the prefill."""

    feed_idx: tuple[int, ...]
    feed_src: tuple[int, ...]
    emit: tuple[int, ...]
    emit_from: tuple[int, ...]
    proxies: tuple[int, ...]


PROXIES = ("above", "newest")


def check_proxy(proxy: str) -> None:
    """Refuse a row-start proxy name that is not one of :data:`PROXIES`."""
    if proxy not in PROXIES:
        raise ValueError(f"unknown ZipAR proxy '{proxy}'; choose one of {PROXIES}")


def proxy_source(count: list[int], row: int, width: int, proxy: str) -> int:
    """Grid index of the token fed as a stand-in at the last slot of the unfinished row ``row - 1``
    when row ``row`` starts (``count[k]``: tokens generated in row ``k``).

    The raster model predicts token ``(row, 0)`` from the query at ``(row - 1, W - 1)``, and what
    it reads there matters much (it is the token's raster predecessor). ``"above"``: the last token
    of the nearest *finished* row above, i.e. the same column one or more rows up (vertical
    locality; on a 16x16 MNIST model not trained for proxies it lowers the teacher-forced NLL of
    row-start tokens at ``s = 4`` from 1.62 to 1.21 nats, against 0.48 in raster order); before any
    row is finished it falls back to ``"newest"``: row ``row - 1``'s newest token (the LlamaGen ZipAR
    code's choice). ZipAR-aware training (:func:`zipar_training_layout`) trains these queries."""
    check_proxy(proxy)
    if proxy == "above":
        for k in range(row - 2, -1, -1):
            if count[k] == width:
                return (k + 1) * width - 1
    return (row - 1) * width + count[row - 1] - 1


def zipar_schedule(rows: int, width: int, window: int, proxy: str = "above") -> list[ZipARStep]:
    """The decode schedule of an ``rows x width`` grid with window ``s`` (``1 <= s <= width``);
    ``proxy`` picks the row-start stand-in token (:func:`proxy_source`)."""
    if not 1 <= window <= width:
        raise ValueError(f"ZipAR window must lie in [1, row width {width}], got {window}")
    check_proxy(proxy)
    count = [0] * rows  # tokens generated per row
    filled_last = [False] * rows  # the real last token of the row has its K/V in the cache
    steps: list[ZipARStep] = [ZipARStep((), (), (0,), (0,), ())]
    count[0] = 1
    while count[-1] < width:
        feed_idx, feed_src, emit, emit_from, proxies = [], [], [], [], []
        for r in range(rows):
            if count[r] >= width or (r > 0 and count[r - 1] < window):
                continue
            j = count[r]
            if j > 0:
                idx = r * width + j - 1
                feed_idx.append(idx)
                feed_src.append(idx)
            else:  # first token of row r: the query at the last slot of row r - 1
                last = r * width - 1
                feed_idx.append(last)
                if count[r - 1] == width:
                    feed_src.append(last)
                    filled_last[r - 1] = True
                else:
                    feed_src.append(proxy_source(count, r, width, proxy))
                    proxies.append(last)
            emit.append(r * width + j)
            emit_from.append(len(feed_idx) - 1)
        # rows completed earlier whose real last token is not in the cache yet (after a proxy)
        for r in range(rows - 1):
            last = (r + 1) * width - 1
            if count[r] == width and not filled_last[r] and last not in feed_idx:
                feed_idx.append(last)
                feed_src.append(last)
                filled_last[r] = True
        for e in emit:
            count[e // width] += 1
        steps.append(ZipARStep(tuple(feed_idx), tuple(feed_src), tuple(emit), tuple(emit_from), tuple(proxies)))
    return steps


@dataclass(frozen=True)
class ZipARTrainingLayout:
    """Teacher-forcing layout that makes every query compute what it computes under ZipAR decoding
    (:func:`zipar_training_layout`). ``visible_LL``: bool ``(L, L)`` over the raster training slots;
    ``side``: the row-start proxy queries (``None`` when ``s = W``); ``side_target_E``: the grid index
    of the token each side query predicts (the first token of a row)."""

    visible_LL: torch.Tensor
    side: SideQueries | None
    side_target_E: torch.Tensor


def zipar_training_layout(rows: int, width: int, window: int, num_prefix: int, proxy: str = "above") -> ZipARTrainingLayout:
    """The ZipAR-aware teacher-forcing layout of an ``rows x width`` raster model with window ``s``.

    Under ZipAR every token emitted in pass ``k`` is fed in pass ``k + 1`` (at its own raster slot),
    and a query sees the slots fed so far up to its own index. So training slot ``P + g`` (input
    token ``g``) sees token ``t <= g`` iff ``t`` was emitted no later than ``g``; and the first token
    of row ``r + 1``, predicted at decode time by a *proxy* query at the last slot of row ``r``
    (:func:`proxy_source`), is predicted here by a side query fed the same proxy token at the same
    rotary slot, seeing the tokens emitted before its pass. Training a raster model with this layout
    on part of its batches ("ZipAR-aware" training, ``task.zipar_aware``) teaches it exactly the
    computations ZipAR decoding asks of it; plain AR decoding is unchanged. With ``s = W`` the
    layout is plain causal teacher forcing. Tested against the decode path
    (``tests/samplers/test_zipar.py``)."""
    n = rows * width
    steps = zipar_schedule(rows, width, window, proxy)
    emit_pass = torch.empty(n, dtype=torch.long)
    for k, step in enumerate(steps):
        emit_pass[list(step.emit)] = k
    P = num_prefix
    L = P + n - 1
    inputs = torch.arange(n - 1)
    visible = torch.ones(L, L, dtype=torch.bool).tril()
    visible[P:, P:] &= emit_pass[None, : n - 1] <= emit_pass[: n - 1, None]
    src, slot, target, rows_visible = [], [], [], []
    for k, step in enumerate(steps):
        for proxy_slot in step.proxies:
            i = step.feed_idx.index(proxy_slot)
            src.append(step.feed_src[i])
            slot.append(proxy_slot)
            target.append(step.emit[step.emit_from.index(i)])
            row = torch.ones(L, dtype=torch.bool)
            row[P:] = (emit_pass[: n - 1] < k) & (inputs < proxy_slot)
            rows_visible.append(row)
    if not src:
        return ZipARTrainingLayout(visible, None, torch.zeros(0, dtype=torch.long))
    side = SideQueries(torch.tensor(src), torch.tensor(slot), torch.stack(rows_visible))
    return ZipARTrainingLayout(visible, side, torch.tensor(target))


def zipar_layout_logits(model, tokens_BN: torch.Tensor, cond: torch.Tensor, layout: ZipARTrainingLayout) -> torch.Tensor:
    """Teacher-forced logits ``(B, N, V)`` of a raster ``model`` under ``layout``: ``logits[:, i]``
    is what ZipAR decoding computes for token ``i`` when the tokens before it are ``tokens_BN``."""
    if layout.side is None:
        return model(tokens_BN, cond, visible_LL=layout.visible_LL)
    logits_BNV, side_BEV = model(tokens_BN, cond, visible_LL=layout.visible_LL, side=layout.side)
    return logits_BNV.index_copy(1, layout.side_target_E.to(logits_BNV.device), side_BEV)


def proxy_visibility(step: ZipARStep, num_prefix: int, slots: int, batch: int, device) -> torch.Tensor | None:
    """Visibility ``(batch, T, slots)`` that hides this pass's proxies from every query but their
    own: a proxy is a stand-in, so tokens of other rows fed in the same pass never attend to it."""
    if not step.proxies:
        return None
    visible = torch.ones(len(step.feed_idx), slots, dtype=torch.bool, device=device)
    for proxy in step.proxies:
        own = step.feed_idx.index(proxy)
        visible[:, num_prefix + proxy] = False
        visible[own, num_prefix + proxy] = True
    return visible[None].expand(batch, -1, -1)


def zipar_decode(model, cond_all: torch.Tensor, mask_all: torch.Tensor | None, schedule: list[ZipARStep],
                 pick: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], duplicate_inputs: bool = False) -> torch.Tensor:
    """Run a ZipAR ``schedule`` on a raster ``model``; returns the tokens ``(B, N)``.

    ``cond_all`` is the prefix condition of all ``BB`` cache rows (``B`` images, twice that when
    ``duplicate_inputs``: the CFG layout, conditional rows then unconditional rows fed the same
    tokens). Each pass, ``pick(logits_BBEV, emit_E)`` gets the float32 logits of the ``E`` tokens
    the pass emits (grid indices ``emit_E``) and returns their values ``(B, E)``."""
    device = model.norm.weight.device
    BB = cond_all.shape[0]
    B = BB // 2 if duplicate_inputs else BB
    cache = model.new_cache(BB)
    tokens_BN = torch.zeros(B, model.num_tokens, dtype=torch.long, device=device)
    for step in schedule:
        emit = torch.tensor(step.emit, device=device)
        if not step.feed_idx:
            logits = model.prefill(cond_all, cache, mask_all)[:, None]
        else:
            feed = torch.tensor(step.feed_idx, device=device)
            fed = tokens_BN[:, torch.tensor(step.feed_src, device=device)]
            if duplicate_inputs:
                fed = torch.cat([fed, fed])
            visible = proxy_visibility(step, model.num_prefix, cache.max_len, BB, device)
            logits = model.decode(fed, feed[None].expand(BB, -1), cache, visible_BTS=visible)
            logits = logits[:, torch.tensor(step.emit_from, device=device)]
            if step.proxies:
                cache.invalidate(torch.tensor(step.proxies, device=device)[None].expand(BB, -1) + model.num_prefix)
        tokens_BN[:, emit] = pick(logits, emit)
    return tokens_BN


@register_sampler("zipar")
class ZipARSampler(Sampler):
    """Args: ``window`` (``s``; default 8, clipped to the row width), ``cfg``, ``logits``, ``proxy``
    (row-start stand-in token, ``"above"`` or ``"newest"``: :func:`proxy_source`)."""

    def __init__(self, window: int = 8, cfg: CFGSchedule | float = 1.0, logits: LogitsPipeline | None = None,
                 proxy: str = "above"):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        check_proxy(proxy)
        self.window, self.proxy = window, proxy
        self.cfg = cfg if isinstance(cfg, CFGSchedule) else CFGSchedule(scale=float(cfg))
        self.logits = logits or LogitsPipeline()

    @torch.no_grad()
    def sample(self, generator, condition, *, generator_rng=None, tokenizer=None, cond_mask=None) -> SampleResult:
        start = time.perf_counter()
        model = generator
        if type(model.order).__name__ != "Raster":
            raise ValueError(f"ZipAR runs raster-trained models; {type(model).__name__} uses {type(model.order).__name__}")
        rows, width = model.order.grid_hw
        B, N = condition.shape[0], model.num_tokens
        device = model.norm.weight.device
        cond_all, mask_all = with_null_condition(model, condition.to(device), self.cfg, cond_mask)
        stats = SamplerStats(tokens=N)

        def pick(logits: torch.Tensor, emit: torch.Tensor) -> torch.Tensor:
            stats.forward_passes += 1
            stats.accepted_per_step.append(float(emit.numel()))
            return self.logits.sample(guided_window_logits(logits, B, self.cfg, emit[None].expand(B, -1), N), generator_rng)

        tokens_BN = zipar_decode(model, cond_all, mask_all, zipar_schedule(rows, width, min(self.window, width), self.proxy),
                                 pick, duplicate_inputs=self.cfg.enabled)
        stats.wall_time_s = time.perf_counter() - start
        return self.finish(tokens_BN, model, stats, tokenizer)
