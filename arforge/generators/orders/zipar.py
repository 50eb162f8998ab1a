"""ZipAR (He et al. 2024) as an order: row-parallel decoding of a raster-trained model, and the
teacher-forcing layout that trains a raster model for it exactly.

Row ``r + 1`` starts once row ``r`` holds ``s`` tokens (``window``); every started row then emits one
token per forward pass, so up to ``ceil(W / s)`` rows are in flight and an ``R x W`` grid takes
``(R - 1) * s + W`` passes instead of ``R * W``. Each token is fed at its raster index into the
position-indexed KV cache with its own 2D RoPE angle; the attention mask is the cache's validity
bitmap AND causal-by-index, so the not-yet-generated right part of earlier rows is *masked*, never
read as zero keys (the LlamaGen ZipAR code attends to those empty slots).

The first token of row ``r + 1`` is predicted, as in raster order, by the query at the last slot of
row ``r``. If row ``r`` is complete, that slot holds its real last token (plain AR). If not, a proxy
token is fed there (:func:`proxy_source`); no other query of that pass attends to it and its slot
is invalidated right after the pass, so no later query does either. When row ``r`` finishes, its
real last token is fed (logits unused) to fill the slot. With ``s = W`` the schedule is exactly
raster order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from arforge.generators.orders.base import DecodeStep, SideQueries, TrainingArrangement
from arforge.generators.orders.raster import Raster

#: row-start stand-in rules (:func:`proxy_source`)
PROXIES = ("above", "newest")


def check_proxy(proxy: str) -> None:
    """Refuse a row-start proxy name that is not one of :data:`PROXIES`."""
    if proxy not in PROXIES:
        raise ValueError(f"unknown ZipAR proxy '{proxy}'; choose one of {PROXIES}")


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

    def as_decode_step(self) -> DecodeStep:
        """The same pass as a generic :class:`DecodeStep` (proxies are its transient feeds)."""
        if not self.feed_idx:
            return DecodeStep(feed_T=torch.zeros(0, dtype=torch.long), emit_E=torch.tensor(self.emit),
                              source_E=torch.tensor([-1]))
        return DecodeStep(feed_T=torch.tensor(self.feed_idx), emit_E=torch.tensor(self.emit),
                          source_E=torch.tensor(self.emit_from), fed_from_T=torch.tensor(self.feed_src),
                          transient_T=torch.tensor([self.feed_idx.index(p) for p in self.proxies], dtype=torch.long))


def proxy_source(count: list[int], row: int, width: int, proxy: str) -> int:
    """Grid index of the token fed as a stand-in at the last slot of the unfinished row ``row - 1``
    when row ``row`` starts (``count[k]``: tokens generated in row ``k``).

    The raster model predicts token ``(row, 0)`` from the query at ``(row - 1, W - 1)``, and what it
    reads there matters much (it is the token's raster predecessor). ``"above"``: the last token of
    the nearest *finished* row above, i.e. the same column one or more rows up (vertical locality);
    before any row is finished it falls back to ``"newest"``: row ``row - 1``'s newest token (the
    LlamaGen ZipAR code's choice). ZipAR-aware training (:meth:`ZipAR.training_arrangement`) trains
    these queries; docs/samplers.md has the measured effect of each rule."""
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


def emit_passes(steps: list[ZipARStep], num_tokens: int) -> torch.Tensor:
    """int64 ``(N,)``: the pass of ``steps`` that emits each token."""
    emit_pass = torch.empty(num_tokens, dtype=torch.long)
    for k, step in enumerate(steps):
        emit_pass[list(step.emit)] = k
    return emit_pass


def zipar_training_arrangement(rows: int, width: int, window: int, num_prefix: int, proxy: str = "above") -> TrainingArrangement:
    """The ZipAR-aware teacher-forcing layout of an ``rows x width`` raster model with window ``s``.

    Under ZipAR every token emitted in pass ``k`` is fed in pass ``k + 1`` (at its own raster slot),
    and a query sees the slots fed so far up to its own index. So training slot ``P + g`` (input
    token ``g``) sees token ``t <= g`` iff ``t`` was emitted no later than ``g`` (``mask_LL``); and
    the first token of row ``r + 1``, predicted at decode time by a *proxy* query at the last slot of
    row ``r`` (:func:`proxy_source`), is predicted here by a side query fed the same proxy token at
    the same rotary slot, seeing the tokens emitted before its pass (``side``). With ``s = W`` the
    layout is plain causal teacher forcing (no side queries)."""
    n = rows * width
    steps = zipar_schedule(rows, width, window, proxy)
    emit_pass = emit_passes(steps, n)
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
    side = None
    if src:
        side = SideQueries(torch.tensor(src), torch.tensor(slot), torch.stack(rows_visible), torch.tensor(target))
    return TrainingArrangement(input_idx_T=inputs, target_slot_N=torch.arange(n) + P - 1, mask_LL=visible, side=side)


class ZipAR(Raster):
    """A raster grid decoded ZipAR-style with window ``s`` and row-start rule ``proxy``.

    :meth:`decode_schedule` is the row-parallel schedule (:func:`zipar_schedule`, proxies as
    transient feeds); :meth:`training_arrangement` the exact ZipAR-aware layout
    (:func:`zipar_training_arrangement`). A model trained in raster order decodes with either
    (``ZipAR(grid, W)`` == :class:`Raster`)."""

    name = "zipar"

    def __init__(self, grid_shape: tuple[int, int], window: int, proxy: str = "above"):
        super().__init__(grid_shape)
        if len(self.grid_shape) != 2:
            raise ValueError(f"ZipAR decodes image grids (h, w), got {list(grid_shape)}")
        rows, width = self.grid_shape
        if not 1 <= window <= width:
            raise ValueError(f"ZipAR window must lie in [1, row width {width}], got {window}")
        check_proxy(proxy)
        self.window, self.proxy = window, proxy

    def zipar_steps(self) -> list[ZipARStep]:
        return zipar_schedule(*self.grid_shape, self.window, self.proxy)

    def training_arrangement(self, num_prefix: int) -> TrainingArrangement:
        return zipar_training_arrangement(*self.grid_shape, self.window, num_prefix, self.proxy)

    def decode_schedule(self) -> list[DecodeStep]:
        return [step.as_decode_step() for step in self.zipar_steps()]

    def num_decode_steps(self) -> int:
        rows, width = self.grid_shape
        return (rows - 1) * self.window + width
