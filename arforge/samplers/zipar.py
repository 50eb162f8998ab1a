"""ZipAR (He et al. 2024): row-parallel decoding of a raster-trained model.

Row ``r + 1`` starts once row ``r`` holds ``s`` tokens (``window``); every started row then emits one
token per forward pass, so up to ``ceil(W / s)`` rows are in flight and an ``R x W`` grid takes
``(R - 1) * s + W`` passes instead of ``R * W``. Each token is fed at its raster index into the
position-indexed KV cache with its own 2D RoPE angle; the attention mask is the cache's validity
bitmap AND causal-by-index, so the not-yet-generated right part of earlier rows is *masked*, never
read as zero keys (the LlamaGen ZipAR code attends to those empty slots).

The first token of row ``r + 1`` is predicted, as in raster order, by the query at the last slot of
row ``r``. If row ``r`` is complete, that slot holds its real last token (plain AR). If not, a proxy
(a copy of row ``r``'s newest token) is fed there; no other query of that pass attends to it and
its slot is invalidated right after the pass, so no later query does either. When row ``r``
finishes, its real last token is fed (logits unused) to fill the slot. With ``s = W`` the schedule
is exactly raster order and the samples equal :class:`ARSampler`'s bit for bit under the same
generator state. :class:`~arforge.samplers.zipar_sjd.ZipARSJDSampler` drafts several tokens per
row and verifies them SJD-style.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

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


def zipar_schedule(rows: int, width: int, window: int) -> list[ZipARStep]:
    """The decode schedule of an ``rows x width`` grid with window ``s`` (``1 <= s <= width``)."""
    if not 1 <= window <= width:
        raise ValueError(f"ZipAR window must lie in [1, row width {width}], got {window}")
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
                    feed_src.append((r - 1) * width + count[r - 1] - 1)
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


def zipar_training_visibility(rows: int, width: int, window: int, num_prefix: int) -> torch.Tensor:
    """Boolean ``(L, L)`` mask (``L = P + rows * width - 1``, raster teacher-forcing layout) that shows
    each query only what it would see under ZipAR with window ``s``: the query predicting token ``e``
    sees the prefix, itself, and the tokens ``t < e`` emitted in an *earlier* pass than ``e`` (causal
    by construction). Training a raster model with this mask on part of its batches ("ZipAR-aware"
    training) teaches it to predict without the upper-right context ZipAR has not generated yet; the
    model is still a raster model and plain AR decoding is unchanged. (Where ZipAR feeds a proxy at a
    row's last slot, the training input there is the real token.)"""
    n = rows * width
    emit_pass = torch.empty(n, dtype=torch.long)
    for k, step in enumerate(zipar_schedule(rows, width, window)):
        emit_pass[list(step.emit)] = k
    P = num_prefix
    L = P + n - 1
    visible = torch.ones(L, L, dtype=torch.bool).tril()
    token_of_query = torch.arange(1, n)  # query slot P + j predicts token j + 1
    earlier = emit_pass[None, : n - 1] < emit_pass[token_of_query][:, None]  # (queries j, keys t)
    visible[P:, P:] &= earlier | torch.eye(n - 1, dtype=torch.bool)
    return visible


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


@register_sampler("zipar")
class ZipARSampler(Sampler):
    """Args: ``window`` (``s``; default 8, clipped to the row width), ``cfg``, ``logits``."""

    def __init__(self, window: int = 8, cfg: CFGSchedule | float = 1.0, logits: LogitsPipeline | None = None):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
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
        BB = cond_all.shape[0]
        cache = model.new_cache(BB)
        tokens_BN = torch.zeros(B, N, dtype=torch.long, device=device)
        stats = SamplerStats(tokens=N)
        for step in zipar_schedule(rows, width, min(self.window, width)):
            emit = torch.tensor(step.emit, device=device)
            if not step.feed_idx:
                logits = model.prefill(cond_all, cache, mask_all)[:, None]
            else:
                feed = torch.tensor(step.feed_idx, device=device)
                fed = tokens_BN[:, torch.tensor(step.feed_src, device=device)]
                if self.cfg.enabled:
                    fed = torch.cat([fed, fed])
                visible = proxy_visibility(step, model.num_prefix, cache.max_len, BB, device)
                logits = model.decode(fed, feed[None].expand(BB, -1), cache, visible_BTS=visible)
                logits = logits[:, torch.tensor(step.emit_from, device=device)]
                if step.proxies:
                    cache.invalidate(torch.tensor(step.proxies, device=device)[None].expand(BB, -1) + model.num_prefix)
            guided = guided_window_logits(logits, B, self.cfg, emit[None].expand(B, -1), N)
            tokens_BN[:, emit] = self.logits.sample(guided, generator_rng)
            stats.forward_passes += 1
            stats.accepted_per_step.append(float(len(step.emit)))
        stats.wall_time_s = time.perf_counter() - start
        return self.finish(tokens_BN, model, stats, tokenizer)
